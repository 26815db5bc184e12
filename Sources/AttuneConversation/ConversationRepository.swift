import AttuneCore
import Foundation

/// A conversation as the history API lists it.
public struct SessionSummary: Codable, Sendable, Equatable {
    public var id: String
    public var startedAt: Double
    public var endedAt: Double?
    public var persona: String
    public var voice: String
    public var turnCount: Int

    public init(id: String, startedAt: Double, endedAt: Double?, persona: String, voice: String, turnCount: Int) {
        self.id = id
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.persona = persona
        self.voice = voice
        self.turnCount = turnCount
    }
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

    public init(session: SessionSummary, turns: [StoredTurn], nextOffset: Int?) {
        self.session = session
        self.turns = turns
        self.nextOffset = nextOffset
    }

    enum CodingKeys: String, CodingKey {
        case session, turns
        case nextOffset = "next_offset"
    }
}

/// Where the companion keeps its conversations: sessions and their turns (SQLite,
/// `HistoryStore` in AttuneStorage, or a shared PostgreSQL, `PostgresStore`). Rooms keep theirs in a
/// ``RoomRepository``; one store may be both.
public protocol ConversationRepository: Sendable {
    /// Creates the session, or updates its persona and voice if it exists.
    func startSession(id: String, persona: String, voice: String, at time: Double) async throws
    func endSession(id: String, at time: Double) async throws
    /// Stores a completed turn (each in its own transaction: a crash loses at most the turn in progress).
    func append(_ turn: StoredTurn, to session: String) async throws
    /// Marks a stored turn as interrupted during playback, keeping only what was heard.
    func markInterrupted(session: String, turn index: Int, heard: String) async throws
    /// Sessions, newest first.
    func sessions(limit: Int) async throws -> [SessionSummary]
    /// A session and `limit` of its turns from `offset` (in turn order), or nil if there is none.
    func session(id: String, offset: Int, limit: Int) async throws -> SessionRecord?
    /// Erases a session and its turns; false when there was none.
    @discardableResult
    func deleteSession(id: String) async throws -> Bool
}

extension ConversationRepository {
    /// The newest 100 sessions.
    public func sessions() async throws -> [SessionSummary] { try await sessions(limit: 100) }
    /// A session with its first 1 000 turns.
    public func session(id: String) async throws -> SessionRecord? { try await session(id: id, offset: 0, limit: 1_000) }
}
