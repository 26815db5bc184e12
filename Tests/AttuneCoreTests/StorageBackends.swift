import AttuneConversation
import AttuneStorage
import AttuneTestSupport
import Foundation
import Testing

/// The two stores every repository test runs on: a real SQLite file and a real PostgreSQL
/// database (on the throw-away server of `scripts/run_tests.py`).
enum StorageBackend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite, postgres

    var testDescription: String { rawValue }

    typealias Store = any ConversationRepository & RoomRepository

    /// Runs `body` with a fresh, empty place for this backend (a folder, a database), removed after.
    func withPlace(_ body: (StorePlace) async throws -> Void) async throws {
        switch self {
        case .sqlite:
            let directory = TestData.temporaryDirectory()
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            try await body(StorePlace(backend: self, address: directory + "/history.sqlite"))
        case .postgres:
            let database = try PostgresTestDatabase()
            defer { database.drop() }
            try await body(StorePlace(backend: self, address: database.url))
        }
    }
}

/// Where a test's stores live; each ``withStore(_:)`` opens a new store there, as another process would.
struct StorePlace: Sendable {
    let backend: StorageBackend
    let address: String

    func withStore<Result: Sendable>(
        settings: PostgresSettings = .init(), _ body: (StorageBackend.Store) async throws -> Result
    ) async throws -> Result {
        switch backend {
        case .sqlite:
            return try await body(try HistoryStore(path: address))
        case .postgres:
            let store = try PostgresStore(location: try PostgresLocation(url: address), settings: settings)
            return try await store.whileRunning { try await body(store) }
        }
    }
}

extension PostgresStore {
    /// Runs the store's service (pool, heartbeats) around `body`, and stops it after (without
    /// the goodbye of a graceful shutdown: as if the instance died).
    func whileRunning<Result: Sendable>(_ body: () async throws -> Result) async throws -> Result {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.run() }
            defer { group.cancelAll() }
            return try await body()
        }
    }
}
