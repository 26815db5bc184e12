import Logging
import PostgresNIO

/// The PostgreSQL schema, as numbered migrations applied in order at start (or when the server
/// first answers). Instances starting together take an advisory lock, so each migration runs once.
enum PostgresSchema {
    /// Each migration is a list of statements (the extended protocol runs one at a time).
    static let migrations: [(version: Int, name: String, statements: [String])] = [
        (1, "sessions, turns and rooms", [
            """
            CREATE TABLE session (
                id text PRIMARY KEY, started_at double precision NOT NULL, ended_at double precision,
                persona text NOT NULL, voice text NOT NULL)
            """,
            """
            CREATE TABLE turn (
                id bigserial PRIMARY KEY, session_id text NOT NULL REFERENCES session (id) ON DELETE CASCADE,
                turn_index integer NOT NULL, started_at double precision NOT NULL, user_text text NOT NULL,
                reply_text text NOT NULL, interrupted boolean NOT NULL, emotions text NOT NULL, fused_emotion text,
                timings text NOT NULL, UNIQUE (session_id, turn_index))
            """,
            """
            CREATE TABLE room_member (
                room_id text NOT NULL, user_id text NOT NULL, user_info text, joined_at double precision NOT NULL,
                left_at double precision, instance_id text NOT NULL, PRIMARY KEY (room_id, user_id))
            """,
            "CREATE INDEX room_member_by_instance ON room_member (instance_id) WHERE left_at IS NULL",
            """
            CREATE TABLE room_emotion (
                id bigserial PRIMARY KEY, room_id text NOT NULL, user_id text NOT NULL, time double precision NOT NULL,
                update text NOT NULL)
            """,
            "CREATE INDEX room_emotion_by_user ON room_emotion (room_id, user_id, time)",
        ]),
        (2, "instances and room events", [
            "CREATE TABLE attune_instance (id text PRIMARY KEY, started_at timestamptz NOT NULL, heartbeat_at timestamptz NOT NULL)",
            """
            CREATE TABLE room_event (
                id bigserial PRIMARY KEY, origin text NOT NULL, room_id text NOT NULL,
                created_at timestamptz NOT NULL DEFAULT clock_timestamp(), change text NOT NULL)
            """,
            "CREATE INDEX room_event_by_time ON room_event (created_at)",
        ]),
    ]

    /// An arbitrary key for `pg_advisory_xact_lock`, Attune's own.
    static let lockKey: Int64 = 0x4154_544E_4531

    static func migrate(_ client: PostgresClient, logger: Logger) async throws {
        try await client.withTransaction(logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(lockKey))", logger: logger)
            try await connection.query(
                "CREATE TABLE IF NOT EXISTS attune_migration (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
                logger: logger)
            var applied: Set<Int> = []
            for try await version in try await connection.query("SELECT version FROM attune_migration", logger: logger).decode(Int.self) {
                applied.insert(version)
            }
            for migration in migrations where !applied.contains(migration.version) {
                for statement in migration.statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query(
                    "INSERT INTO attune_migration (version, name) VALUES (\(migration.version), \(migration.name))", logger: logger)
                logger.notice("storage: applied migration \(migration.version) (\(migration.name))")
            }
        }
    }
}
