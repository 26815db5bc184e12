import AttuneConversation
import AttuneCore
import Foundation
import PostgresNIO

/// Conversations, as ``HistoryStore`` keeps them in SQLite.
extension PostgresStore: ConversationRepository {
    public func startSession(id: String, persona: String, voice: String, at time: Double) async throws {
        try await perform("starting session \(id)") { client in
            try await client.query(
                """
                INSERT INTO session (id, started_at, persona, voice) VALUES (\(id), \(time), \(persona), \(voice))
                ON CONFLICT (id) DO UPDATE SET persona = excluded.persona, voice = excluded.voice
                """)
        }
    }

    public func endSession(id: String, at time: Double) async throws {
        try await perform("ending session \(id)") { client in
            try await client.query("UPDATE session SET ended_at = \(time) WHERE id = \(id)")
        }
    }

    public func append(_ turn: StoredTurn, to session: String) async throws {
        let emotions = try jsonText(turn.emotions)
        let fused = try turn.fusedEmotion.map(jsonText)
        let timings = try jsonText(turn.timings)
        try await perform("storing turn \(turn.index) of session \(session)") { client in
            try await client.query(
                """
                INSERT INTO turn (session_id, turn_index, started_at, user_text, reply_text, interrupted, emotions, fused_emotion, timings)
                VALUES (\(session), \(turn.index), \(turn.startedAt), \(turn.userText), \(turn.replyText), \(turn.interrupted),
                    \(emotions), \(fused), \(timings))
                """)
        }
    }

    public func markInterrupted(session: String, turn index: Int, heard: String) async throws {
        try await perform("marking turn \(index) of session \(session) interrupted") { client in
            try await client.query(
                "UPDATE turn SET interrupted = true, reply_text = \(heard) WHERE session_id = \(session) AND turn_index = \(index)")
        }
    }

    public func sessions(limit: Int) async throws -> [SessionSummary] {
        try await perform("listing sessions") { client in
            var sessions: [SessionSummary] = []
            let rows = try await client.query(
                """
                SELECT s.id, s.started_at, s.ended_at, s.persona, s.voice, COUNT(t.id)
                FROM session s LEFT JOIN turn t ON t.session_id = s.id
                GROUP BY s.id ORDER BY s.started_at DESC LIMIT \(limit)
                """)
            for try await (id, started, ended, persona, voice, turns) in rows.decode((String, Double, Double?, String, String, Int).self) {
                sessions.append(SessionSummary(id: id, startedAt: started, endedAt: ended, persona: persona, voice: voice, turnCount: turns))
            }
            return sessions
        }
    }

    public func session(id: String, offset: Int, limit: Int) async throws -> SessionRecord? {
        try await perform("reading session \(id)") { client in
            var summary: SessionSummary?
            for try await (id, started, ended, persona, voice, turns) in try await client.query(
                """
                SELECT s.id, s.started_at, s.ended_at, s.persona, s.voice, COUNT(t.id)
                FROM session s LEFT JOIN turn t ON t.session_id = s.id WHERE s.id = \(id) GROUP BY s.id
                """
            ).decode((String, Double, Double?, String, String, Int).self) {
                summary = SessionSummary(id: id, startedAt: started, endedAt: ended, persona: persona, voice: voice, turnCount: turns)
            }
            guard let summary else { return nil }
            var turns: [StoredTurn] = []
            let rows = try await client.query(
                """
                SELECT turn_index, started_at, user_text, reply_text, interrupted, emotions, fused_emotion, timings
                FROM turn WHERE session_id = \(id) ORDER BY turn_index LIMIT \(limit + 1) OFFSET \(offset)
                """)
            let decoder = JSONDecoder()
            for try await (index, started, user, reply, interrupted, emotions, fused, timings) in rows.decode(
                (Int, Double, String, String, Bool, String, String?, String).self)
            {
                turns.append(
                    StoredTurn(
                        index: index, startedAt: started, userText: user, replyText: reply, interrupted: interrupted,
                        emotions: try decoder.decode([String: EmotionEstimate].self, from: Data(emotions.utf8)),
                        fusedEmotion: try fused.map { try decoder.decode(EmotionEstimate.self, from: Data($0.utf8)) },
                        timings: try decoder.decode(TurnTimings.self, from: Data(timings.utf8))))
            }
            let more = turns.count > limit
            return SessionRecord(session: summary, turns: Array(turns.prefix(limit)), nextOffset: more ? offset + limit : nil)
        }
    }

