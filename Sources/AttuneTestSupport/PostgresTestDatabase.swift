import Foundation

/// A database of its own for one test, on the throw-away PostgreSQL server that
/// `scripts/run_tests.py` (through `scripts/pg_temp.py`) starts and names in
/// `ATTUNE_TEST_POSTGRES_URL`. Dropped by ``drop()``; the whole server goes at the end of the run.
public struct PostgresTestDatabase: Sendable {
    public static let environment = "ATTUNE_TEST_POSTGRES_URL"

    /// `postgres://...` of the new database.
    public let url: String
    public let name: String
    private let server: URLComponents

    public struct Unavailable: Error, CustomStringConvertible {
        public let description: String
    }

    /// Creates an empty database (with psql), or only names one when `create` is false (``create()`` makes it later).
    public init(create: Bool = true) throws {
        guard let text = ProcessInfo.processInfo.environment[Self.environment], let server = URLComponents(string: text) else {
            throw Unavailable(description: """
                \(Self.environment) is not set: run the tests with `make test`, or as \
                `python3 scripts/pg_temp.py -- swift test ...`, which start a throw-away PostgreSQL server
                """)
        }
        self.server = server
        name = "t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        var database = server
        database.path = "/" + name
        url = database.string!
        if create { try self.create() }
    }

    public func create() throws {
        try Self.psql(server, "CREATE DATABASE \(name)")
    }

    /// Drops the database, closing whatever is still connected to it.
    public func drop() {
        try? Self.psql(server, "DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
    }

    /// Runs one SQL statement on the database with psql and returns what it printed (unaligned, tuples only).
    @discardableResult
    public func run(_ sql: String) throws -> String {
        var database = server
        database.path = "/" + name
        return try Self.psql(database, sql)
    }

    @discardableResult
    static func psql(_ server: URLComponents, _ sql: String) throws -> String {
        var plain = server
        plain.query = nil
        let (status, text) = try TestData.runTool(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", plain.string!, "-c", sql])
        guard status == 0 else {
            throw Unavailable(description: "psql failed (\(status)) on \(sql): \(text)")
        }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
