import AttuneAudio
import AttuneSpeech
import AttuneTestSupport
import Foundation
import Testing

/// Smart Turn v3.2 on features computed in Swift, checked against the numpy extractor shipped
/// with the model and on real speech.
@Suite struct SmartTurnTests {
    static let model = try! SmartTurnModel(path: TestData.models.appendingPathComponent("smart-turn-v3.2-cpu.onnx"))

    @Test(arguments: [("03-01-01-01-01-01-01", 0), ("03-01-05-02-02-01-02", 20_000)])
    func featuresMatchTheNumpyExtractor(name: String, cut: Int) throws {
        let audio = Array(try clip(name).dropLast(cut))
        let swift = WhisperLogMel().features(audio)
        let numpy = try Self.numpyFeatures(audio)
        #expect(swift.count == WhisperLogMel.mels * WhisperLogMel.frames)
        try #require(numpy.count == swift.count)
        let worst = zip(swift, numpy).map { abs($0 - $1) }.max() ?? .infinity
        #expect(worst < 2e-3, "largest difference from numpy: \(worst)")
    }

    /// A whole sentence ends its turn; the same sentence cut off while the person is still
    /// speaking does not (measured: 0.99 and 0.93 complete, 0.10 and 0.02 cut).
    @Test(arguments: [("03-01-01-01-01-01-01", 31_200), ("03-01-05-02-02-01-02", 36_000)])
    func aFinishedSentenceIsCompleteAndACutOneIsNot(name: String, cut: Int) throws {
        let audio = try clip(name)  // "Kids are talking…", "Dogs are sitting…": cut before "by the door"
        let complete = try Self.model.completion(audio)
        let unfinished = try Self.model.completion(Array(audio.prefix(cut)))
        #expect(complete > 0.5, "complete: \(complete)")
        #expect(unfinished < 0.5, "cut at \(Double(cut) / 16_000) s: \(unfinished)")
    }

    static func numpyFeatures(_ audio: [Float]) throws -> [Float] {
        let cache = TestData.models.deletingLastPathComponent()
        let downloads = cache.appendingPathComponent("downloads")
        let wheel = try #require(
            try FileManager.default.contentsOfDirectory(atPath: downloads.path).first { $0.hasPrefix("pipecat_ai-") && $0.hasSuffix(".whl") },
            "the pipecat-ai wheel is not in \(downloads.path) (setup fetches it)")
        let (data, status) = try TestData.runReference(
            "smart_turn_reference.py", arguments: [downloads.appendingPathComponent(wheel).path],
            input: audio.withUnsafeBufferPointer { Data(buffer: $0) })
        #expect(status == 0)
        return data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }
}

/// Turn-taking with Smart Turn: a finished sentence ends its turn after a short pause, and a
/// pause in the middle of a sentence does not end it.
@Suite struct SmartTurnTakingTests {
    /// Feeds `audio` in 20 ms frames; returns each turn's end and the stream time it was reported.
    func ends(_ audio: [Float], mode: TurnSettings.EndOfTurn, threshold: Double = 0.5) throws -> [(end: Double, reportedAt: Double)] {
        var settings = TurnSettings()
        settings.endOfTurn = mode
        settings.completeThreshold = threshold
        var turns = TurnDetector(
            detector: try SileroVoiceActivityDetector(model: TestData.vadModel, settings: .forTurns(settings)), settings: settings,
            completion: { try? SmartTurnTests.model.completion($0) })
        var found: [(Double, Double)] = []
        for start in stride(from: 0, to: audio.count, by: 320) {
            for event in turns.acceptWithoutTranscripts(Array(audio[start..<min(start + 320, audio.count)])) {
                if case let .speechEnded(_, end, _, _) = event { found.append((end, turns.time)) }
            }
        }
        return found
    }

    @Test func aFinishedSentenceEndsSoonerThanOnSilenceAlone() throws {
        let audio = try clip("03-01-01-01-01-01-01") + [Float](repeating: 0, count: 32_000)
        let smart = try ends(audio, mode: .smartTurn)
        let silence = try ends(audio, mode: .silence)
        try #require(smart.count == 1 && silence.count == 1)
        // Reported about semanticPause (0.2 s) after the speech instead of trailingSilence (0.5 s).
        #expect(smart[0].reportedAt - smart[0].end < 0.35, "\(smart)")
        #expect(smart[0].reportedAt < silence[0].reportedAt - 0.2, "smart \(smart) silence \(silence)")
    }

    /// A pause the model does not call complete waits for `maxSilence` (1.5 s), so a 0.7 s
    /// pause mid-sentence stays inside the turn, where silence alone (0.5 s) cuts it. Here the
    /// threshold is 1 so that nothing counts as complete: on these clips Smart Turn calls most
    /// mid-sentence pauses of digital silence complete ("Kids are talking" + 0.2 s: 0.97), so how
    /// often it cuts a sentence in real speech is for a turn-taking benchmark to measure.
    @Test func aPauseNotCalledCompleteWaitsForTheLongerSilence() throws {
        let sentence = try clip("03-01-05-02-02-01-02")
        let pause = [Float](repeating: 0, count: 11_200)  // 0.7 s
        let audio = Array(sentence.prefix(36_800)) + pause + Array(sentence.dropFirst(36_800)) + [Float](repeating: 0, count: 40_000)
        #expect(try ends(audio, mode: .silence).count == 2, "silence alone cuts the sentence at the pause")
        let waiting = try ends(audio, mode: .smartTurn, threshold: 1)
        try #require(waiting.count == 1, "\(waiting)")
        #expect(waiting[0].reportedAt - waiting[0].end >= 1.5)
    }
}
