import AttuneConversation
import AttuneCore
import Foundation
import Logging
import PostgresNIO
import Synchronization

/// A room change as it travels between instances: a `room_event` row and, when it fits, the
/// `NOTIFY` payload itself.
struct RoomEventEnvelope: Codable {
    struct Change: Codable {
        var kind: String
        var room: RoomID
        var user: ParticipantID
        var info: JSONValue?
        var at: Double?
        var update: EmotionUpdate?
    }

    var id: Int64
    var origin: String
    /// Nil in a notification whose event was too large for it: the listener reads the row.
    var change: Change?
}

extension RoomEventEnvelope.Change {
    init(_ change: RoomChange) {
        switch change {
        case let .joined(room, user, info, date):
            self.init(kind: "joined", room: room, user: user, info: info, at: date.timeIntervalSince1970)
        case let .left(room, user):
            self.init(kind: "left", room: room, user: user)
        case .emotion(let update):
            self.init(kind: "emotion", room: update.roomID, user: update.userID, update: update)
        }
    }

    var roomChange: RoomChange? {
        switch kind {
        case "joined": .joined(room: room, user: user, info: info, at: Date(timeIntervalSince1970: at ?? 0))
        case "left": .left(room: room, user: user)
        case "emotion": update.map { .emotion($0) }
        default: nil
        }
    }
}

extension PostgresStore: RoomPeers {
    /// Writes a change as an event and announces it, inside the caller's transaction (so the
    /// others hear of it only once it is stored).
    static func announce(_ change: RoomChange, from origin: String, on connection: PostgresConnection) async throws {
        let stored = RoomEventEnvelope.Change(change)
        let json = try jsonText(stored)
        var id: Int64 = 0
        for try await value in try await connection.query(
            "INSERT INTO room_event (origin, room_id, change) VALUES (\(origin), \(change.room.rawValue), \(json)) RETURNING id",
            logger: quiet
        ).decode(Int64.self) {
            id = value
        }
        var payload = try jsonText(RoomEventEnvelope(id: id, origin: origin, change: stored))
        if payload.utf8.count > maxNotifyBytes {
            payload = try jsonText(RoomEventEnvelope(id: id, origin: origin, change: nil))
        }
        try await connection.query("SELECT pg_notify(\(channel), \(payload))", logger: quiet)
    }

    public func participants(in room: RoomID) async throws -> [ParticipantSnapshot] {
        try await members(presentIn: room, except: instanceID).map {
            ParticipantSnapshot(userID: $0.userID, userInfo: $0.userInfo, joinedAt: $0.joinedAt, tracks: [], emotion: $0.lastEmotion)
        }
    }

    /// Listens on its own connection. After every (re)connection it first reads the events it
    /// may have missed from `room_event`, then takes notifications; the ids it has delivered
    /// are remembered, so an event read both ways is delivered once. The first connection
    /// reads the events since this store was made (a room may have opened here before the
    /// listener was up); earlier ones are in the rooms' stored state.
    public func follow(_ deliver: @escaping @Sendable (RoomChange) async -> Void) async throws {
        var seen = RecentIDs(capacity: settings.rememberedEvents)
        var delay = 0.1
        var connectionNumber = 0
        while true {
            try Task.checkCancellation()
            connectionNumber += 1
            do {
                // The schema first: the listener reads the events table.
                try await perform("preparing the room listener") { _ in }
                let number = connectionNumber
                let connection = try await withDeadline(settings.timeout, "connecting the room listener") { [connection, logger] in
                    try await PostgresConnection.connect(configuration: connection, id: number, logger: logger)
                }
                do {
                    try await listen(on: connection, seen: &seen, deliver: deliver) { delay = 0.1 }
                } catch {
                    try? await connection.close()
                    throw error
                }
                try? await connection.close()
                try Task.checkCancellation()
                logger.warning("room listener: the connection closed; reconnecting")
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                if Task.isCancelled { throw CancellationError() }
                // Once per outage: the first attempt after a working connection.
                if delay == 0.1 { logger.warning("room listener: \(Self.describe(error)); reconnecting (every \(settings.maxReconnectDelay) s at most)") }
            }
            listenerPID.withLock { $0 = nil }
            try await Task.sleep(for: .milliseconds(Int64(delay * 1_000)))
            delay = min(delay * 2, settings.maxReconnectDelay)
        }
    }

