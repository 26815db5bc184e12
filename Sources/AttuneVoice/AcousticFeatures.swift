import CKissFFT
import Foundation

/// Summary acoustic features of a stretch of 16 kHz mono speech, for the voice emotion model.
///
/// Frames are 25 ms (400 samples, Hann window, zero-padded to a 512-point FFT) every 10 ms. Per
/// frame: 13 MFCCs (40 HTK-mel bands from 20 Hz to 8 kHz, natural log, orthonormal DCT-II),
/// spectral centroid, bandwidth and 85 % rolloff (kHz), spectral flux (L2 distance between
/// consecutive spectra normalised to sum 1), a 12-class chroma of the power between 60 Hz and
/// 5 kHz (C first, normalised to sum 1), zero-crossing rate and RMS level (dB). Pitch (F0) comes
/// from the normalised autocorrelation of 40 ms windows (60-400 Hz, parabolic interpolation); a
/// frame is voiced when the peak exceeds 0.5 and its level is within 35 dB of the loudest frame.
///
/// The vector, in this order (``names`` has a name for each of the ``dimension`` entries):
///
/// | index | feature |
/// |---|---|
/// | 0-12 | MFCC 0-12, mean over frames |
/// | 13-25 | MFCC 0-12, standard deviation |
/// | 26, 27 | spectral centroid mean, std (kHz) |
/// | 28, 29 | spectral bandwidth mean, std (kHz) |
/// | 30, 31 | spectral rolloff mean, std (kHz) |
/// | 32, 33 | spectral flux mean, std |
/// | 34, 35 | zero-crossing rate mean, std |
/// | 36, 37 | RMS level mean, std (dB) |
/// | 38 | level range: loudest frame minus the 10th percentile (dB) |
/// | 39-50 | chroma C, C#, … B, mean |
/// | 51 | voiced ratio (voiced frames / frames) |
/// | 52 | F0 mean, in semitones above 55 Hz (0 if nothing is voiced) |
/// | 53 | F0 standard deviation (semitones) |
/// | 54 | F0 range: 90th minus 10th percentile (semitones) |
/// | 55 | F0 slope over the chunk (semitones per second, least squares) |
public struct AcousticFeatures: Sendable {
    public static let sampleRate = 16_000
    public static let frameLength = 400
    public static let hop = 160
    public static let fftSize = 512
    public static let melBands = 40
    public static let coefficients = 13
    public static let dimension = 56

    /// The name of each entry of the vector, in order.
    public static let names: [String] = {
        var names = (0..<13).map { "mfcc\($0)_mean" } + (0..<13).map { "mfcc\($0)_std" }
        for feature in ["centroid_khz", "bandwidth_khz", "rolloff_khz", "flux", "zcr", "rms_db"] {
            names += ["\(feature)_mean", "\(feature)_std"]
        }
        names.append("rms_db_range")
        names += ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"].map { "chroma_\($0)" }
        names += ["voiced_ratio", "f0_mean_st", "f0_std_st", "f0_range_st", "f0_slope_st_per_s"]
        return names
    }()

    private let window: [Float]
    private let melFilters: [[(bin: Int, weight: Float)]]
    private let chromaClass: [Int?]

    public init() {
        window = (0..<Self.frameLength).map { 0.5 - 0.5 * cos(2 * Float.pi * Float($0) / Float(Self.frameLength)) }
        melFilters = Self.makeMelFilters()
        chromaClass = (0...Self.fftSize / 2).map { bin in
            let frequency = Double(bin) * Double(Self.sampleRate) / Double(Self.fftSize)
            guard frequency >= 60, frequency <= 5_000 else { return nil }
            // Semitones from A4, shifted so that C is class 0.
            let semitone = Int((12 * log2(frequency / 440)).rounded())
            return ((semitone + 9) % 12 + 12) % 12
        }
    }

