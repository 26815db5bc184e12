import AttuneConversation
import AttuneCore
import Foundation
import Logging
import NIOCore
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// How a PostgreSQL store behaves (`storage.*` settings).
public struct PostgresSettings: Sendable, Equatable {
    /// Longest wait for one database operation before it fails as unavailable.
    public var timeout = 5.0
    /// How often an instance tells the others it is alive.
    public var heartbeatInterval = 2.0
    /// Silence after which an instance counts as dead and its participants leave their rooms.
    public var instanceTimeout = 10.0
    /// How long room events stay in the table a reconnecting listener catches up from.
    public var eventRetention = 600.0
    /// Connections the store's pool may open (the listener has one more of its own).
    public var maxConnections = 8
    /// Longest pause between the listener's reconnection attempts (it starts at 0.1 s and doubles).
    public var maxReconnectDelay = 5.0
    /// Event ids the listener remembers to deliver each event once across a reconnection.
    public var rememberedEvents = 65_536

    public init() {}
}

/// Whether the database answered lately.
public enum StorageAvailability: Sendable, Equatable {
    case available
    case unavailable(String)
}

/// Conversations and rooms on a PostgreSQL server that several instances of Attune share
/// (postgres-nio). Besides the durable state it carries the instances' room changes: every
/// join, leave and emotion written here is also an event (`room_event`) announced with
/// `NOTIFY`, which the other instances' ``follow(_:)`` hears; instances write heartbeats, and a
/// silent one's participants are taken out of their rooms by the others.
///
/// The database may be unreachable at start or go away later: operations then fail within
/// ``PostgresSettings/timeout`` with a ``StorageError``, ``availability`` says so, and the
/// schema is migrated as soon as the server answers.
public final class PostgresStore: Sendable {
    public let location: PostgresLocation
    public let settings: PostgresSettings
    /// This process's name among the instances (new at every start).
    public let instanceID: String
    let client: PostgresClient
    let connection: PostgresConnection.Configuration
    let logger: Logger
    private let migrated = Mutex(false)
    private let state = Mutex(PostgresStore.notReached)
    private static let notReached = StorageAvailability.unavailable("not reached yet")
    let listenerPID = Mutex<Int32?>(nil)
    /// When this store was made: the listener's first connection catches up from here.
    let created = ContinuousClock.now

    /// The `NOTIFY` channel of room events.
    static let channel = "attune_rooms"
    /// PostgreSQL refuses a `NOTIFY` payload of 8000 bytes or more; larger events travel by id.
    static let maxNotifyBytes = 7_900

    /// Prepares the store; nothing connects until it runs. Throws only when TLS cannot be set up.
    public init(
        location: PostgresLocation, settings: PostgresSettings = .init(), instanceID: String = UUID().uuidString.lowercased(),
        logger: Logger = Logger(label: "attune.storage")
    ) throws {
        self.location = location
        self.settings = settings
        self.instanceID = instanceID
        self.logger = logger
        let tls: (pool: PostgresClient.Configuration.TLS, connection: PostgresConnection.Configuration.TLS)
        do {
            tls = try Self.tls(location.tls)
        } catch {
            throw StorageError(description: "storage.url: cannot set up TLS for sslmode=\(location.tls.rawValue): \(error)")
        }
        var configuration = PostgresClient.Configuration(
            host: location.host, port: location.port, username: location.username, password: location.password,
            database: location.database, tls: tls.pool)
        configuration.options.maximumConnections = settings.maxConnections
        configuration.options.connectTimeout = .milliseconds(Int64(settings.timeout * 1_000))
        // PostgresNIO logs every failed connection attempt at info; while the database is down
        // the heartbeat's warning says it once.
        var background = logger
        background.logLevel = max(logger.logLevel, .warning)
        client = PostgresClient(configuration: configuration, backgroundLogger: background)
        var connection = PostgresConnection.Configuration(
            host: location.host, port: location.port, username: location.username, password: location.password,
            database: location.database, tls: tls.connection)
        connection.options.connectTimeout = .milliseconds(Int64(settings.timeout * 1_000))
        self.connection = connection
    }

    /// The TLS of one `sslmode`, for the pool and for the store's own connections (listener, goodbye).
    static func tls(_ mode: PostgresLocation.TLSMode) throws -> (pool: PostgresClient.Configuration.TLS, connection: PostgresConnection.Configuration.TLS) {
        switch mode {
        case .disable: (.disable, .disable)
        case .prefer: (.prefer(.makeClientConfiguration()), .prefer(try .init(configuration: .makeClientConfiguration())))
        case .require: (.require(.makeClientConfiguration()), .require(try .init(configuration: .makeClientConfiguration())))
        }
    }

    /// Whether the database answered the last operation or heartbeat.
    public var availability: StorageAvailability { state.withLock { $0 } }

