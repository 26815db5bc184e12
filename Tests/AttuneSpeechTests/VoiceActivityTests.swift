import AttuneAudio
import AttuneSpeech
import AttuneTestSupport
import Foundation
import Testing

@Suite struct VoiceActivityTests {
    @Test func findsTheSpokenSentenceInARavdessClip() throws {
        // "Kids are talking by the door", neutral, actor 01: one second of silence, then about
        // 1.3 s of speech (RMS energy is above the noise floor from 1.0 s to 2.3 s).
        let audio = try AudioFileDecoder().read(contentsOf: TestData.ravdess("03-01-01-01-01-01-01"))
        var detector = try SileroVoiceActivityDetector(model: TestData.vadModel)
        let segments = try detector.segments(in: audio)
        try #require(segments.count == 1)
        #expect(abs(segments[0].start - 1.0) < 0.15)
        #expect(abs(segments[0].end - 2.35) < 0.2)
    }

    @Test(arguments: ["03-01-05-02-02-01-02", "03-01-08-01-01-02-11", "03-01-04-02-01-01-08"])
    func everyClipHasOneSentenceAfterTheLeadingSilence(clip: String) throws {
        let audio = try AudioFileDecoder().read(contentsOf: TestData.ravdess(clip))
        var detector = try SileroVoiceActivityDetector(model: TestData.vadModel)
        let segments = try detector.segments(in: audio)
        #expect(!segments.isEmpty)
        #expect(segments.allSatisfy { $0.start > 0.5 && $0.end <= audio.duration + 0.01 })
        #expect(segments.map(\.duration).reduce(0, +) > 0.7)
    }

    @Test func silenceAndFaintNoiseHaveNoSpeech() throws {
        var detector = try SileroVoiceActivityDetector(model: TestData.vadModel)
        var generator = SystemRandomNumberGenerator()
        let noise = (0..<48_000).map { _ in Float.random(in: -0.002...0.002, using: &generator) }
        let silence = [Float](repeating: 0, count: 32_000)
        #expect(try detector.segments(in: AudioBuffer(samples: silence + noise, sampleRate: 16_000)).isEmpty)
    }

    @Test func streamingInSmallFramesMatchesTheWholeClip() throws {
        let audio = try AudioFileDecoder().read(contentsOf: TestData.ravdess("03-01-01-01-01-01-01"))
        var whole = try SileroVoiceActivityDetector(model: TestData.vadModel)
        let expected = try whole.segments(in: audio)

        let streaming = try SileroVoiceActivityDetector(model: TestData.vadModel)
        var found: [SpeechSegment] = []
        var sawSpeech = false
        for start in stride(from: 0, to: audio.samples.count, by: 320) {  // 20 ms frames
            found += streaming.accept(Array(audio.samples[start..<min(start + 320, audio.samples.count)]))
            sawSpeech = sawSpeech || streaming.isSpeaking
        }
        found += streaming.flush()
        #expect(sawSpeech)
        #expect(found == expected)
    }

    @Test func refusesOtherSampleRates() throws {
        var detector = try SileroVoiceActivityDetector(model: TestData.vadModel)
        #expect(throws: VoiceActivityError.self) {
            try detector.segments(in: AudioBuffer(samples: [0, 0, 0], sampleRate: 44_100))
        }
    }

    @Test func aMissingModelIsAClearError() {
        #expect(throws: VoiceActivityError.self) {
            _ = try SileroVoiceActivityDetector(model: URL(fileURLWithPath: "/nonexistent/silero_vad.onnx"))
        }
    }
}

@Suite struct NativeRuntimeTests {
    @Test func reportsThePinnedVersions() {
        #expect(NativeRuntime.whisperVersion == "1.8.5")
        #expect(NativeRuntime.onnxRuntimeVersion == "1.28.2")
        #expect(NativeRuntime.sherpaOnnxVersion == "2.0.1")
        let statuses = NativeRuntime.componentStatuses()
        #expect(statuses.allSatisfy { $0.loaded })
    }
}