    /// The feature vector of `samples` (16 kHz mono); shorter than one frame gives zeros.
    public func vector(_ samples: [Float]) -> [Float] {
        guard samples.count >= Self.frameLength else { return [Float](repeating: 0, count: Self.dimension) }
        let frameCount = 1 + (samples.count - Self.frameLength) / Self.hop
        var mfccs = [[Float]](repeating: [], count: Self.coefficients)
        var centroid: [Float] = [], bandwidth: [Float] = [], rolloff: [Float] = [], flux: [Float] = []
        var zcr: [Float] = [], level: [Float] = []
        var chroma = [Float](repeating: 0, count: 12)
        var previous: [Float]?

        let fft = kiss_fftr_alloc(Int32(Self.fftSize), 0, nil, nil)
        defer { free(UnsafeMutableRawPointer(fft)) }
        var input = [Float](repeating: 0, count: Self.fftSize)
        var output = [kiss_fft_cpx](repeating: kiss_fft_cpx(), count: Self.fftSize / 2 + 1)
        let binHz = Float(Self.sampleRate) / Float(Self.fftSize)

        for frame in 0..<frameCount {
            let start = frame * Self.hop
            var energy: Float = 0
            var crossings = 0
            for index in 0..<Self.frameLength {
                let sample = samples[start + index]
                energy += sample * sample
                input[index] = sample * window[index]
                if index > 0, (sample >= 0) != (samples[start + index - 1] >= 0) { crossings += 1 }
            }
            zcr.append(Float(crossings) / Float(Self.frameLength - 1))
            level.append(20 * log10(sqrt(energy / Float(Self.frameLength)) + 1e-8))
            kiss_fftr(fft, input, &output)
            let power = output.map { $0.r * $0.r + $0.i * $0.i }

            // MFCCs.
            let logMel = melFilters.map { filter in log(max(filter.reduce(0) { $0 + power[$1.bin] * $1.weight }, 1e-10)) }
            for coefficient in 0..<Self.coefficients {
                var sum: Float = 0
                for (band, value) in logMel.enumerated() {
                    sum += value * cos(Float.pi * Float(coefficient) * (Float(band) + 0.5) / Float(Self.melBands))
                }
                let scale = coefficient == 0 ? sqrt(1 / Float(Self.melBands)) : sqrt(2 / Float(Self.melBands))
                mfccs[coefficient].append(sum * scale)
            }

            // Spectral shape.
            let total = power.reduce(0, +)
            if total > 1e-12 {
                var weighted: Float = 0
                for (bin, value) in power.enumerated() { weighted += Float(bin) * binHz * value }
                let center = weighted / total
                var spread: Float = 0
                for (bin, value) in power.enumerated() { spread += pow(Float(bin) * binHz - center, 2) * value }
                var cumulative: Float = 0
                var edge = power.count - 1
                for (bin, value) in power.enumerated() {
                    cumulative += value
                    if cumulative >= 0.85 * total { edge = bin; break }
                }
                centroid.append(center / 1_000)
                bandwidth.append(sqrt(spread / total) / 1_000)
                rolloff.append(Float(edge) * binHz / 1_000)
                for (bin, value) in power.enumerated() {
                    if let pitchClass = chromaClass[bin] { chroma[pitchClass] += value / total }
                }
            } else {
                centroid.append(0); bandwidth.append(0); rolloff.append(0)
            }
            let magnitude = power.map { sqrt($0) }
            let magnitudeSum = max(magnitude.reduce(0, +), 1e-12)
            let normalised = magnitude.map { $0 / magnitudeSum }
            if let previous {
                flux.append(sqrt(zip(normalised, previous).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }))
            }
            previous = normalised
        }