    /// The server process of the listening connection (tests end it to prove the listener recovers).
    public var listenerBackendPID: Int32? { listenerPID.withLock { $0 } }

    /// Runs one operation against the database: migrates first if needed, fails after
    /// ``PostgresSettings/timeout``, and keeps ``availability`` up to date.
    func perform<Result: Sendable>(_ what: String, _ body: @escaping @Sendable (PostgresClient) async throws -> Result) async throws -> Result {
        let client = self.client
        do {
            let result = try await withDeadline(settings.timeout, "\(what) (PostgreSQL at \(location.host):\(location.port))") { [self] in
                if !migrated.withLock({ $0 }) {
                    try await PostgresSchema.migrate(client, logger: logger)
                    migrated.withLock { $0 = true }
                }
                do {
                    return try await body(client)
                } catch let error as PSQLError where Self.isLostConnection(error) {
                    // A pooled connection the server had closed (a restart, a failover, an
                    // administrator): the pool replaces it, and the operation runs again once.
                    logger.notice("storage: \(what) lost its connection; retrying")
                    return try await body(client)
                }
            }
            state.withLock { $0 = .available }
            return result
        } catch let error as PSQLError where error.serverInfo != nil && !Self.isLostConnection(error) {
            // The server answered: it is there, the statement was wrong.
            state.withLock { $0 = .available }
            throw StorageError(description: "\(what): \(Self.describe(error))")
        } catch let error as StorageError {
            // A timeout says less than the heartbeat's diagnosis of the same outage: keep that.
            state.withLock { if $0 == .available || $0 == Self.notReached { $0 = .unavailable(error.description) } }
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            let reason = "\(what): PostgreSQL at \(location.host):\(location.port) is unavailable (\(Self.describe(error)))"
            state.withLock { $0 = .unavailable(reason) }
            throw StorageError(description: reason)
        }
    }

    /// What went wrong, without the statement or its values (which may hold what people said).
    static func describe(_ error: any Error) -> String {
        guard let error = error as? PSQLError else { return "\(error)" }
        if let info = error.serverInfo {
            return "the server said: \(info[.message] ?? "?") (SQLSTATE \(info[.sqlState] ?? "?"))"
        }
        return "\(error.code)" + (error.underlying.map { ": \($0)" } ?? "")
    }

    /// Why the server cannot be used, from a connection attempt of its own (the pool does not
    /// say: a missing database or a refused password only makes its requests wait), or nil
    /// when the connection works.
    func diagnose() async -> String? {
        do {
            try await withOwnConnection("connecting") { _ in }
            return nil
        } catch {
            return "PostgreSQL at \(location.host):\(location.port)/\(location.database) is unavailable: \(Self.describe(error))"
        }
    }

    /// Runs `body` on a connection of its own (not the pool's), within the timeout, and closes
    /// it after in every outcome (PostgresNIO wants a connection closed before it is released).
    func withOwnConnection<Result: Sendable>(
        _ what: String, _ body: @escaping @Sendable (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        try await withDeadline(settings.timeout, "\(what) (PostgreSQL at \(location.host):\(location.port))") { [connection, logger] in
            let connection = try await PostgresConnection.connect(configuration: connection, id: 0, logger: logger)
            do {
                let result = try await body(connection)
                try await connection.close()
                return result
            } catch {
                try? await connection.close()
                throw error
            }
        }
    }

    /// Whether `error` says the connection went away rather than the statement failed.
    static func isLostConnection(_ error: PSQLError) -> Bool {
        if [.serverClosedConnection, .connectionError, .uncleanShutdown].contains(error.code) { return true }
        // SQLSTATE classes 08 (connection exception) and 57 (operator intervention: terminated, shutting down).
        guard let state = error.serverInfo?[.sqlState] else { return false }
        return state.hasPrefix("08") || state.hasPrefix("57")
    }

    /// Whether the database answers now (migrating it if it just came back).
    @discardableResult
    public func check() async -> StorageAvailability {
        _ = try? await perform("health check") { client in try await client.query("SELECT 1") }
        return availability
    }
}

/// Runs `body`, or fails with a ``StorageError`` after `seconds` (cancelling it).
func withDeadline<Result: Sendable>(_ seconds: Double, _ what: String, _ body: @escaping @Sendable () async throws -> Result) async throws -> Result {
    try await withThrowingTaskGroup(of: Result.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .milliseconds(Int64(seconds * 1_000)))
            throw StorageError(description: "\(what): no answer within \(seconds) s (setting storage.timeout_s)")
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

// MARK: - The service: pool, heartbeats, shutdown

extension PostgresStore: Service {
    /// Runs the connection pool and the heartbeats until shutdown; on a graceful shutdown this
    /// instance's participants leave their rooms and its heartbeat row goes, so the other
    /// instances need not wait for the timeout (when cancelled, it just stops).
    public func run() async throws {
        // The pool runs in a task of its own rather than a child, so that cancelling `run()`
        // stops the heartbeat first and the pool after it: PostgresNIO never resumes a query
        // whose pool stopped under it, and a heartbeat cancelled mid-transaction then hung.
        let pool = Task { await client.run() }
        await withGracefulShutdownHandler {
            await self.beat()
        } onGracefulShutdown: {}
        // Cancelled rather than shut down: gone without a word, like a crash.
        if !Task.isCancelled { await self.leaveEverything() }
        pool.cancel()
        await pool.value
    }

    /// Writes heartbeats and clears out dead instances until cancelled or shut down.
    private func beat() async {
        var failing = false  // logged once per outage, not at every beat
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await heartbeat()
                if failing { logger.notice("storage: PostgreSQL at \(location.host):\(location.port) answers again") }
                failing = false
            } catch is CancellationError {
                return
            } catch {
                if !failing {
                    // The pool only waits for a server it cannot use; one connection of our own says why.
                    let reason = await diagnose() ?? Self.describe(error)
                    state.withLock { $0 = .unavailable(reason) }
                    logger.warning("storage heartbeat failed (retrying every \(settings.heartbeatInterval) s): \(reason)")
                }
                failing = true
            }
            // In slices, to notice a shutdown soon (cancelWhenGracefulShutdown can hang when the
            // task is already cancelled as it starts).
            let end = ContinuousClock.now + .milliseconds(Int64(settings.heartbeatInterval * 1_000))
            while ContinuousClock.now < end, !Task.isCancelled, !Task.isShuttingDownGracefully {
                try? await Task.sleep(for: min(.milliseconds(100), end - ContinuousClock.now))
            }
        }
    }

