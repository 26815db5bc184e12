import AttuneAudio
import AttuneBench
import AttuneServer
import AttuneSpeech
import AttuneTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

/// Runs `body` against a live server (real sockets) built from the test configuration.
func withLiveServer(
    _ edit: (inout AttuneConfiguration) -> Void = { _ in },
    _ body: @escaping @Sendable (Int) async throws -> Void
) async throws {
    let app = try await TestSupport.application(edit)
    try await app.test(.live) { client in
        try await body(client.port!)
    }
}

func ravdessSamples(_ name: String) throws -> [Float] {
    try Resampler.resample(try AudioFileDecoder().read(contentsOf: TestData.ravdess(name)), to: 16_000).samples
}

@Suite struct ConversationTests {
    @Test func aSpokenSentenceBecomesEventsInOrder() async throws {
        let audio = try ravdessSamples("03-01-01-01-01-01-01")
        try await withLiveServer { port in
            var client = ConversationClient(port: port)
            client.pace = 1
            let events = try await client.stream(audio) { events in events.contains { $0.type == "emotion" && $0["channel"] == "text" } }
                .filter { $0.type != "client_audio_started" }
            let types = events.map(\.type)
            #expect(types.first == "session_started")
            let started = try #require(types.firstIndex(of: "speech_started"))
            let ended = try #require(types.firstIndex(of: "speech_ended"))
            let final = try #require(types.firstIndex(of: "transcript_final"))
            #expect(started < ended && ended < final)
            let transcript = events[final]
            #expect(transcript["text"]?.lowercased().contains("kids are talking by the door") == true)
            #expect((transcript.number("confidence") ?? 0) > 0.5)
            #expect(abs((events[ended].number("start") ?? 0) - 1.0) < 0.4)
            // The final transcript's words get a text emotion estimate, and the fused state its first update.
            let emotion = try #require(events.first { $0.type == "emotion" && $0["channel"] == "text" })
            #expect(emotion["utterance"] == "1")
            #expect(events.contains { $0.type == "emotion_update" && $0["channel"] == "fused" })
        }
    }

    /// The voice channel: streaming estimates while the person speaks (every
    /// `voice.stream_seconds`), then the whole utterance, fused with the words.
    @Test func theVoiceIsReadWhileSpeakingAndForTheWholeUtterance() async throws {
        let audio = try ravdessSamples("03-01-05-02-02-01-02")  // angry, strong: about 2.5 s of speech
        try await withLiveServer({ $0.voice.streamSeconds = 0.8 }) { port in
            var client = ConversationClient(port: port)
            client.pace = 1
            let events = try await client.stream(audio) { events in events.contains { $0.type == "emotion" && $0["channel"] == "text" } }
            let ended = try #require(events.firstIndex { $0.type == "speech_ended" })
            let voice = events.enumerated().filter { $0.element.type == "emotion" && $0.element["channel"] == "voice" }
            // At least one estimate while speaking, and one for the utterance after it ended.
            #expect(voice.contains { $0.offset < ended }, "\(events.map(\.type))")
            #expect(voice.contains { $0.offset > ended }, "\(events.map(\.type))")
            for (_, estimate) in voice {
                #expect(estimate["utterance"] == "1")
                #expect(["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"].contains(estimate["label"] ?? ""))
            }
            #expect(events.contains { $0.type == "emotion_update" && $0["channel"] == "fused" })
        }
    }
}

