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

    @Test(arguments: StorageBackend.allCases)
    func turnsSurviveReopeningTheStoreAndDeleteErasesThem(_ backend: StorageBackend) async throws {
        try await backend.withPlace { place in
            try await place.withStore { store in
                try await store.startSession(id: "s1", persona: "companion", voice: "joe", at: 1_000)
                try await store.append(turn(1), to: "s1")
                try await store.append(turn(2, interrupted: true), to: "s1")
                try await store.startSession(id: "s2", persona: "interviewer", voice: "ava", at: 2_000)
                try await store.endSession(id: "s2", at: 2_100)
            }
            // A new store on the same file or database: another server process after a restart.
            try await place.withStore { reopened in
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
        }
    }

    @Test(arguments: StorageBackend.allCases)
    func pagesOfTurnsAndAnInterruptedTurn(_ backend: StorageBackend) async throws {
        try await backend.withPlace { place in
            try await place.withStore { store in
                try await store.startSession(id: "p", persona: "companion", voice: "joe", at: 5_000)
                for index in 1...5 { try await store.append(turn(index), to: "p") }
                try await store.markInterrupted(session: "p", turn: 3, heard: "That's")
                // Starting a session again keeps its turns and changes its persona and voice.
                try await store.startSession(id: "p", persona: "interviewer", voice: "ava", at: 6_000)
                let first = try #require(try await store.session(id: "p", offset: 0, limit: 2))
                #expect(first.turns.map(\.index) == [1, 2])
                #expect(first.nextOffset == 2)
                #expect(first.session.persona == "interviewer")
                #expect(first.session.startedAt == 5_000)
                let last = try #require(try await store.session(id: "p", offset: 2, limit: 10))
                #expect(last.turns.map(\.index) == [3, 4, 5])
                #expect(last.nextOffset == nil)
                #expect(last.turns[0].interrupted && last.turns[0].replyText == "That's")
                #expect(try await store.sessions(limit: 1).count == 1)
                // The same turn twice is refused, not duplicated.
                await #expect(throws: (any Error).self) { try await store.append(turn(5), to: "p") }
                #expect(try await store.session(id: "p")?.turns.count == 5)
            }
        }
    }

    @Test func anUnwritablePathIsAClearError() {
        #expect(throws: StorageError.self) { try HistoryStore(path: "/proc/attune/history.sqlite") }
    }
}
