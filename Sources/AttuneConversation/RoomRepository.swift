import Foundation
import Synchronization

/// A participant's membership of a room, as stored.
public struct RoomMemberRecord: Codable, Sendable, Equatable {
    public var userID: ParticipantID
    public var userInfo: JSONValue?
    public var joinedAt: String
    /// Nil while they are in the room.
    public var leftAt: String?
    public var lastEmotion: EmotionUpdate?

    public init(userID: ParticipantID, userInfo: JSONValue?, joinedAt: String, leftAt: String?, lastEmotion: EmotionUpdate?) {
        self.userID = userID
        self.userInfo = userInfo
        self.joinedAt = joinedAt
        self.leftAt = leftAt
        self.lastEmotion = lastEmotion
    }

    enum CodingKeys: String, CodingKey {
        case userID = "user_id", userInfo = "user_info", joinedAt = "joined_at", leftAt = "left_at", lastEmotion = "last_emotion"
    }
}

/// A room as stored: everyone who was ever in it, newest first.
public struct RoomRecord: Codable, Sendable, Equatable {
    public var roomID: RoomID
    public var members: [RoomMemberRecord]

    public init(roomID: RoomID, members: [RoomMemberRecord]) {
        self.roomID = roomID
        self.members = members
    }

    enum CodingKeys: String, CodingKey { case roomID = "room_id", members }
}

/// A room in the list of rooms.
public struct RoomSummary: Codable, Sendable, Equatable {
    public var roomID: RoomID
    /// Participants in it now, by the store.
    public var present: Int
    public var members: Int
    /// The latest join, leave or emotion, ISO-8601.
    public var lastActivity: String

    public init(roomID: RoomID, present: Int, members: Int, lastActivity: String) {
        self.roomID = roomID
        self.present = present
        self.members = members
        self.lastActivity = lastActivity
    }

    enum CodingKeys: String, CodingKey { case roomID = "room_id", present, members, lastActivity = "last_activity" }
}

/// Where rooms keep their memberships and each participant's latest emotions (SQLite, or a
/// PostgreSQL shared by several instances, which also tells the others of every change).
public protocol RoomRepository: Sendable {
    func participantJoined(room: RoomID, user: ParticipantID, info: JSONValue?, at date: Date) async throws
    func participantLeft(room: RoomID, user: ParticipantID, at date: Date) async throws
    /// Stores an emotion and keeps only the newest `keep` of that participant in that room.
    func record(_ update: EmotionUpdate, keep: Int) async throws
    /// Rooms, latest activity first.
    func rooms(limit: Int) async throws -> [RoomSummary]
    func room(_ id: RoomID) async throws -> RoomRecord?
    /// A participant's stored emotions in a room, newest first.
    func emotions(room: RoomID, user: ParticipantID, limit: Int) async throws -> [EmotionUpdate]
}

/// Hands a room's joins, leaves and emotions to the repository without ever making the room
/// wait: events go into a bounded queue that one task (``run()``, owned by the server) drains.
/// When the queue is full, events are dropped and counted.
public final class RoomRecorder: Sendable {
    public enum Event: Sendable {
        case joined(RoomID, ParticipantID, JSONValue?, Date)
        case left(RoomID, ParticipantID, Date)
        case emotion(EmotionUpdate)
    }

    public let repository: any RoomRepository
    /// Emotions kept per participant and room.
    public let keep: Int
    private let events: AsyncStream<Event>
    private let continuation: AsyncStream<Event>.Continuation
    private let drops = Mutex(0)

    public init(repository: any RoomRepository, keep: Int = 100, capacity: Int = 4_096) {
        self.repository = repository
        self.keep = keep
        (events, continuation) = AsyncStream.makeStream(of: Event.self, bufferingPolicy: .bufferingOldest(capacity))
    }

    public func record(_ event: Event) {
        if case .dropped = continuation.yield(event) { drops.withLock { $0 += 1 } }
    }

    /// Events dropped because the store fell behind.
    public var dropped: Int { drops.withLock { $0 } }

    /// Writes events until ``finish()``; a failed write is reported to `failed` and skipped.
    public func run(failed: @Sendable (any Error) -> Void = { _ in }) async {
        for await event in events {
            do {
                switch event {
                case let .joined(room, user, info, date): try await repository.participantJoined(room: room, user: user, info: info, at: date)
                case let .left(room, user, date): try await repository.participantLeft(room: room, user: user, at: date)
                case .emotion(let update): try await repository.record(update, keep: keep)
                }
            } catch {
                failed(error)
            }
        }
    }

    /// Stops taking events; ``run()`` returns once those queued are written.
    public func finish() { continuation.finish() }

}
