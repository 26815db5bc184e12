import AttuneAudio
import AttuneCore
import AttuneSpeech
import AttuneTestSupport
import Foundation
import Synchronization
import Testing

func clip(_ name: String) throws -> [Float] {
    try Resampler.resample(try AudioFileDecoder().read(contentsOf: TestData.ravdess(name)), to: 16_000).samples
}

/// Feeds audio in 20 ms frames, as the browser sends it, as an owner that reads no pause's
/// transcript (each pause offered is released at once).
func run(_ audio: [Float], settings: TurnSettings = .init()) throws -> [TurnEvent] {
    var turns = TurnDetector(
        detector: try SileroVoiceActivityDetector(model: TestData.vadModel, settings: .forTurns(settings)), settings: settings)
    var events: [TurnEvent] = []
    for start in stride(from: 0, to: audio.count, by: 320) {
        events += turns.acceptWithoutTranscripts(Array(audio[start..<min(start + 320, audio.count)]))
    }
    return events
}

extension TurnDetector {
    /// ``accept(_:)`` for an owner that reads no pause's transcript: it releases each pause
    /// offered at once, so that `awaitPauseTranscript` does not wait for a verdict never coming.
    mutating func acceptWithoutTranscripts(_ samples: [Float]) -> [TurnEvent] {
        let events = accept(samples)
        for case .paused in events { releasePause(pauseNumber) }
        return events
    }
}

@Suite struct TurnDetectorTests {
    let silence = [Float](repeating: 0, count: 16_000)

    @Test func oneSentenceIsOneTurnEndedBySilence() throws {
        let events = try run(try clip("03-01-01-01-01-01-01") + silence)
        guard case .speechStarted(let start)? = events.first else { Issue.record("no start: \(events)"); return }
        #expect(abs(start - 1.0) < 0.3)
        let ends = events.compactMap { event -> (Double, Double, Int, TurnEvent.EndReason)? in
            if case let .speechEnded(start, end, audio, reason) = event { return (start, end, audio.count, reason) }
            return nil
        }
        try #require(ends.count == 1)
        #expect(ends[0].3 == .silence)
        #expect(abs(ends[0].1 - 2.4) < 0.3)
        // The utterance audio runs from the pre-roll before the start to the tail after the end.
        let seconds = Double(ends[0].2) / 16_000
        #expect(seconds > ends[0].1 - ends[0].0 && seconds < ends[0].1 - ends[0].0 + 1.0)
        // The pause before the end offered exactly the audio the end carried.
        let offered = events.compactMap { event -> Int? in
            if case .paused(let audio) = event { return audio.count }
            return nil
        }
        #expect(offered.last == ends[0].2)
    }

    @Test func aLongerSilenceSettingWaitsLonger() throws {
        var settings = TurnSettings()
        settings.trailingSilence = 2.0
        let audio = try clip("03-01-01-01-01-01-01") + silence
        #expect(!(try run(audio, settings: settings)).contains { if case .speechEnded = $0 { true } else { false } })
        let longer = try run(audio + silence + silence, settings: settings)
        #expect(longer.contains { if case .speechEnded(_, _, _, .silence) = $0 { true } else { false } })
    }

    /// A pause longer than the tail but shorter than the trailing silence is offered, then
    /// withdrawn when the speaker goes on; the turn ends once, after the whole sentence.
    @Test func speakingAfterAPauseResumesTheTurn() throws {
        let sentence = try clip("03-01-01-01-01-01-01")
        // The clip cut at its quietest 10 ms mid-sentence (1.56 s), with 350 ms of silence put in.
        let cut = 25_040
        let audio = Array(sentence[..<cut]) + [Float](repeating: 0, count: 5_600) + Array(sentence[cut...]) + silence
        let kinds = try run(audio).map { event -> String in
            switch event {
            case .speechStarted: "started"
            case .paused: "paused"
            case .resumed: "resumed"
            case .speechEnded: "ended"
            }
        }
        #expect(kinds == ["started", "paused", "resumed", "paused", "ended"])
    }

    @Test func aMonologueIsCutAtTheMaximumLength() throws {
        // Three sentences with short breaths between them: one long turn without a 500 ms pause.
        let breath = [Float](repeating: 0, count: 3_200)
        let speech = try ["03-01-01-01-01-01-01", "03-01-01-01-02-01-01", "03-01-02-01-01-01-01"].map {
            Array(try clip($0)[16_000..<38_000]) + breath
        }.flatMap { $0 }
        var settings = TurnSettings()
        settings.maxUtterance = 2.5
        let events = try run(speech + silence, settings: settings)
        let reasons = events.compactMap { event -> TurnEvent.EndReason? in
            if case let .speechEnded(_, _, _, reason) = event { return reason }
            return nil
        }
        #expect(reasons.filter { $0 == .maxLength }.count >= 1)
        let starts = events.filter { if case .speechStarted = $0 { true } else { false } }.count
        #expect(starts == reasons.count)
    }

