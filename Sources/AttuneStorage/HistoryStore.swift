import AttuneCore
import Foundation
import GRDB

/// A conversation as the history API lists it.
public struct SessionSummary: Codable, Sendable, Equatable, FetchableRecord {
    public var id: String
    public var startedAt: Double
    public var endedAt: Double?
    public var persona: String
    public var voice: String
    public var turnCount: Int
}

/// Per-turn timings, in milliseconds from the end of the person's speech.
public struct TurnTimings: Codable, Sendable, Equatable {
    public var transcriptMs: Double?
    public var firstTokenMs: Double?
    public var firstAudioMs: Double?
    public var totalMs: Double?

    public init(transcriptMs: Double? = nil, firstTokenMs: Double? = nil, firstAudioMs: Double? = nil, totalMs: Double? = nil) {
        self.transcriptMs = transcriptMs
        self.firstTokenMs = firstTokenMs
        self.firstAudioMs = firstAudioMs
        self.totalMs = totalMs
    }
}

/// One completed turn: what the person said and felt, and what Attune answered.
public struct StoredTurn: Codable, Sendable, Equatable {
    public var index: Int
    public var startedAt: Double
    public var userText: String
    /// What Attune said; for an interrupted turn, what the person heard before interrupting.
    public var replyText: String
    public var interrupted: Bool
    /// Estimates by channel name (`text`, `voice`, `face`).
    public var emotions: [String: EmotionEstimate]
    public var fusedEmotion: EmotionEstimate?
    public var timings: TurnTimings

    public init(
        index: Int, startedAt: Double, userText: String, replyText: String, interrupted: Bool,
        emotions: [String: EmotionEstimate], fusedEmotion: EmotionEstimate?, timings: TurnTimings
    ) {
        self.index = index
        self.startedAt = startedAt
        self.userText = userText
        self.replyText = replyText
        self.interrupted = interrupted
        self.emotions = emotions
        self.fusedEmotion = fusedEmotion
        self.timings = timings
    }
}

/// A session with all its turns.
public struct SessionRecord: Codable, Sendable, Equatable {
    public var session: SessionSummary
    /// One page of the session's turns, in order.
    public var turns: [StoredTurn]
    /// Where the next page starts (`?offset=`), or nil on the last page.
    public var nextOffset: Int?

    enum CodingKeys: String, CodingKey {
        case session, turns
        case nextOffset = "next_offset"
    }
}

/// Conversation history in SQLite through GRDB: one file under the data directory, migrated on
/// open. Every turn is written in its own transaction when it completes, so a crash loses at
/// most the turn in progress (WAL journal, synchronous=NORMAL).
public final class HistoryStore: Sendable {
    let database: DatabasePool
    public let path: String

