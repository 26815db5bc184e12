import AttuneConversation
import Foundation
import GRDB

/// Rooms in the same SQLite file as the conversation history: who was in which room when
/// (`roomMember`), and each participant's latest emotions per room (`roomEmotion`, trimmed to
/// the newest `keep` on every write).
extension HistoryStore: RoomRepository {
    public func participantJoined(room: RoomID, user: ParticipantID, info: JSONValue?, at date: Date) async throws {
        let infoJSON = try info.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) }
        try await database.write { db in
            try db.execute(
                sql: """
                    INSERT INTO roomMember (roomId, userId, userInfo, joinedAt, leftAt) VALUES (?, ?, ?, ?, NULL)
                    ON CONFLICT(roomId, userId) DO UPDATE SET userInfo = excluded.userInfo, joinedAt = excluded.joinedAt, leftAt = NULL
                    """,
                arguments: [room.rawValue, user.rawValue, infoJSON, date.timeIntervalSince1970])
        }
    }

    public func participantLeft(room: RoomID, user: ParticipantID, at date: Date) async throws {
        try await database.write { db in
            try db.execute(
                sql: "UPDATE roomMember SET leftAt = ? WHERE roomId = ? AND userId = ?",
                arguments: [date.timeIntervalSince1970, room.rawValue, user.rawValue])
        }
    }

    public func record(_ update: EmotionUpdate, keep: Int) async throws {
        let json = String(decoding: try JSONEncoder().encode(update), as: UTF8.self)
        let time = (try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(update.timestamp))?.timeIntervalSince1970
            ?? Date().timeIntervalSince1970
        try await database.write { db in
            try db.execute(
                sql: "INSERT INTO roomEmotion (roomId, userId, time, \"update\") VALUES (?, ?, ?, ?)",
                arguments: [update.roomID.rawValue, update.userID.rawValue, time, json])
            try db.execute(
                sql: """
                    DELETE FROM roomEmotion WHERE roomId = ? AND userId = ? AND rowid NOT IN
                    (SELECT rowid FROM roomEmotion WHERE roomId = ? AND userId = ? ORDER BY time DESC, rowid DESC LIMIT ?)
                    """,
                arguments: [update.roomID.rawValue, update.userID.rawValue, update.roomID.rawValue, update.userID.rawValue, keep])
        }
    }

    public func rooms(limit: Int) async throws -> [RoomSummary] {
        try await database.read { db in
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT m.roomId, SUM(m.leftAt IS NULL) AS present, COUNT(*) AS members,
                        MAX(MAX(m.joinedAt), COALESCE(MAX(m.leftAt), 0),
                            COALESCE((SELECT MAX(e.time) FROM roomEmotion e WHERE e.roomId = m.roomId), 0)) AS last
                    FROM roomMember m GROUP BY m.roomId ORDER BY last DESC LIMIT ?
                    """,
                arguments: [limit])
            return rows.compactMap { row in
                RoomID(row["roomId"] as String).map {
                    RoomSummary(
                        roomID: $0, present: row["present"], members: row["members"],
                        lastActivity: roomsTimestamp(Date(timeIntervalSince1970: row["last"])))
                }
            }
        }
    }

    public func room(_ id: RoomID) async throws -> RoomRecord? {
        try await database.read { db in
            let rows = try Row.fetchAll(
                db, sql: "SELECT * FROM roomMember WHERE roomId = ? ORDER BY joinedAt DESC", arguments: [id.rawValue])
            guard !rows.isEmpty else { return nil }
            let decoder = JSONDecoder()
            let members = try rows.compactMap { row -> RoomMemberRecord? in
                guard let user = ParticipantID(row["userId"] as String) else { return nil }
                let info: String? = row["userInfo"]
                let leftAt: Double? = row["leftAt"]
                let last = try String.fetchOne(
                    db, sql: "SELECT \"update\" FROM roomEmotion WHERE roomId = ? AND userId = ? ORDER BY time DESC, rowid DESC LIMIT 1",
                    arguments: [id.rawValue, user.rawValue])
                return RoomMemberRecord(
                    userID: user, userInfo: try info.map { try decoder.decode(JSONValue.self, from: Data($0.utf8)) },
                    joinedAt: roomsTimestamp(Date(timeIntervalSince1970: row["joinedAt"])),
                    leftAt: leftAt.map { roomsTimestamp(Date(timeIntervalSince1970: $0)) },
                    lastEmotion: try last.map { try decoder.decode(EmotionUpdate.self, from: Data($0.utf8)) })
            }
            return RoomRecord(roomID: id, members: members)
        }
    }

    public func emotions(room: RoomID, user: ParticipantID, limit: Int) async throws -> [EmotionUpdate] {
        try await database.read { db in
            let decoder = JSONDecoder()
            return try String.fetchAll(
                db, sql: "SELECT \"update\" FROM roomEmotion WHERE roomId = ? AND userId = ? ORDER BY time DESC, rowid DESC LIMIT ?",
                arguments: [room.rawValue, user.rawValue, limit]
            ).map { try decoder.decode(EmotionUpdate.self, from: Data($0.utf8)) }
        }
    }
}