    @Test func aClickDoesNotStartATurn() throws {
        // 120 ms cut out of the middle of a word: shorter than the 250 ms minimum speech.
        let burst = Array(try clip("03-01-05-02-01-01-01")[20_000..<21_920])
        let events = try run(silence + burst + silence)
        #expect(events.isEmpty)
    }
}

@Suite struct WhisperTests {
    static let transcriber: WhisperTranscriber = {
        var settings = WhisperSettings()
        settings.parallelDecodes = 2
        settings.threadsPerDecode = 1
        return WhisperTranscriber(
            model: try! WhisperModel(path: TestData.models.appendingPathComponent("ggml-tiny.en.bin")), settings: settings)
    }()

    @Test(arguments: [
        ("03-01-01-01-01-01-01", "kids are talking by the door"),
        ("03-01-05-02-02-01-02", "dogs are sitting by the door"),
        ("03-01-07-01-01-02-09", "kids are talking by the door"),
        ("03-01-08-02-02-02-12", "dogs are sitting by the door"),
    ])
    func transcribesRavdessClips(name: String, expected: String) async throws {
        let audio = try clip(name)
        let transcript = try await Self.transcriber.transcribe(audio, pass: .final)
        let words = transcript.text.lowercased().filter { $0.isLetter || $0 == " " }
        #expect(words == expected)
        #expect(transcript.confidence > 0.5)
        let segment = try #require(transcript.segments.first)
        #expect(segment.start >= 0 && segment.end <= Double(audio.count) / 16_000 && segment.start < segment.end)
    }

    @Test func partialsOfAGrowingUtteranceAreQuickLooks() async throws {
        let audio = try clip("03-01-01-01-01-01-01")
        let partial = try await Self.transcriber.transcribe(Array(audio[..<32_000]), pass: .partial)
        #expect(partial.text.lowercased().hasPrefix("kids"))
        #expect(partial.segments.count <= 1)
        #expect(partial.text.split(separator: " ").count <= 8, "no repetition loop: \(partial.text)")
    }

    /// A decode given up midway (here once the callback has been asked a few times: after the
    /// encoder, among the decoder's steps) throws `TranscriptionAbandoned`, and the transcriber's
    /// decoding states still decode the next utterance correctly.
    @Test func aDecodeNoLongerWantedIsAbandoned() async throws {
        let audio = try clip("03-01-01-01-01-01-01")
        let asked = Mutex(0)
        await #expect(throws: TranscriptionAbandoned.self) {
            _ = try await Self.transcriber.transcribe(audio, pass: .final) { asked.withLock { $0 += 1; return $0 > 3 } }
        }
        #expect(asked.withLock { $0 } > 3, "asked during the decode, not only before it")
        await #expect(throws: TranscriptionAbandoned.self) {
            _ = try await Self.transcriber.transcribe(audio, pass: .partial) { true }
        }
        for _ in 0..<2 {
            let transcript = try await Self.transcriber.transcribe(audio, pass: .final) { false }
            #expect(transcript.text.lowercased().filter { $0.isLetter || $0 == " " } == "kids are talking by the door")
        }
    }

    @Test func silenceAndNoiseBecomeNoText() async throws {
        var generator = SystemRandomNumberGenerator()
        let noise = (0..<48_000).map { _ in Float.random(in: -0.003...0.003, using: &generator) }
        #expect(try await Self.transcriber.transcribe(noise, pass: .final).text.isEmpty)
        #expect(try await Self.transcriber.transcribe([Float](repeating: 0, count: 32_000), pass: .final).text.isEmpty)
        #expect(try await Self.transcriber.transcribe([], pass: .final) == .empty)
    }

    /// Setup's q8_0 and q5_1 files (scripts/quantize_whisper.py) load and hear the same sentences.
    @Test(arguments: ["q8_0", "q5_1"])
    func quantizedModelsTranscribeTheSameClips(kind: String) async throws {
        let path = TestData.models.appendingPathComponent("ggml-tiny.en-\(kind).bin")
        let full = try Data(contentsOf: TestData.models.appendingPathComponent("ggml-tiny.en.bin")).count
        let size = try Data(contentsOf: path).count
        #expect(size < full * 6 / 10, "quantized weights are smaller: \(size) of \(full) bytes")
        let transcriber = WhisperTranscriber(model: try WhisperModel(path: path))
        for (name, expected) in [("03-01-01-01-01-01-01", "kids are talking by the door"), ("03-01-05-02-02-01-02", "dogs are sitting by the door")] {
            let transcript = try await transcriber.transcribe(try clip(name), pass: .final)
            #expect(transcript.text.lowercased().filter { $0.isLetter || $0 == " " } == expected)
        }
    }

    /// Word timings (used by `attune bench turns` to cut utterances at word boundaries) follow
    /// the speech: in order, inside the clip, the first word ending after the sound begins.
    @Test func wordsComeWithWhereTheyWereHeard() async throws {
        let audio = try clip("03-01-05-02-02-01-02")
        let aligner = WhisperTranscriber(
            model: try WhisperModel(path: TestData.models.appendingPathComponent("ggml-tiny.en-q8_0.bin"), wordTimings: true))
        let words = try await aligner.words(audio)
        #expect(words.map { $0.text.lowercased().filter(\.isLetter) } == ["dogs", "are", "sitting", "by", "the", "door"])
        for (word, next) in zip(words, words.dropFirst()) {
            #expect(word.start <= word.end && word.end <= next.start + 0.001 && next.start <= next.end, "\(word) then \(next)")
        }
        #expect(try #require(words.last).end <= Double(audio.count) / 16_000)
        // The sound begins at about 1.06 s and "dogs" lasts about 0.4 s (the clip's energy).
        let onset = Double(try #require(audio.firstIndex { abs($0) > 0.05 })) / 16_000
        #expect(words[0].end > onset + 0.1 && words[0].end < onset + 0.8, "\(words[0]) with sound from \(onset) s")
    }

    @Test func aMissingModelIsAClearError() {
        #expect(throws: WhisperError.self) { _ = try WhisperModel(path: URL(fileURLWithPath: "/nonexistent/ggml.bin")) }
    }
}

