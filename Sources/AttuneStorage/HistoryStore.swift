import AttuneConversation
import AttuneCore
import Foundation
import GRDB

/// Conversation history in SQLite through GRDB: one file under the data directory, migrated on
/// open. Every turn is written in its own transaction when it completes, so a crash loses at
/// most the turn in progress (WAL journal, synchronous=NORMAL).
public final class HistoryStore: ConversationRepository {
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
    public func sessions(limit: Int) async throws -> [SessionSummary] {
        try await database.read { db in
            try SummaryRow.fetchAll(db, sql: Self.summaries + " GROUP BY s.id ORDER BY s.startedAt DESC LIMIT ?", arguments: [limit]).map(\.summary)
        }
    }

    /// A session and `limit` of its turns from `offset` (in turn order).
    public func session(id: String, offset: Int, limit: Int) async throws -> SessionRecord? {
        try await database.read { db in
            guard let summary = try SummaryRow.fetchOne(db, sql: Self.summaries + " WHERE s.id = ? GROUP BY s.id", arguments: [id])?.summary
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

/// A row of the session summaries query.
private struct SummaryRow: Decodable, FetchableRecord {
    var id: String
    var startedAt: Double
    var endedAt: Double?
    var persona: String
    var voice: String
    var turnCount: Int

    var summary: SessionSummary {
        SessionSummary(id: id, startedAt: startedAt, endedAt: endedAt, persona: persona, voice: voice, turnCount: turnCount)
    }
}
