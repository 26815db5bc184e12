@testable import AttuneBench
import Foundation
import Testing

/// How `attune bench conversation` lays out its sessions and when it speaks the next turn of one.
struct ConversationBenchmarkTests {
    @Test func sessionsTakeTheirTurnsInOrderAndEveryFourthIsABargeIn() {
        let single = ConversationBenchmark.sessions(items: 8, turnsPerSession: 1, bargeInEvery: 4)
        #expect(single.map(\.items) == [[0], [1], [2], [3], [4], [5], [6], [7]])
        #expect(single.map(\.bargeIn) == [false, false, false, true, false, false, false, true])

        let conversations = ConversationBenchmark.sessions(items: 11, turnsPerSession: 3, bargeInEvery: 4)
        #expect(conversations.map(\.items) == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9], [10]])
        #expect(conversations.map(\.bargeIn) == [false, false, false, true, false])

        #expect(ConversationBenchmark.sessions(items: 4, turnsPerSession: 2, bargeInEvery: 0).allSatisfy { !$0.bargeIn })
    }

    @Test func theNextTurnWaitsUntilTheReplyHasBeenHeard() {
        let now = ContinuousClock.now
        func event(_ type: String, _ fields: [String: String], secondsAgo: Double) -> ReceivedEvent {
            ReceivedEvent(type: type, fields: fields.merging(["type": type]) { $1 }, arrival: now - .seconds(secondsAgo))
        }
        // Reply 1: two sentences, 1 s and 0.5 s of audio, the first sent 3 s ago.
        var events = [
            event("reply_audio", ["reply": "1", "samples": "16000", "sample_rate": "16000"], secondsAgo: 3),
            event("reply_audio", ["reply": "1", "samples": "11025", "sample_rate": "22050"], secondsAgo: 2.8),
        ]
        #expect(!ConversationBenchmark.heard(replies: 1, in: events), "not done yet")
        events.append(event("reply_done", ["reply": "1"], secondsAgo: 2.5))
        #expect(ConversationBenchmark.heard(replies: 1, in: events), "heard 1.5 s ago")
        #expect(!ConversationBenchmark.heard(replies: 2, in: events), "the second reply has not come")

        // Reply 2: 10 s of audio that began 2 s ago is still playing.
        events.append(event("reply_audio", ["reply": "2", "samples": "160000", "sample_rate": "16000"], secondsAgo: 2))
        events.append(event("reply_done", ["reply": "2"], secondsAgo: 1))
        #expect(!ConversationBenchmark.heard(replies: 2, in: events))
    }
    /// The silence a listener hears after the opener: from its end, played from its first frame,
    /// to the first frame of the model's own words; none when those come before it ends.
    @Test func theSilenceAfterTheOpenerCountsFromTheOpenersEnd() {
        let start = ContinuousClock.now
        func event(_ type: String, _ fields: [String: String] = [:], at seconds: Double) -> ReceivedEvent {
            ReceivedEvent(type: type, fields: fields.merging(["type": type]) { $1 }, arrival: start + .seconds(seconds))
        }
        let item = TurnBenchmark.Item(clip: "clip", audio: [], speechEnd: 0, lastWord: 0)
        func measure(answerAt: Double) -> TurnMeasurement {
            TurnMeasurement(item: item, position: 0, events: [
                event("speech_ended", at: 0.5),
                event("reply_started", ["opener": "Oh, I'm so sorry."], at: 0.6),
                // The opener: 1.3 s of audio at 22.05 kHz, its first frame at 0.8 s.
                event("reply_audio", ["sentence": "1", "samples": "28665", "sample_rate": "22050"], at: 0.7),
                event("audio_frame", at: 0.8),
                event("reply_audio", ["sentence": "2", "samples": "22050", "sample_rate": "22050"], at: answerAt - 0.05),
                event("audio_frame", at: answerAt),
                event("reply_done", at: answerAt + 1),
            ], speechEnd: start, lastWord: start)
        }
        let late = measure(answerAt: 3.1)
        #expect(late.voiceToVoice.map { abs($0 - 800) < 1 } == true)
        #expect(late.voiceToAnswer.map { abs($0 - 3_100) < 1 } == true)
        #expect(late.silenceAfterOpener.map { abs($0 - 1_000) < 1 } == true, "\(String(describing: late.silenceAfterOpener))")
        #expect(measure(answerAt: 1.5).silenceAfterOpener == 0)
    }
}
