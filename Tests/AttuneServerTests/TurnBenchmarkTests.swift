import AttuneAudio
import AttuneBench
import AttuneSpeech
import AttuneTestSupport
import Foundation
import Testing

/// `attune bench turns`: the streams it builds and what it counts, on real clips, the real
/// aligner and the session's real turn detector.
@Suite struct TurnBenchmarkTests {
    static let aligner = WhisperTranscriber(
        model: try! WhisperModel(path: TestData.models.appendingPathComponent("ggml-tiny.en-q8_0.bin"), wordTimings: true))

    static func clips(_ names: [String]) -> [SpeechBenchmark.Clip] {
        names.map { SpeechBenchmark.Clip(path: TestData.ravdess($0).path, reference: "") }
    }

    /// The stream of `audio` cut after `word` (the first cut point after that word) with a pause
    /// of `pauseMs` put in; nil when no cut falls after it.
    static func item(of audio: [Float], cutAfter word: String, pauseMs: Int, benchmark: TurnBenchmark) async throws -> TurnBenchmark.Item? {
        let words = try await aligner.words(audio)
        return (0..<words.count).lazy
            .map { benchmark.item(clip: "clip", audio: audio, words: words, pauseMs: pauseMs, choice: $0, seed: 1) }
            .first { $0.cutAfter?.lowercased().filter(\.isLetter) == word }
    }

    static func quietBenchmark(pauses: [Int]) -> TurnBenchmark {
        var settings = TurnBenchmark.Settings()
        settings.pausesMs = pauses
        settings.snrDB = nil
        return TurnBenchmark(settings: settings)
    }

    @Test func aPauseGoesInAtAWordBoundaryAndMovesTheEnd() async throws {
        let benchmark = Self.quietBenchmark(pauses: [600])
        let items = try await benchmark.items(from: Self.clips(["03-01-05-02-02-01-02", "03-01-01-01-01-01-01"]), aligner: Self.aligner)
        let (paused, whole) = (items[0], items[1])
        #expect(whole.pauseMs == nil && whole.cutAfter == nil && whole.resume == nil)

        #expect(paused.pauseMs == 600)
        let word = try #require(paused.cutAfter)
        #expect(["dogs", "are", "sitting", "by", "the"].contains(word.lowercased()), "cut after \(word)")
        let resume = try #require(paused.resume)
        // The inserted pause is silent (no noise asked for), and speech follows it.
        let pause = paused.audio[Int((resume - 0.6) * 16_000)..<Int(resume * 16_000)]
        #expect(pause.allSatisfy { $0 == 0 })
        #expect(paused.audio[Int(resume * 16_000)..<Int((resume + 0.1) * 16_000)].contains { abs($0) > 0.01 })
        #expect(paused.speechEnd > resume + 0.1)
        let settings = benchmark.settings
        let clipSeconds = Double(paused.audio.count) / 16_000 - settings.leadSilence - settings.trailingSilence - 0.6
        #expect(paused.speechEnd < settings.leadSilence + clipSeconds + 0.6, "the speaker finishes inside the stream")
    }

    @Test func noiseIsTheSameOverTheWholeStreamAndSeeded() async throws {
        var settings = TurnBenchmark.Settings()
        settings.snrDB = 30
        let benchmark = TurnBenchmark(settings: settings)
        let audio = try clip("03-01-01-01-01-01-01")
        let words = try await Self.aligner.words(audio)
        let first = benchmark.item(clip: "a", audio: audio, words: words, pauseMs: 500, choice: 0, seed: 7)
        let again = benchmark.item(clip: "a", audio: audio, words: words, pauseMs: 500, choice: 0, seed: 7)
        #expect(first.audio == again.audio)
        let tail = first.audio.suffix(16_000)
        let rms = (tail.reduce(Float(0)) { $0 + $1 * $1 } / Float(tail.count)).squareRoot()
        #expect(rms > 0 && rms < 0.01, "noise under the trailing silence: rms \(rms)")
    }