    /// One heartbeat: this instance is alive; instances silent for longer than the timeout are
    /// dead, and their participants leave (announced to everyone); old events are dropped.
    func heartbeat() async throws {
        let (me, timeout, retention) = (instanceID, settings.instanceTimeout, settings.eventRetention)
        let departures = try await perform("heartbeat") { client in
            try await client.withTransaction(logger: Self.quiet) { connection in
                try await connection.query(
                    "INSERT INTO attune_instance (id, started_at, heartbeat_at) VALUES (\(me), now(), now()) ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()",
                    logger: Self.quiet)
                var dead: [String] = []
                for try await id in try await connection.query(
                    "DELETE FROM attune_instance WHERE heartbeat_at < now() - make_interval(secs => \(timeout)) RETURNING id", logger: Self.quiet
                ).decode(String.self) {
                    dead.append(id)
                }
                var departures: [(String, RoomID, ParticipantID)] = []
                if !dead.isEmpty {
                    let now = Date().timeIntervalSince1970
                    for try await (instance, room, user) in try await connection.query(
                        """
                        UPDATE room_member SET left_at = \(now) WHERE instance_id = ANY(\(dead)) AND left_at IS NULL
                        RETURNING instance_id, room_id, user_id
                        """, logger: Self.quiet
                    ).decode((String, String, String).self) {
                        if let room = RoomID(room), let user = ParticipantID(user) { departures.append((instance, room, user)) }
                    }
                    for (instance, room, user) in departures {
                        try await Self.announce(.left(room: room, user: user), from: instance, on: connection)
                    }
                }
                try await connection.query(
                    "DELETE FROM room_event WHERE created_at < now() - make_interval(secs => \(retention))", logger: Self.quiet)
                return departures.map { "\($0.2) of instance \($0.0) left room \($0.1)" }
            }
        }
        for departure in departures { logger.notice("an instance stopped answering: \(departure)") }
    }

    /// A graceful goodbye: this instance's participants leave and its heartbeat row goes. It
    /// runs on a connection of its own, since the pool shuts down with the service group.
    private func leaveEverything() async {
        let me = instanceID
        do {
            try await withOwnConnection("leaving the rooms") { connection in
                try await connection.withTransaction(logger: Self.quiet) { connection in
                    let now = Date().timeIntervalSince1970
                    var left: [(RoomID, ParticipantID)] = []
                    for try await (room, user) in try await connection.query(
                        "UPDATE room_member SET left_at = \(now) WHERE instance_id = \(me) AND left_at IS NULL RETURNING room_id, user_id",
                        logger: Self.quiet
                    ).decode((String, String).self) {
                        if let room = RoomID(room), let user = ParticipantID(user) { left.append((room, user)) }
                    }
                    for (room, user) in left { try await Self.announce(.left(room: room, user: user), from: me, on: connection) }
                    try await connection.query("DELETE FROM attune_instance WHERE id = \(me)", logger: Self.quiet)
                }
            }
        } catch {
            logger.warning("could not say goodbye to the other instances (they will notice in storage.instance_timeout_s): \(error)")
        }
    }

    static let quiet = Logger(label: "attune.storage.sql", factory: { _ in SwiftLogNoOpLogHandler() })
}