    public init(path: String) throws {
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        configuration.busyMode = .timeout(5)
        do {
            database = try DatabasePool(path: path, configuration: configuration)
            try Self.migrator.migrate(database)
        } catch {
            throw StorageError(description: "cannot open the history database \(path): \(error)")
        }
        self.path = path
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: sessions and turns") { db in
            try db.create(table: "session") { t in
                t.primaryKey("id", .text)
                t.column("startedAt", .double).notNull()
                t.column("endedAt", .double)
                t.column("persona", .text).notNull()
                t.column("voice", .text).notNull()
            }
            try db.create(table: "turn") { t in
                t.autoIncrementedPrimaryKey("rowid")
                t.belongsTo("session", onDelete: .cascade).notNull()
                t.column("turnIndex", .integer).notNull()
                t.column("startedAt", .double).notNull()
                t.column("userText", .text).notNull()
                t.column("replyText", .text).notNull()
                t.column("interrupted", .boolean).notNull()
                t.column("emotions", .jsonText).notNull()
                t.column("fusedEmotion", .jsonText)
                t.column("timings", .jsonText).notNull()
                t.uniqueKey(["sessionId", "turnIndex"])
            }
        }
        migrator.registerMigration("v2: rooms") { db in
            try db.create(table: "roomMember") { t in
                t.column("roomId", .text).notNull()
                t.column("userId", .text).notNull()
                t.column("userInfo", .jsonText)
                t.column("joinedAt", .double).notNull()
                t.column("leftAt", .double)
                t.primaryKey(["roomId", "userId"])
            }
            try db.create(table: "roomEmotion") { t in
                t.autoIncrementedPrimaryKey("rowid")
                t.column("roomId", .text).notNull()
                t.column("userId", .text).notNull()
                t.column("time", .double).notNull()
                t.column("update", .jsonText).notNull()
            }
            try db.create(index: "roomEmotionByUser", on: "roomEmotion", columns: ["roomId", "userId", "time"])
        }
        return migrator
    }

    public func startSession(id: String, persona: String, voice: String, at time: Double) async throws {
        try await database.write { db in
            try db.execute(
                sql: "INSERT INTO session (id, startedAt, persona, voice) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET persona = excluded.persona, voice = excluded.voice",
                arguments: [id, time, persona, voice])
        }
    }

    public func endSession(id: String, at time: Double) async throws {
        try await database.write { db in
            try db.execute(sql: "UPDATE session SET endedAt = ? WHERE id = ?", arguments: [time, id])
        }
    }

    public func append(_ turn: StoredTurn, to session: String) async throws {
        let encoder = JSONEncoder()
        let emotions = String(decoding: try encoder.encode(turn.emotions), as: UTF8.self)
        let fused = try turn.fusedEmotion.map { String(decoding: try encoder.encode($0), as: UTF8.self) }
        let timings = String(decoding: try encoder.encode(turn.timings), as: UTF8.self)
        try await database.write { db in
            try db.execute(
                sql: """
                    INSERT INTO turn (sessionId, turnIndex, startedAt, userText, replyText, interrupted, emotions, fusedEmotion, timings)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [session, turn.index, turn.startedAt, turn.userText, turn.replyText, turn.interrupted, emotions, fused, timings])
        }
    }

    /// Marks a stored turn as interrupted during playback, keeping only what was heard.
    public func markInterrupted(session: String, turn index: Int, heard: String) async throws {
        try await database.write { db in
            try db.execute(
                sql: "UPDATE turn SET interrupted = 1, replyText = ? WHERE sessionId = ? AND turnIndex = ?",
                arguments: [heard, session, index])
        }
    }

    /// Sessions with their turn counts; callers add the filter, grouping and order.
    private static let summaries = """
        SELECT s.id, s.startedAt, s.endedAt, s.persona, s.voice, COUNT(t.rowid) AS turnCount
        FROM session s LEFT JOIN turn t ON t.sessionId = s.id
        """

    /// Sessions, newest first.
    public func sessions(limit: Int = 100) async throws -> [SessionSummary] {
        try await database.read { db in
            try SessionSummary.fetchAll(db, sql: Self.summaries + " GROUP BY s.id ORDER BY s.startedAt DESC LIMIT ?", arguments: [limit])
        }
    }

    /// A session and `limit` of its turns from `offset` (in turn order).
    public func session(id: String, offset: Int = 0, limit: Int = 1_000) async throws -> SessionRecord? {
        try await database.read { db in
            guard let summary = try SessionSummary.fetchOne(db, sql: Self.summaries + " WHERE s.id = ? GROUP BY s.id", arguments: [id])
            else { return nil }
            let decoder = JSONDecoder()
            let rows = try Row.fetchAll(
                db, sql: "SELECT * FROM turn WHERE sessionId = ? ORDER BY turnIndex LIMIT ? OFFSET ?", arguments: [id, limit + 1, offset])
            let turns = try rows.map { row -> StoredTurn in
                let emotions: String = row["emotions"]
                let fused: String? = row["fusedEmotion"]
                let timings: String = row["timings"]
                return StoredTurn(
                    index: row["turnIndex"], startedAt: row["startedAt"], userText: row["userText"], replyText: row["replyText"],
                    interrupted: row["interrupted"],
                    emotions: try decoder.decode([String: EmotionEstimate].self, from: Data(emotions.utf8)),
                    fusedEmotion: try fused.map { try decoder.decode(EmotionEstimate.self, from: Data($0.utf8)) },
                    timings: try decoder.decode(TurnTimings.self, from: Data(timings.utf8)))
            }
            let more = turns.count > limit
            return SessionRecord(session: summary, turns: Array(turns.prefix(limit)), nextOffset: more ? offset + limit : nil)
        }
    }

    /// Erases a session and its turns; false when there was none.
    @discardableResult
    public func deleteSession(id: String) async throws -> Bool {
        try await database.write { db in
            try db.execute(sql: "DELETE FROM session WHERE id = ?", arguments: [id])
            return db.changesCount > 0
        }
    }
}