/// Holding a pause whose words stop mid-sentence (`turn.hold_unfinished`): the detector's side.
@Suite struct HeldPauseTests {
    /// "Kids are talking by the door" cut mid-sentence (at its quietest 10 ms, 1.56 s) with a
    /// one-second pause, longer than the 0.5 s silence that ends a turn.
    static func pausedSentence() throws -> [Float] {
        let sentence = try clip("03-01-01-01-01-01-01")
        let cut = 25_040
        return Array(sentence[..<cut]) + [Float](repeating: 0, count: 16_000) + Array(sentence[cut...])
            + [Float](repeating: 0, count: 40_000)
    }

    /// Feeds `audio` in 20 ms frames; at each offered pause, `hold` names the pause to hold (given
    /// the current pause's number), or nil for none; a pause not held is released.
    static func ends(_ audio: [Float], settings: TurnSettings = .init(), hold: (Int) -> Int?) throws -> (ends: [Double], held: [Bool]) {
        var turns = TurnDetector(
            detector: try SileroVoiceActivityDetector(model: TestData.vadModel, settings: .forTurns(settings)), settings: settings)
        var ends: [Double] = []
        var held: [Bool] = []
        for start in stride(from: 0, to: audio.count, by: 320) {
            for event in turns.accept(Array(audio[start..<min(start + 320, audio.count)])) {
                switch event {
                case .paused:
                    let holds = hold(turns.pauseNumber).map { turns.holdPause($0) } ?? false
                    if !holds { turns.releasePause(turns.pauseNumber) }
                    held.append(holds)
                case let .speechEnded(_, end, _, _):
                    ends.append(end)
                default: break
                }
            }
        }
        return (ends, held)
    }

    /// Feeds `audio` in 20 ms frames, giving each offered pause's verdict (hold it or release
    /// it) `delay` seconds of stream time after the offer, or never (nil), as a transcription
    /// that takes that long would. Returns each turn's end and the stream time it was reported.
    static func endsWithVerdicts(
        _ audio: [Float], settings: TurnSettings = .init(), delay: Double?, hold: Bool
    ) throws -> [(end: Double, reportedAt: Double)] {
        var turns = TurnDetector(
            detector: try SileroVoiceActivityDetector(model: TestData.vadModel, settings: .forTurns(settings)), settings: settings)
        var ends: [(Double, Double)] = []
        var verdict: (pause: Int, due: Double)?
        for start in stride(from: 0, to: audio.count, by: 320) {
            if let due = verdict, turns.time >= due.due {
                turns.settlePause(due.pause, unfinished: hold)
                verdict = nil
            }
            for event in turns.accept(Array(audio[start..<min(start + 320, audio.count)])) {
                switch event {
                case .paused:
                    verdict = delay.map { (turns.pauseNumber, turns.time + $0) }
                case let .speechEnded(_, end, _, _):
                    ends.append((end, turns.time))
                default: break
                }
            }
        }
        return ends
    }