/// A pause whose transcript stops mid-sentence is held (`turn.hold_unfinished`): the session
/// decodes the pause, sees "… talking by", and waits `turn.unfinished_silence_ms` instead of
/// `turn.silence_ms`. In the 1.2 s pause the client stops sending 0.1 s after the pause is offered
/// (before the 0.5 s silence) until the pause's transcript arrives, so the decode is never late,
/// however loaded the machine.
@Suite struct HeldPauseSessionTests {
    /// The session's end-of-turn silence is 250 ms, 50 ms after the pause is offered for its
    /// transcript: far sooner than Whisper decodes it, so the hold comes in time only because the
    /// listener waits for the pause's transcript (`turn.await_pause_transcript`) before its
    /// silence may end the turn.
    @Test(arguments: [("by", 1), ("talking", 2)])
    func aPauseIsHeldWhenItsWordsLeaveTheSentenceOpen(cutAfter: String, turns: Int) async throws {
        var settings = TurnBenchmark.Settings()
        settings.pausesMs = [1_200]
        settings.snrDB = nil
        let benchmark = TurnBenchmark(settings: settings)
        let item = try #require(
            try await TurnBenchmarkTests.item(
                of: try ravdessSamples("03-01-01-01-01-01-01"), cutAfter: cutAfter, pauseMs: 1_200, benchmark: benchmark))
        let resume = try #require(item.resume)
        // The session's detector offers the pause (the same detector on the same frames) well
        // inside it, so that the speaker goes on only after 250 ms of silence.
        let offered = try #require(try Self.firstPauseOffered(in: item.audio))
        #expect(offered > resume - 1.2 && offered < resume - 0.5)
        let word = cutAfter
        try await withLiveServer({ $0.stream.partialInterval = 60; $0.turn.trailingSilence = 0.25 }) { port in
            var client = ConversationClient(port: port)
            client.trailingSilence = 0
            let events = try await client.stream(item.audio) { events in
                events.contains { $0.type == "transcript_final" && ($0["text"] ?? "").lowercased().contains("door") }
            }
            let finals = events.filter { $0.type == "transcript_final" }.compactMap { $0["text"] }
            // Partials are off (a minute apart), so the first partial is the pause's transcript.
            let pause = events.first { $0.type == "transcript_partial" }?["text"] ?? ""
            #expect(SentenceEnding.seemsUnfinished(pause) == (turns == 1), "the pause's transcript: \(pause)")
            let ends = events.filter { $0.type == "speech_ended" }.compactMap { $0["end"] }
            #expect(ends.count == turns, "cut after '\(word)': turns ending at \(ends), transcripts \(finals)")
            #expect(finals.last?.lowercased().contains(turns == 1 ? "kids are talking by the door" : "door") == true, "\(finals)")
        }
    }

    /// When a turn detector with the default settings, fed `audio` in 20 ms frames, offers its first pause.
    static func firstPauseOffered(in audio: [Float]) throws -> Double? {
        var turns = TurnDetector(detector: try SileroVoiceActivityDetector(model: TestData.vadModel, settings: .forTurns(TurnSettings())))
        for start in stride(from: 0, to: audio.count, by: 320) {
            for case .paused in turns.accept(Array(audio[start..<min(start + 320, audio.count)])) {
                return Double(start + 320) / 16_000
            }
        }
        return nil
    }
}

@Suite struct ConversationInputTests {
    @Test func silenceAndNoiseGiveNoTranscript() async throws {
        var generator = SystemRandomNumberGenerator()
        let noise = (0..<48_000).map { _ in Float.random(in: -0.01...0.01, using: &generator) }
        let silence = [Float](repeating: 0, count: 32_000)
        try await withLiveServer { port in
            var client = ConversationClient(port: port)
            client.pace = 4
            client.settleTimeout = .seconds(2)
            let events = try await client.stream(silence + noise + silence)
            let types = Set(events.map(\.type))
            #expect(types.contains("session_started"))
            #expect(!types.contains("speech_started"))
            #expect(!types.contains("transcript_final"))
            #expect(!types.contains("transcript_partial"))
        }
    }

