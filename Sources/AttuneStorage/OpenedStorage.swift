import AttuneConversation
import Foundation
import Logging
import ServiceLifecycle

/// The store a server keeps conversations and rooms in, opened from `storage.url`.
public struct OpenedStorage: Sendable {
    public let location: StorageLocation
    public let conversations: any ConversationRepository
    public let rooms: any RoomRepository
    /// The PostgreSQL store, when there is one: it is also a service (pool, heartbeats) and the
    /// way to the other instances' rooms.
    public let postgres: PostgresStore?

    public var peers: (any RoomPeers)? { postgres }

    /// Opens SQLite at once (a relative path is inside `dataDirectory`); a PostgreSQL store
    /// connects when it runs, and answers "unavailable" until the server is reached.
    public static func open(
        _ location: StorageLocation, dataDirectory: DataDirectory, settings: PostgresSettings, logger: Logger
    ) throws -> OpenedStorage {
        switch location {
        case .sqlite(let path):
            try dataDirectory.prepare()
            let file = path.hasPrefix("/") ? path : dataDirectory.file(path).path
            let store = try HistoryStore(path: file)
            return OpenedStorage(location: location, conversations: store, rooms: store, postgres: nil)
        case .postgres(let server):
            let store = try PostgresStore(location: server, settings: settings, logger: logger)
            return OpenedStorage(location: location, conversations: store, rooms: store, postgres: store)
        }
    }

    /// Whether the store answers; SQLite, once open, always does.
    public var availability: StorageAvailability { postgres?.availability ?? .available }
}
