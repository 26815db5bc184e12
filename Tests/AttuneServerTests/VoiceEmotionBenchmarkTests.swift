import AttuneBench
import AttuneCore
import AttuneTestSupport
import AttuneVoice
import Foundation
import Testing

@Suite struct VoiceEmotionBenchmarkTests {
    static let speech = TestData.sharedData.appendingPathComponent("speech/ravdess-16k").path

    @Test func labelsAndActorsComeFromRavdessNames() throws {
        let clips = try VoiceEmotionBenchmark.clips(from: Self.speech, actors: [3, 10])
        #expect(clips.count == 120)
        #expect(clips.allSatisfy { $0.path.hasSuffix("-03.wav") || $0.path.hasSuffix("-10.wav") })
        // 03-01-02-… is calm, which Attune counts as neutral; 05 is angry.
        #expect(clips.first { $0.path.hasSuffix("03-01-02-01-01-01-03.wav") }?.label == .neutral)
        #expect(clips.first { $0.path.hasSuffix("03-01-05-02-02-02-10.wav") }?.label == .anger)
    }

    @Test func aManifestNamesItsLabelsOrIsRefusedWithTheLine() throws {
        let folder = TestData.scratch.appendingPathComponent("voice-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let good = folder.appendingPathComponent("good.tsv")
        try "path\tlabel\n\(Self.speech)/Actor_01/03-01-05-01-01-01-01.wav\tangry\n/x/b.wav\tjoy\n".write(to: good, atomically: true, encoding: .utf8)
        #expect(try VoiceEmotionBenchmark.clips(from: good.path).map(\.label) == [.anger, .joy])
        let bad = folder.appendingPathComponent("bad.tsv")
        try "a.wav\tjoy\nb.wav\tbored\n".write(to: bad, atomically: true, encoding: .utf8)
        #expect { try VoiceEmotionBenchmark.clips(from: bad.path) } throws: { "\($0)".contains("bad.tsv:2") && "\($0)".contains("bored") }
    }

    @Test func theVoiceIsScoredAgainstTheLabels() async throws {
        // Actor 01's strong-intensity clips, voice only: every clip is counted once in the
        // confusion matrix, and the figures follow from it.
        let clips = try VoiceEmotionBenchmark.clips(from: Self.speech, actors: [1]).filter { $0.path.contains("-02-01-01-01.wav") }
        #expect(clips.count == 7)
        let benchmark = VoiceEmotionBenchmark(voiceModel: try VoiceEmotionModel(), text: nil) { _ in }
        let report = try await benchmark.run(clips: clips, details: true)
        let confusion = try #require(report.confusion)
        #expect(report.clips == 7 && confusion.flatMap { $0 }.reduce(0, +) == 7)
        let correct = confusion.indices.map { confusion[$0][$0] }.reduce(0, +)
        #expect(abs(report.accuracy - Double(correct) / 7) < 1e-9)
        #expect(report.fusedAccuracy == nil && report.textOnlyAccuracy == nil)
        #expect(report.msPerClipP50 > 0 && report.msPerClipP95 >= report.msPerClipP50)
    }
}