    @discardableResult
    public func deleteSession(id: String) async throws -> Bool {
        try await perform("deleting session \(id)") { client in
            var deleted = false
            for try await _ in try await client.query("DELETE FROM session WHERE id = \(id) RETURNING id").decode(String.self) {
                deleted = true
            }
            return deleted
        }
    }
}

/// Rooms, as ``HistoryStore`` keeps them in SQLite, plus this instance's name on each present
/// participant and an event for the other instances with every change (in the same transaction).
extension PostgresStore: RoomRepository {
    public func participantJoined(room: RoomID, user: ParticipantID, info: JSONValue?, at date: Date) async throws {
        let infoJSON = try info.map(jsonText)
        let me = instanceID
        try await perform("storing \(user) joining \(room)") { client in
            try await client.withTransaction(logger: Self.quiet) { connection in
                try await connection.query(
                    """
                    INSERT INTO room_member (room_id, user_id, user_info, joined_at, left_at, instance_id)
                    VALUES (\(room.rawValue), \(user.rawValue), \(infoJSON), \(date.timeIntervalSince1970), NULL, \(me))
                    ON CONFLICT (room_id, user_id) DO UPDATE
                    SET user_info = excluded.user_info, joined_at = excluded.joined_at, left_at = NULL, instance_id = excluded.instance_id
                    """, logger: Self.quiet)
                try await Self.announce(.joined(room: room, user: user, info: info, at: date), from: me, on: connection)
            }
        }
    }

    public func participantLeft(room: RoomID, user: ParticipantID, at date: Date) async throws {
        let me = instanceID
        try await perform("storing \(user) leaving \(room)") { client in
            try await client.withTransaction(logger: Self.quiet) { connection in
                // Only this instance's membership: the participant may have moved to another one.
                var left = false
                for try await _ in try await connection.query(
                    """
                    UPDATE room_member SET left_at = \(date.timeIntervalSince1970)
                    WHERE room_id = \(room.rawValue) AND user_id = \(user.rawValue) AND instance_id = \(me) RETURNING user_id
                    """, logger: Self.quiet
                ).decode(String.self) {
                    left = true
                }
                if left { try await Self.announce(.left(room: room, user: user), from: me, on: connection) }
            }
        }
    }

    public func record(_ update: EmotionUpdate, keep: Int) async throws {
        let json = try jsonText(update)
        let time = (try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(update.timestamp))?.timeIntervalSince1970
            ?? Date().timeIntervalSince1970
        let (room, user, me) = (update.roomID.rawValue, update.userID.rawValue, instanceID)
        try await perform("storing an emotion of \(user) in \(room)") { client in
            try await client.withTransaction(logger: Self.quiet) { connection in
                try await connection.query(
                    "INSERT INTO room_emotion (room_id, user_id, time, update) VALUES (\(room), \(user), \(time), \(json))", logger: Self.quiet)
                try await connection.query(
                    """
                    DELETE FROM room_emotion WHERE room_id = \(room) AND user_id = \(user) AND id NOT IN
                    (SELECT id FROM room_emotion WHERE room_id = \(room) AND user_id = \(user) ORDER BY time DESC, id DESC LIMIT \(keep))
                    """, logger: Self.quiet)
                try await Self.announce(.emotion(update), from: me, on: connection)
            }
        }
    }