    private func listen(
        on connection: PostgresConnection, seen: inout RecentIDs, deliver: @Sendable (RoomChange) async -> Void, connected: () -> Void
    ) async throws {
        for try await pid in try await connection.query("SELECT pg_backend_pid()", logger: Self.quiet).decode(Int32.self) {
            listenerPID.withLock { $0 = pid }
        }
        try await connection.listen(on: Self.channel) { notifications in
            connected()
            try await catchUp(on: connection, seen: &seen, deliver: deliver)
            let decoder = JSONDecoder()
            for try await notification in notifications {
                guard let envelope = try? decoder.decode(RoomEventEnvelope.self, from: Data(notification.payload.utf8)) else {
                    logger.warning("room listener: unreadable notification skipped")
                    continue
                }
                if let change = envelope.change {
                    await hand(envelope.id, from: envelope.origin, change, seen: &seen, deliver: deliver)
                } else {
                    try await readEvents("id = \(envelope.id)", on: connection, seen: &seen, deliver: deliver)
                }
            }
        }
    }

    /// Reads what was written since the newest delivered event, and what committed late around
    /// it (ids are taken at insert, so one may commit after a higher one: the last minute of
    /// events before the newest is read again; those already delivered are skipped).
    private func catchUp(on connection: PostgresConnection, seen: inout RecentIDs, deliver: @Sendable (RoomChange) async -> Void) async throws {
        guard let newest = seen.newest else {
            // The first connection: everything since this store was made, then on from the newest event.
            let age = Double((ContinuousClock.now - created).components.seconds) + 2
            try await readEvents("created_at > now() - make_interval(secs => \(age))", on: connection, seen: &seen, deliver: deliver)
            for try await id in try await connection.query("SELECT COALESCE(MAX(id), 0) FROM room_event", logger: Self.quiet).decode(Int64.self) {
                seen.advance(to: id)
            }
            return
        }
        try await readEvents(
            "id > \(newest) OR created_at > (SELECT created_at - interval '1 minute' FROM room_event WHERE id = \(newest))",
            on: connection, seen: &seen, deliver: deliver)
    }

    /// Delivers the stored events matching `condition` (SQL over integers only), in id order.
    private func readEvents(
        _ condition: String, on connection: PostgresConnection, seen: inout RecentIDs, deliver: @Sendable (RoomChange) async -> Void
    ) async throws {
        let decoder = JSONDecoder()
        let rows = try await connection.query(
            PostgresQuery(unsafeSQL: "SELECT id, origin, change FROM room_event WHERE \(condition) ORDER BY id"), logger: Self.quiet)
        var events: [(Int64, String, String)] = []
        for try await row in rows.decode((Int64, String, String).self) { events.append(row) }
        for (id, origin, json) in events {
            guard let change = try? decoder.decode(RoomEventEnvelope.Change.self, from: Data(json.utf8)) else { continue }
            await hand(id, from: origin, change, seen: &seen, deliver: deliver)
        }
    }

    private func hand(
        _ id: Int64, from origin: String, _ change: RoomEventEnvelope.Change, seen: inout RecentIDs, deliver: @Sendable (RoomChange) async -> Void
    ) async {
        guard seen.insert(id) else { return }
        guard origin != instanceID, let change = change.roomChange else { return }
        await deliver(change)
    }
}

/// The ids of the latest events delivered, at most `capacity` of them.
struct RecentIDs {
    let capacity: Int
    private var members: Set<Int64> = []
    private var order: [Int64] = []
    private var start = 0
    private(set) var newest: Int64?

    init(capacity: Int) { self.capacity = max(1, capacity) }

    /// Moves the catch-up point to `id` (the newest event there is) without marking it delivered.
    mutating func advance(to id: Int64) {
        newest = max(newest ?? id, id)
    }

    /// Adds `id`; false when it was already there.
    @discardableResult
    mutating func insert(_ id: Int64) -> Bool {
        guard members.insert(id).inserted else { return false }
        newest = max(newest ?? id, id)
        if order.count < capacity {
            order.append(id)
        } else {
            members.remove(order[start])
            order[start] = id
            start = (start + 1) % capacity
        }
        return true
    }
}
