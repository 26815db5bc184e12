import AttuneAudio
import AttuneCore
import AttuneTestSupport
import AttuneVoice
import Foundation
import Testing

@Suite struct VoiceEmotionModelTests {
    static func speech(_ clip: String) throws -> [Float] {
        try Resampler.resample(try AudioFileDecoder().read(contentsOf: TestData.ravdess(clip)), to: 16_000).samples
    }

    /// The bundled model reads RAVDESS clips through the Swift features as it was trained on the
    /// Python side. These clips are in its training data (actors 01-12): this checks that
    /// serving and training agree, not how well the model generalises (BENCHMARKS.md does that
    /// on held-out actors).
    @Test func theBundledModelReadsStrongEmotionsItWasTrainedOn() throws {
        let model = try VoiceEmotionModel()
        #expect(model.input == .features)
        let codes: [(String, EmotionLabel)] = [("03", .joy), ("04", .sadness), ("05", .anger), ("06", .fear), ("07", .disgust), ("08", .surprise)]
        var correct = 0, total = 0
        for actor in ["01", "02", "03", "04"] {
            for (code, label) in codes {
                let estimate = try #require(try model.estimate(try Self.speech("03-01-\(code)-02-01-01-\(actor)"), subject: "t"))
                #expect(estimate.channel == .voice && abs(estimate.probabilities.values.reduce(0, +) - 1) < 1e-6)
                total += 1
                if estimate.label == label { correct += 1 }
            }
        }
        #expect(Double(correct) / Double(total) > 0.4, "\(correct)/\(total)")
    }

    /// The Whisper-encoder model setup builds runs through the waveform signature, and reads
    /// clips of its training actors as training did (the heads' held-out scores are in
    /// BENCHMARKS.md). Its whole pipeline, log-mel included, is inside the ONNX graph.
    @Test func theWhisperEncoderModelReadsTheWaveform() throws {
        let model = try VoiceEmotionModel(path: TestData.models.appendingPathComponent("voice-emotion-whisper.onnx"))
        #expect(model.input == .waveform)
        let codes: [(String, EmotionLabel)] = [("03", .joy), ("04", .sadness), ("05", .anger), ("06", .fear), ("07", .disgust), ("08", .surprise)]
        var correct = 0, total = 0
        for actor in ["05", "06"] {
            for (code, label) in codes {
                let estimate = try #require(try model.estimate(try Self.speech("03-01-\(code)-02-01-01-\(actor)"), subject: "t"))
                #expect(estimate.channel == .voice && abs(estimate.probabilities.values.reduce(0, +) - 1) < 1e-5)
                total += 1
                if estimate.label == label { correct += 1 }
            }
        }
        #expect(Double(correct) / Double(total) > 0.5, "\(correct)/\(total)")
        // Longer than the encoder's 8 s window: the last 8 s are read.
        let long = try Self.speech("03-01-05-02-01-01-05") + (try Self.speech("03-01-05-02-02-01-05"))
            + (try Self.speech("03-01-05-02-01-02-05"))
        #expect(try model.estimate(long, subject: "t") != nil)
    }

    @Test func tooLittleSpeechSaysNothing() throws {
        let model = try VoiceEmotionModel()
        #expect(try model.estimate([Float](repeating: 0, count: 16_000), subject: "t") == nil)
        #expect(try model.estimate(Array(try Self.speech("03-01-05-02-01-01-01").prefix(3_000)), subject: "t") == nil)
    }

    @Test func aModelWithAnotherSignatureIsRefusedWithWhatDidNotMatch() {
        #expect {
            try VoiceEmotionModel(path: TestData.vadModel)
        } throws: { error in
            "\(error)".contains(TestData.vadModel.path) && "\(error)".contains("needs one float input")
        }
        #expect { try VoiceEmotionModel(path: URL(fileURLWithPath: "/nonexistent/voice.onnx")) } throws: { "\($0)".contains("/nonexistent/voice.onnx") }
    }
}