    @Test func badFramesGetErrorsAndTheSessionGoesOn() async throws {
        let audio = try ravdessSamples("03-01-02-01-02-02-03")
        func base64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }
        let nan = Array(withUnsafeBytes(of: Float.nan.bitPattern.littleEndian) { Array($0) }) + [0, 0, 0, 0]
        let extras: [ConversationClient.Extra] = [
            .binary([1, 2, 3]),  // odd byte count
            .binary([]),  // empty frame
            .binary([UInt8](repeating: 0, count: 70_000)),  // over stream.max_frame_bytes
            .text("this is not json"),
            .text(#"{"type":"dance"}"#),
            .text(#"{"type":"audio_data","audio_data":"AAAA","sample_rate":96000}"#),
            .text(#"{"type":"audio_data","audio_data":"\#(base64(nan))","sample_rate":16000,"encoding":"pcm_f32le"}"#),
            .text(#"{"type":"audio_data","audio_data":"%%%","sample_rate":16000}"#),
            .text(#"{"type":"ping"}"#),
        ]
        try await withLiveServer { port in
            let events = try await ConversationClient(port: port).stream(audio, before: extras)
            let codes = events.filter { $0.type == "error" }.compactMap { $0["code"] }
            #expect(codes == [
                "odd_frame", "empty_frame", "frame_too_large", "bad_message", "unknown_message",
                "unsupported_sample_rate", "bad_samples", "bad_message",
            ])
            #expect(events.contains { $0.type == "pong" })
            // After all that, the real speech is still heard and transcribed.
            let final = try #require(events.first { $0.type == "transcript_final" })
            #expect(final["text"]?.lowercased().contains("dogs are sitting by the door") == true)
        }
    }

    @Test func audioDataAtOtherRatesIsResampled() async throws {
        let audio = try ravdessSamples("03-01-03-02-01-01-05")
        let rate = 44_100
        let resampled = try Resampler.resample(AudioBuffer(samples: audio, sampleRate: 16_000), to: rate).samples
            + [Float](repeating: 0, count: rate * 3 / 2)
        let frames = stride(from: 0, to: resampled.count, by: rate / 10).map { start -> ConversationClient.Extra in
            let chunk = Array(resampled[start..<min(start + rate / 10, resampled.count)])
            let payload = Data(PCM.int16LittleEndian(from: chunk)).base64EncodedString()
            return .text(#"{"type":"audio_data","sample_rate":\#(rate),"audio_data":"\#(payload)"}"#)
        }
        try await withLiveServer { port in
            var client = ConversationClient(port: port)
            client.trailingSilence = 0
            let events = try await client.stream([], before: frames)
            let final = try #require(events.first { $0.type == "transcript_final" })
            #expect(final["text"]?.lowercased().contains("kids are talking by the door") == true)
        }
    }

    @Test func endTurnFromTheClientClosesTheUtteranceAtOnce() async throws {
        // Speech with no trailing silence: only the client's end_turn can end the turn.
        let audio = Array(try ravdessSamples("03-01-01-01-01-01-01")[..<36_000])
        try await withLiveServer { port in
            var client = ConversationClient(port: port)
            client.trailingSilence = 0
            client.pace = 0
            let events = try await client.stream(audio, after: [.text(#"{"type":"end_turn"}"#)])
            let ended = try #require(events.first { $0.type == "speech_ended" })
            #expect(ended["reason"] == "client")
            #expect(events.contains { $0.type == "transcript_final" })
        }
    }

    @Test func cameraFramesGiveFacesAndTheFaceChannelAndExcessFramesAreDropped() async throws {
        let happy = try FaceRouteTests.frame("happy")
        let url = "data:image/jpeg;base64," + Data(happy).base64EncodedString()
        let frame = ConversationClient.Extra.text(#"{"type":"video_frame","frame":"\#(url)","timestamp":1700000000.5}"#)
        let extras: [ConversationClient.Extra] = [.text(#"{"type":"video_frame","frame":"data:image/gif;base64,R0lGODlh"}"#)]
            + Array(repeating: frame, count: 10)
        try await withLiveServer { port in
            var client = ConversationClient(port: port)
            client.trailingSilence = 0.2
            let events = try await client.stream([Float](repeating: 0, count: 4_800), before: extras) { events in
                events.contains { $0.type == "faces" } && events.contains { $0.type == "emotion" && $0["channel"] == "face" }
                    && events.contains { $0.type == "error" } && events.contains { $0.type == "emotion_update" }
            }
            #expect(events.filter { $0.type == "error" }.compactMap { $0["code"] } == ["bad_frame"])
            let faces = events.filter { $0.type == "faces" }
            let first = try #require(faces.first)
            #expect(first["face_detected"] == "1" && first["width"] == "640" && first["timestamp"] == "1700000000.5")
            #expect(first["faces"]?.contains("box") == true)
            let face = try #require(events.first { $0.type == "emotion" && $0["channel"] == "face" })
            #expect(face["utterance"] == nil && face["label"] != nil)
            #expect(events.contains { $0.type == "emotion_update" && $0["channel"] == "fused" })
            // 10 frames at once: most are dropped (face.max_fps, one waiting at most) and counted.
            let dropped = try #require(faces.last.flatMap { $0.number("dropped_frames") })
            #expect(faces.count <= 3 && dropped >= 1 && faces.count + Int(dropped) <= 10, "\(faces.count) analysed, \(dropped) dropped")
        }
    }
}