    public func rooms(limit: Int) async throws -> [RoomSummary] {
        try await perform("listing rooms") { client in
            var rooms: [RoomSummary] = []
            let rows = try await client.query(
                """
                SELECT m.room_id, COUNT(*) FILTER (WHERE m.left_at IS NULL), COUNT(*),
                    GREATEST(MAX(m.joined_at), COALESCE(MAX(m.left_at), 0),
                        COALESCE((SELECT MAX(e.time) FROM room_emotion e WHERE e.room_id = m.room_id), 0)) AS last
                FROM room_member m GROUP BY m.room_id ORDER BY last DESC LIMIT \(limit)
                """)
            for try await (room, present, members, last) in rows.decode((String, Int, Int, Double).self) {
                guard let id = RoomID(room) else { continue }
                rooms.append(RoomSummary(roomID: id, present: present, members: members, lastActivity: roomsTimestamp(Date(timeIntervalSince1970: last))))
            }
            return rooms
        }
    }

    public func room(_ id: RoomID) async throws -> RoomRecord? {
        let members = try await members(of: id)
        return members.isEmpty ? nil : RoomRecord(roomID: id, members: members)
    }

    public func emotions(room: RoomID, user: ParticipantID, limit: Int) async throws -> [EmotionUpdate] {
        try await perform("reading emotions of \(user) in \(room)") { client in
            var updates: [EmotionUpdate] = []
            let decoder = JSONDecoder()
            for try await json in try await client.query(
                """
                SELECT update FROM room_emotion WHERE room_id = \(room.rawValue) AND user_id = \(user.rawValue)
                ORDER BY time DESC, id DESC LIMIT \(limit)
                """
            ).decode(String.self) {
                updates.append(try decoder.decode(EmotionUpdate.self, from: Data(json.utf8)))
            }
            return updates
        }
    }

    /// Everyone who was ever in the room, newest first, each with their latest emotion.
    func members(of room: RoomID) async throws -> [RoomMemberRecord] {
        try await members("reading room \(room)", """
            \(unescaped: Self.memberColumns) WHERE m.room_id = \(room.rawValue) ORDER BY m.joined_at DESC
            """)
    }

    /// Who is in the room now through another instance than `instance`.
    func members(presentIn room: RoomID, except instance: String) async throws -> [RoomMemberRecord] {
        try await members("reading who is in room \(room)", """
            \(unescaped: Self.memberColumns)
            WHERE m.room_id = \(room.rawValue) AND m.left_at IS NULL AND m.instance_id <> \(instance)
            ORDER BY m.joined_at DESC
            """)
    }

    /// A member row with the member's latest emotion; `m` is `room_member`.
    private static let memberColumns = """
        SELECT m.user_id, m.user_info, m.joined_at, m.left_at,
            (SELECT e.update FROM room_emotion e WHERE e.room_id = m.room_id AND e.user_id = m.user_id ORDER BY e.time DESC, e.id DESC LIMIT 1)
        FROM room_member m
        """

    private func members(_ what: String, _ query: PostgresQuery) async throws -> [RoomMemberRecord] {
        try await perform(what) { client in
            var members: [RoomMemberRecord] = []
            let decoder = JSONDecoder()
            let rows = try await client.query(query)
            for try await (user, info, joined, left, last) in rows.decode((String, String?, Double, Double?, String?).self) {
                guard let user = ParticipantID(user) else { continue }
                members.append(
                    RoomMemberRecord(
                        userID: user, userInfo: try info.map { try decoder.decode(JSONValue.self, from: Data($0.utf8)) },
                        joinedAt: roomsTimestamp(Date(timeIntervalSince1970: joined)),
                        leftAt: left.map { roomsTimestamp(Date(timeIntervalSince1970: $0)) },
                        lastEmotion: try last.map { try decoder.decode(EmotionUpdate.self, from: Data($0.utf8)) }))
            }
            return members
        }
    }
}

/// JSON as text, the way both stores keep structured values.
func jsonText(_ value: some Encodable) throws -> String {
    String(decoding: try JSONEncoder().encode(value), as: UTF8.self)
}