        var vector: [Float] = mfccs.map(Self.mean) + mfccs.map(Self.standardDeviation)
        for series in [centroid, bandwidth, rolloff, flux, zcr, level] {
            vector += [Self.mean(series), Self.standardDeviation(series)]
        }
        vector.append((level.max() ?? 0) - Self.percentile(level, 0.1))
        let chromaTotal = chroma.reduce(0, +)
        vector += chroma.map { chromaTotal > 0 ? $0 / chromaTotal : 0 }
        vector += pitchSummary(samples, frameCount: frameCount, levels: level)
        return vector
    }

    /// `samples` without the leading and trailing 10 ms frames more than 35 dB below the loudest
    /// one (or below -60 dBFS): the speech of a clip or a turn, as the voice model is trained and
    /// run on it. Silence gives nothing.
    public static func trimmed(_ samples: [Float]) -> [Float] {
        let frames = samples.count / hop
        guard frames > 2 else { return samples }
        let levels = (0..<frames).map { frame -> Float in
            var energy: Float = 0
            for index in frame * hop..<(frame + 1) * hop { energy += samples[index] * samples[index] }
            return 10 * log10(energy / Float(hop) + 1e-12)
        }
        let floor = max((levels.max() ?? 0) - 35, -60)
        guard let first = levels.firstIndex(where: { $0 > floor }), let last = levels.lastIndex(where: { $0 > floor }) else { return [] }
        return Array(samples[first * hop..<min(samples.count, (last + 1) * hop)])
    }

    // MARK: - Pitch

    /// Voiced ratio, F0 mean, std, range and slope, in semitones above 55 Hz.
    private func pitchSummary(_ samples: [Float], frameCount: Int, levels: [Float]) -> [Float] {
        let window = 640
        let shortestLag = Self.sampleRate / 400, longestLag = Self.sampleRate / 60
        let loudest = levels.max() ?? 0
        var pitches: [(time: Float, semitones: Float)] = []
        for frame in 0..<frameCount where levels[frame] > loudest - 35 {
            let start = frame * Self.hop
            guard start + window + longestLag <= samples.count else { break }
            var energy: Float = 0
            for index in 0..<window { energy += samples[start + index] * samples[start + index] }
            guard energy > 1e-8 else { continue }
            var best: (lag: Int, score: Float) = (0, 0)
            var scores = [Float](repeating: 0, count: longestLag + 2)
            for lag in shortestLag - 1...longestLag + 1 {
                var product: Float = 0, lagged: Float = 0
                for index in 0..<window {
                    let later = samples[start + index + lag]
                    product += samples[start + index] * later
                    lagged += later * later
                }
                let score = product / max(sqrt(energy * lagged), 1e-12)
                scores[lag] = score
                if lag >= shortestLag, lag <= longestLag, score > best.score { best = (lag, score) }
            }
            guard best.score > 0.5 else { continue }
            // Parabolic interpolation around the peak.
            let (left, middle, right) = (scores[best.lag - 1], scores[best.lag], scores[best.lag + 1])
            let denominator = left - 2 * middle + right
            let offset = abs(denominator) > 1e-9 ? 0.5 * (left - right) / denominator : 0
            let frequency = Float(Self.sampleRate) / (Float(best.lag) + max(-0.5, min(0.5, offset)))
            pitches.append((Float(frame * Self.hop) / Float(Self.sampleRate), 12 * log2(frequency / 55)))
        }
        let voicedRatio = Float(pitches.count) / Float(max(frameCount, 1))
        guard pitches.count >= 2 else { return [voicedRatio, pitches.first?.semitones ?? 0, 0, 0, 0] }
        let values = pitches.map(\.semitones)
        let meanTime = Self.mean(pitches.map(\.time)), meanValue = Self.mean(values)
        var covariance: Float = 0, variance: Float = 0
        for pitch in pitches {
            covariance += (pitch.time - meanTime) * (pitch.semitones - meanValue)
            variance += (pitch.time - meanTime) * (pitch.time - meanTime)
        }
        let slope = variance > 1e-9 ? covariance / variance : 0
        return [voicedRatio, meanValue, Self.standardDeviation(values), Self.percentile(values, 0.9) - Self.percentile(values, 0.1), slope]
    }

    // MARK: - Helpers

    private static func makeMelFilters() -> [[(bin: Int, weight: Float)]] {
        func mel(_ hertz: Double) -> Double { 2_595 * log10(1 + hertz / 700) }
        func hertz(_ mel: Double) -> Double { 700 * (pow(10, mel / 2_595) - 1) }
        let low = mel(20), high = mel(Double(sampleRate) / 2)
        let edges = (0...melBands + 1).map { hertz(low + (high - low) * Double($0) / Double(melBands + 1)) }
        let binHz = Double(sampleRate) / Double(fftSize)
        return (0..<melBands).map { band in
            let (left, center, right) = (edges[band], edges[band + 1], edges[band + 2])
            return (0...fftSize / 2).compactMap { bin -> (bin: Int, weight: Float)? in
                let frequency = Double(bin) * binHz
                let weight = frequency <= center ? (frequency - left) / (center - left) : (right - frequency) / (right - center)
                return weight > 0 ? (bin, Float(weight)) : nil
            }
        }
    }

    static func mean(_ values: [Float]) -> Float {
        values.isEmpty ? 0 : values.reduce(0, +) / Float(values.count)
    }

    static func standardDeviation(_ values: [Float]) -> Float {
        guard values.count > 1 else { return 0 }
        let average = mean(values)
        return sqrt(values.reduce(0) { $0 + ($1 - average) * ($1 - average) } / Float(values.count))
    }

    static func percentile(_ values: [Float], _ fraction: Float) -> Float {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, Int(fraction * Float(sorted.count - 1) + 0.5))]
    }
}