    @Test func aHeldPauseWaitsForTheRestOfTheSentence() throws {
        let audio = try Self.pausedSentence()
        let cutAtPause = try Self.ends(audio) { _ in nil }
        #expect(cutAtPause.ends.count == 2, "without a hold the one-second pause ends the turn: \(cutAtPause)")

        let held = try Self.ends(audio) { $0 }
        #expect(held.ends.count == 1, "held, the pause is part of the turn: \(held)")
        #expect(held.held.first == true)
        #expect(abs((held.ends.first ?? 0) - 3.4) < 0.3, "the turn ends after the whole sentence: \(held)")
    }

    @Test func onlyThePauseInProgressCanBeHeldAndOnlyWhenAsked() throws {
        let audio = try Self.pausedSentence()
        // An earlier pause's number (a decode that came too late) holds nothing.
        let stale = try Self.ends(audio) { $0 - 1 }
        #expect(stale.held.allSatisfy { !$0 } && stale.ends.count == 2, "\(stale)")
        var settings = TurnSettings()
        var turns = TurnDetector(
            detector: try SileroVoiceActivityDetector(model: TestData.vadModel, settings: .forTurns(settings)), settings: settings)
        let heldWithoutATurn = turns.holdPause(turns.pauseNumber)
        #expect(!heldWithoutATurn, "no turn, no pause to hold")

        settings.holdUnfinished = false
        let off = try Self.ends(audio, settings: settings) { $0 }
        #expect(off.held.allSatisfy { !$0 } && off.ends.count == 2, "turn.hold_unfinished=false: \(off)")

        // A hold waits `unfinishedSilence`, no longer: a pause longer than that still ends the turn.
        settings.holdUnfinished = true
        settings.unfinishedSilence = 0.8
        let shortHold = try Self.ends(audio, settings: settings) { $0 }
        #expect(shortHold.held.first == true && shortHold.ends.count == 2, "\(shortHold)")
    }

    /// A pause's transcript that comes after `trailingSilence` (a slow decode) still holds the
    /// pause: the turn waits for it. Without `awaitPauseTranscript` it comes too late.
    @Test func aLateTranscriptStillHoldsItsPause() throws {
        let audio = try Self.pausedSentence()
        let late = try Self.endsWithVerdicts(audio, delay: 0.7, hold: true)
        #expect(late.count == 1, "the transcript 0.7 s into the pause holds it: \(late)")
        var settings = TurnSettings()
        settings.awaitPauseTranscript = false
        let notAwaited = try Self.endsWithVerdicts(audio, settings: settings, delay: 0.7, hold: true)
        #expect(notAwaited.count == 2, "without waiting, the pause ended the turn first: \(notAwaited)")
    }

    /// A pause released late ends the turn at the release, its silence being long enough by then;
    /// a pause whose verdict never comes ends it after `unfinishedSilence`.
    @Test func aPauseWaitsForItsVerdictAtMostTheUnfinishedSilence() throws {
        let audio = try Self.pausedSentence()
        let released = try Self.endsWithVerdicts(audio, delay: 0.7, hold: false)
        try #require(released.count == 2, "\(released)")
        // Offered 0.2 s into the pause, released 0.7 s later: reported about 0.9 s after the speech.
        #expect(abs(released[0].reportedAt - released[0].end - 0.9) < 0.1, "\(released)")

        var settings = TurnSettings()
        settings.unfinishedSilence = 0.8
        let never = try Self.endsWithVerdicts(audio, settings: settings, delay: nil, hold: false)
        try #require(never.count == 2, "\(never)")
        #expect(abs(never[0].reportedAt - never[0].end - 0.8) < 0.1, "\(never)")
        settings.unfinishedSilence = 1.5
        let longer = try Self.endsWithVerdicts(audio, settings: settings, delay: nil, hold: false)
        #expect(longer.count == 1, "a one-second pause is inside a 1.5 s wait: \(longer)")
    }
}

@Suite struct SentenceEndingTests {
    @Test(arguments: [
        "Kids are", "Kids are talking by the", "Kids are talking by", "I was going to.", "And then my", "I went there and",
        "We were, um", "It was the best,", "I thought that maybe...", "My sister and I were -", "Because",
    ])
    func wordsThatLeaveTheSentenceOpen(_ text: String) {
        #expect(SentenceEnding.seemsUnfinished(text))
    }

    @Test(arguments: [
        "Kids are talking.", "Kids are talking by the door.", "It is what it is.", "Yes, I did.", "Where are you from?",
        "Are you going to?", "I think so", "Come in.", "", "   ", "So do I.", "How are you?",
    ])
    func wordsThatMayEndIt(_ text: String) {
        #expect(!SentenceEnding.seemsUnfinished(text))
    }
}
