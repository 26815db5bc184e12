import AttuneConversation
import AttuneCore
import AttuneStorage
import AttuneTestSupport
import Foundation
import Testing

@Suite struct HistoryStoreTests {
    func turn(_ index: Int, interrupted: Bool = false) -> StoredTurn {
        let estimate = EmotionEstimate(scores: [.sadness: 0.7, .neutral: 0.3], channel: .text, subject: "s1", time: 1_000)
        return StoredTurn(
            index: index, startedAt: 1_000 + Double(index), userText: "I lost my keys again (\(index))", replyText: "That's annoying.",
            interrupted: interrupted, emotions: ["text": estimate], fusedEmotion: estimate,
            timings: TurnTimings(transcriptMs: 120, firstTokenMs: 400, firstAudioMs: 900, totalMs: 2_000))
    }

    @Test func turnsSurviveReopeningTheFileAndDeleteErasesThem() async throws {
        let directory = TestData.temporaryDirectory()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/history.sqlite"
        do {
            let store = try HistoryStore(path: path)
            try await store.startSession(id: "s1", persona: "companion", voice: "joe", at: 1_000)
            try await store.append(turn(1), to: "s1")
            try await store.append(turn(2, interrupted: true), to: "s1")
            try await store.startSession(id: "s2", persona: "interviewer", voice: "ava", at: 2_000)
            try await store.endSession(id: "s2", at: 2_100)
        }
        // A new store on the same file: another server process after a restart.
        let reopened = try HistoryStore(path: path)
        let sessions = try await reopened.sessions()
        #expect(sessions.map(\.id) == ["s2", "s1"])
        #expect(sessions.map(\.turnCount) == [0, 2])
        #expect(sessions[0].endedAt == 2_100)
        let record = try #require(try await reopened.session(id: "s1"))
        #expect(record.turns == [turn(1), turn(2, interrupted: true)])

        #expect(try await reopened.deleteSession(id: "s1"))
        #expect(try await reopened.session(id: "s1") == nil)
        #expect(try await !reopened.deleteSession(id: "s1"))
        #expect(try await reopened.sessions().map(\.id) == ["s2"])
    }

    @Test func anUnwritablePathIsAClearError() {
        #expect(throws: StorageError.self) { try HistoryStore(path: "/proc/attune/history.sqlite") }
    }
}
