import Foundation

/// A change in a room made on another instance of the server.
public enum RoomChange: Sendable, Equatable {
    case joined(room: RoomID, user: ParticipantID, info: JSONValue?, at: Date)
    case left(room: RoomID, user: ParticipantID)
    case emotion(EmotionUpdate)

    public var room: RoomID {
        switch self {
        case .joined(let room, _, _, _), .left(let room, _): room
        case .emotion(let update): update.roomID
        }
    }
}

/// The other instances of the server that share rooms with this one (several `attune serve`
/// on one PostgreSQL: `PostgresStore` in AttuneStorage). This instance's own joins, leaves and
/// emotions reach them through its ``RoomRepository`` writes; theirs come back here.
public protocol RoomPeers: Sendable {
    /// Who is in `room` on the other instances now, with their latest emotions.
    func participants(in room: RoomID) async throws -> [ParticipantSnapshot]
    /// Hands every change the other instances make to `deliver`, in the order they were made
    /// and each once (also across a lost connection), until the task is cancelled.
    func follow(_ deliver: @escaping @Sendable (RoomChange) async -> Void) async throws
}

/// Applies the other instances' changes to this instance's open rooms, for as long as it runs
/// (owned by the server). A change for a room nobody here is in is not needed: a room that
/// opens later asks ``RoomPeers/participants(in:)``.
public struct RoomRelay: Sendable {
    public let peers: any RoomPeers
    public let directory: RoomDirectory

    public init(peers: any RoomPeers, directory: RoomDirectory) {
        self.peers = peers
        self.directory = directory
    }

    public func run() async throws {
        let directory = self.directory
        try await peers.follow { change in
            await directory.room(change.room)?.apply(change)
        }
    }
}
