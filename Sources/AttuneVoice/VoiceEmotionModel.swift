import AttuneCore
import AttuneONNX
import Foundation

/// Emotion in the voice: an ONNX model over 16 kHz speech.
///
/// Any model with one of two signatures plugs in (`voice.model_path`):
/// - features: one input [N, 56], the ``AcousticFeatures`` vector in its documented order;
/// - waveform: one input [N, samples] of 16 kHz mono samples in -1…1.
///
/// Either way one output [N, 7] holds scores in Attune's class order (anger, disgust, fear, joy,
/// neutral, sadness, surprise); they are normalised to probabilities. A model that fits
/// neither is refused when it loads, with the input or output that did not match. The bundled
/// model (`voice-emotion.onnx`, logistic regression on the features, trained by
/// `scripts/train_voice_emotion.py`) is the default.
public final class VoiceEmotionModel: Sendable {
    public enum Input: Sendable, Equatable {
        case features
        case waveform
    }

    public let input: Input
    public let path: URL
    private let model: OnnxModel
    private let inputName: String
    private let outputName: String
    private let extractor = AcousticFeatures()
    /// Speech shorter than this (after trimming silence) says nothing.
    public static let minimumSeconds = 0.3

    public static var bundledModel: URL? { Bundle.module.url(forResource: "voice-emotion", withExtension: "onnx") }

    public init(path: URL? = nil, threads: Int = 1) throws {
        guard let path = path ?? Self.bundledModel else { throw OnnxError.missingBundledModel }
        let model = try OnnxModel(path: path, threads: threads)
        let floats = model.inputs.filter { $0.element == .float }
        guard model.inputs.count == 1, let only = floats.first, only.shape.count == 2 else {
            throw OnnxError.signature(path, "needs one float input [N, \(AcousticFeatures.dimension)] (features) or [N, samples] (waveform); it has \(model.inputs.map(\.description).joined(separator: "; "))")
        }
        switch only.shape[1] {
        case AcousticFeatures.dimension?: input = .features
        case nil: input = .waveform
        case let other?:
            throw OnnxError.signature(path, "input \(only) has \(other) values per row; features need \(AcousticFeatures.dimension), a waveform an open length")
        }
        guard let output = model.outputs.first(where: { $0.element == .float && $0.shape.count == 2 && ($0.shape[1] == 7 || $0.shape[1] == nil) }) else {
            throw OnnxError.signature(path, "needs a float output [N, 7] of scores; it has \(model.outputs.map(\.description).joined(separator: "; "))")
        }
        self.model = model
        self.path = path
        inputName = only.name
        outputName = output.name
    }

    /// The seven probabilities of `samples` (16 kHz mono), or nil for too little speech.
    public func probabilities(_ samples: [Float]) throws -> [EmotionLabel: Double]? {
        let speech = AcousticFeatures.trimmed(samples)
        guard Double(speech.count) >= Self.minimumSeconds * Double(AcousticFeatures.sampleRate) else { return nil }
        let row: [Float] = input == .features ? extractor.vector(speech) : speech
        let result = try model.run([inputName: FloatTensor(shape: [1, row.count], values: row)], outputs: [outputName])
        guard let scores = result[outputName]?.values, scores.count == 7 else {
            throw OnnxError.signature(path, "output \(outputName) did not hold 7 scores")
        }
        return Dictionary(uniqueKeysWithValues: zip(EmotionLabel.allCases, scores.map { Double($0) }))
    }

    /// The voice channel's estimate of `samples`, or nil for too little speech.
    public func estimate(_ samples: [Float], subject: String, time: Double = Date().timeIntervalSince1970) throws -> EmotionEstimate? {
        try probabilities(samples).map { EmotionEstimate(scores: $0, channel: .voice, subject: subject, time: time) }
    }
}

/// The voice's reading of a clip: the whole of it, and each chunk that holds speech.
public struct VoiceReading: Encodable, Sendable {
    public struct Chunk: Encodable, Sendable {
        public let start: Double
        public let end: Double
        public let estimate: EmotionEstimate
    }

    public let durationSeconds: Double
    /// Nil when the clip holds too little speech.
    public let whole: EmotionEstimate?
    public let chunks: [Chunk]

    enum CodingKeys: String, CodingKey {
        case durationSeconds = "duration_s", whole, chunks
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(durationSeconds, forKey: .durationSeconds)
        try container.encode(whole, forKey: .whole)  // null, not absent
        try container.encode(chunks, forKey: .chunks)
    }
}

extension VoiceEmotionModel {
    /// Reads a whole clip and each `chunkSeconds` of it; chunks shorter than half a second or
    /// without enough speech are left out.
    public func read(_ samples: [Float], chunkSeconds: Double, subject: String = "request") throws -> VoiceReading {
        let rate = Double(AcousticFeatures.sampleRate)
        let size = max(1, Int(chunkSeconds * rate))
        var chunks: [VoiceReading.Chunk] = []
        for start in stride(from: 0, to: samples.count, by: size) {
            let piece = Array(samples[start..<min(samples.count, start + size)])
            guard Double(piece.count) >= 0.5 * rate, let estimate = try estimate(piece, subject: subject) else { continue }
            chunks.append(.init(start: Double(start) / rate, end: Double(start + piece.count) / rate, estimate: estimate))
        }
        return VoiceReading(durationSeconds: Double(samples.count) / rate, whole: try estimate(samples, subject: subject), chunks: chunks)
    }
}

extension OnnxError {
    static var missingBundledModel: OnnxError { OnnxError(message: "the bundled voice-emotion.onnx is missing from the build") }

    static func signature(_ path: URL, _ problem: String) -> OnnxError {
        OnnxError(message: "\(path.path) is not a voice emotion model: \(problem)")
    }
}