    /// Silence-only turn taking (0.5 s) cannot wait through a one-second pause but does through
    /// a quarter of a second, and a whole sentence ends once, after it is finished.
    @Test func silenceEndsTurnsInLongPausesButNotShortOnes() async throws {
        let benchmark = Self.quietBenchmark(pauses: [250, 1_000])
        let names = ["03-01-01-01-01-01-01", "03-01-01-01-01-02-01", "03-01-02-01-02-01-03"]
        let items = try await benchmark.items(from: Self.clips(names), aligner: Self.aligner)
        #expect(items.map(\.pauseMs) == [250, 1_000, nil])
        let (report, outcomes) = try await benchmark.run(items: items, vadModel: TestData.vadModel, turn: TurnSettings(), smartTurn: nil)

        #expect(!outcomes[0].falseCut, "a 250 ms pause is not the end: \(outcomes[0])")
        #expect(outcomes[1].falseCut, "a 1 s pause ends a 0.5 s silence turn: \(outcomes[1])")
        #expect(!outcomes[2].falseCut && outcomes[2].ends.count == 1)
        for outcome in outcomes {
            let wait = try #require(outcome.endOfTurnMs, "every sentence's end is found: \(outcome)")
            #expect(wait > 200 && wait < 1_000, "the turn ends about 0.5 s after the speech: \(outcome)")
        }
        #expect(report.turns == 3 && report.pausedTurns == 2)
        #expect(abs(report.falseCutRate - 1.0 / 3) < 0.01 && report.missedEndRate == 0)
        #expect(report.falseCutRateByPause == ["250": 0, "1000": 1, "none": 0])
    }

    /// With `turn.hold_unfinished` the benchmark decodes each pause as the session does: a pause
    /// after "by" is held (no false cut), one after "talking" is not.
    @Test func aPauseWhoseWordsStopOpenIsHeld() async throws {
        var benchmark = Self.quietBenchmark(pauses: [1_000])
        // The hold counts from when the pause's decode is ready: a fixed decode time keeps that
        // from depending on how busy the machine is (a loaded CI machine's decode once came 10 ms
        // after a 0.5 s silence had ended the turn).
        benchmark.settings.pauseDecodeTime = 0.2
        let audio = try clip("03-01-01-01-01-01-01")
        var items: [TurnBenchmark.Item] = []
        for word in ["by", "talking"] {
            items.append(try #require(try await Self.item(of: audio, cutAfter: word, pauseMs: 1_000, benchmark: benchmark)))
        }
        let reader = WhisperTranscriber(model: try WhisperModel(path: TestData.models.appendingPathComponent("ggml-tiny.en-q8_0.bin")))
        let (report, outcomes) = try await benchmark.run(
            items: items, vadModel: TestData.vadModel, turn: TurnSettings(), smartTurn: nil, pauseReader: reader)
        try await reader.pool.shutdown()

        #expect(!outcomes[0].falseCut && outcomes[0].pauses.first?.held == true, "\(outcomes[0])")
        #expect(outcomes[1].falseCut && outcomes[1].pauses.first?.held == false, "\(outcomes[1])")
        #expect(report.heldPauseRate.map { $0 > 0 && $0 < 1 } == true && report.pauseDecodeMsP50 != nil)
    }

    /// `--complete-texts`: the share of finished messages a hold would make wait.
    @Test func finishedMessagesEndingOpenAreCounted() {
        #expect(TurnBenchmark.heldShare(of: ["I went to the", "It was lovely.", "And then, um", "Thanks!"]) == 0.5)
        #expect(TurnBenchmark.heldShare(of: []) == 0)
    }
}

private func clip(_ name: String) throws -> [Float] {
    try Resampler.resample(try AudioFileDecoder().read(contentsOf: TestData.ravdess(name)), to: 16_000).samples
}
