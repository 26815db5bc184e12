import AttuneONNX
import CKissFFT
import Foundation

/// Whisper-style log-mel features of the last 8 s of audio, as Smart Turn v3 reads them: the
/// same steps as the numpy extractor shipped beside the model (`_whisper_features.py`, itself
/// transformers' `WhisperFeatureExtractor`), which the tests compare against.
///
/// The audio (16 kHz mono) is cut to its last 8 s or zero-padded at the start to 8 s, normalised
/// to zero mean and unit variance, reflect-padded by 200 samples, and read in 400-sample periodic
/// Hann frames every 160 samples; the power spectrum goes through 80 Slaney mel filters, then
/// log10 (floored at 1e-10), the last frame is dropped, values below the maximum - 8 are raised
/// to it, and (x + 4) / 4 scales them to about [-1, 1].
public struct WhisperLogMel: Sendable {
    public static let sampleRate = 16_000
    public static let samples = 8 * sampleRate
    public static let fftSize = 400
    public static let hop = 160
    public static let mels = 80
    /// Frames of the output: 800 for 8 s.
    public static let frames = samples / hop

    private let window: [Float]
    /// Per mel band, the FFT bins it reads and their weights.
    private let filters: [[(bin: Int, weight: Float)]]

    public init() {
        window = (0..<Self.fftSize).map { 0.5 - 0.5 * cos(2 * Float.pi * Float($0) / Float(Self.fftSize)) }
        filters = Self.slaneyFilters()
    }

    /// The features, `[mels × frames]` row-major (mel band by mel band).
    public func features(_ audio: [Float]) -> [Float] {
        var x = [Float](repeating: 0, count: Self.samples)
        let tail = audio.suffix(Self.samples)
        x.replaceSubrange((Self.samples - tail.count)..<Self.samples, with: tail)
        let mean = x.reduce(0.0) { $0 + Double($1) } / Double(x.count)
        let variance = x.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(x.count)
        let scale = 1 / (variance + 1e-7).squareRoot()
        for index in x.indices { x[index] = Float((Double(x[index]) - mean) * scale) }

        let pad = Self.fftSize / 2
        let padded = x[1...pad].reversed() + x + x[(x.count - pad - 1)..<(x.count - 1)].reversed()
        let fft = kiss_fftr_alloc(Int32(Self.fftSize), 0, nil, nil)
        defer { free(UnsafeMutableRawPointer(fft)) }
        var frame = [Float](repeating: 0, count: Self.fftSize)
        var spectrum = [kiss_fft_cpx](repeating: kiss_fft_cpx(), count: Self.fftSize / 2 + 1)
        var output = [Float](repeating: 0, count: Self.mels * Self.frames)
        var maximum = -Float.infinity
        for index in 0..<Self.frames {
            let start = index * Self.hop
            for n in 0..<Self.fftSize { frame[n] = padded[start + n] * window[n] }
            kiss_fftr(fft, frame, &spectrum)
            for (band, filter) in filters.enumerated() {
                var energy: Float = 0
                for (bin, weight) in filter { energy += weight * (spectrum[bin].r * spectrum[bin].r + spectrum[bin].i * spectrum[bin].i) }
                let value = log10(max(energy, 1e-10))
                output[band * Self.frames + index] = value
                maximum = max(maximum, value)
            }
        }
        let floor = maximum - 8
        for index in output.indices { output[index] = (max(output[index], floor) + 4) / 4 }
        return output
    }

    /// Slaney-scale triangular filters from 0 to 8 kHz with Slaney area normalisation.
    private static func slaneyFilters() -> [[(bin: Int, weight: Float)]] {
        func toMel(_ hertz: Double) -> Double {
            hertz < 1_000 ? 3 * hertz / 200 : 15 + log(hertz / 1_000) * 27 / log(6.4)
        }
        func toHertz(_ mel: Double) -> Double {
            mel < 15 ? 200 * mel / 3 : 1_000 * exp(log(6.4) / 27 * (mel - 15))
        }
        let bins = fftSize / 2 + 1
        let top = toMel(Double(sampleRate) / 2)
        let edges = (0...(mels + 1)).map { toHertz(top * Double($0) / Double(mels + 1)) }
        let binHertz = (0..<bins).map { Double(sampleRate / 2) * Double($0) / Double(bins - 1) }
        return (0..<mels).map { band in
            let (low, centre, high) = (edges[band], edges[band + 1], edges[band + 2])
            let norm = 2 / (high - low)
            return binHertz.enumerated().compactMap { bin, hertz in
                let weight = max(0, min((hertz - low) / (centre - low), (high - hertz) / (high - centre)))
                return weight > 0 ? (bin, Float(weight * norm)) : nil
            }
        }
    }
}

/// Smart Turn v3.2 (pipecat-ai, BSD-2-Clause): whether the speech so far is a finished turn,
/// from the sound of its last 8 s (intonation, a trailing "and…"), not from silence.
/// It keeps no state between calls, so one instance may serve every track.
public final class SmartTurnModel: Sendable {
    private let model: OnnxModel
    private let features = WhisperLogMel()

    /// - Parameter path: `smart-turn-v3.2-cpu.onnx` (setup puts it in the models folder).
    public init(path: URL, threads: Int = 1) throws {
        model = try OnnxModel(path: path, threads: threads)
        try model.expect(
            inputs: [TensorSpec("input_features", shape: [nil, WhisperLogMel.mels, WhisperLogMel.frames])],
            outputs: [TensorSpec("logits", shape: [nil, 1])])
    }

    /// The probability (0...1) that the turn is complete after `audio` (16 kHz mono, the
    /// utterance so far; only its last 8 s are read).
    public func completion(_ audio: [Float]) throws -> Double {
        let input = FloatTensor(shape: [1, WhisperLogMel.mels, WhisperLogMel.frames], values: features.features(audio))
        let output = try model.run(["input_features": input], outputs: ["logits"])
        guard let value = output["logits"]?.values.first else { throw OnnxError(message: "smart turn gave no output") }
        return Double(value)
    }
}
