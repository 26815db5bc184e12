import AttuneAudio
import AttuneTestSupport
import AttuneVoice
import Foundation
import Testing

/// The acoustic features on signals whose answers are known, and on real speech.
@Suite struct AcousticFeaturesTests {
    let features = AcousticFeatures()

    static func index(_ name: String) -> Int { AcousticFeatures.names.firstIndex(of: name)! }

    /// A voiced-like tone: a fundamental with decaying harmonics, `frequency` in Hz over time.
    static func tone(seconds: Double, amplitude: Float = 0.5, frequency: (Double) -> Double) -> [Float] {
        var phase = 0.0
        return (0..<Int(seconds * 16_000)).map { index in
            phase += 2 * Double.pi * frequency(Double(index) / 16_000) / 16_000
            return amplitude * Float((1...4).reduce(0.0) { $0 + sin(Double($1) * phase) / Double($1 * $1) } / 1.4236)
        }
    }

    @Test func everyDimensionHasAName() {
        #expect(AcousticFeatures.names.count == AcousticFeatures.dimension)
        #expect(Set(AcousticFeatures.names).count == AcousticFeatures.dimension)
        #expect(features.vector([Float](repeating: 0.1, count: 16_000)).count == AcousticFeatures.dimension)
    }

    @Test func aSteadyToneGivesItsPitchAndLevel() {
        let vector = features.vector(Self.tone(seconds: 1) { _ in 200 })
        #expect(vector[Self.index("voiced_ratio")] > 0.85, "\(vector[Self.index("voiced_ratio")])")
        let expected = Float(12 * log2(200.0 / 55))
        #expect(abs(vector[Self.index("f0_mean_st")] - expected) < 0.3, "\(vector[Self.index("f0_mean_st")]) vs \(expected)")
        #expect(vector[Self.index("f0_std_st")] < 0.2)
        #expect(abs(vector[Self.index("f0_slope_st_per_s")]) < 1)
        #expect(vector[Self.index("zcr_mean")] > 0 && vector[Self.index("rms_db_std")] < 0.5)
    }

    @Test func aRisingToneHasARisingPitch() {
        // 150 Hz to 300 Hz in one second: one octave, 12 semitones per second.
        let vector = features.vector(Self.tone(seconds: 1) { 150 * pow(2, $0) })
        #expect(abs(vector[Self.index("f0_slope_st_per_s")] - 12) < 2, "\(vector[Self.index("f0_slope_st_per_s")])")
        #expect(vector[Self.index("f0_range_st")] > 8)
    }

    @Test func aPureToneLandsInItsChromaClassAndLevel() {
        let sine = (0..<16_000).map { Float(0.5 * sin(2 * Double.pi * 440 * Double($0) / 16_000)) }
        let vector = features.vector(sine)
        let chroma = (0..<12).map { vector[Self.index("chroma_C") + $0] }
        #expect(chroma.firstIndex(of: chroma.max()!) == 9, "\(chroma)")  // A
        let level = Float(20 * log10(0.5 / 2.0.squareRoot()))
        #expect(abs(vector[Self.index("rms_db_mean")] - level) < 0.2)
        #expect(abs(vector[Self.index("centroid_khz_mean")] - 0.44) < 0.05)
    }

    @Test func silenceAndShortInputAreFinite() {
        for samples in [[Float](repeating: 0, count: 16_000), [Float](repeating: 0, count: 100), []] {
            let vector = features.vector(samples)
            #expect(vector.count == AcousticFeatures.dimension && vector.allSatisfy { $0.isFinite })
            #expect(vector[Self.index("voiced_ratio")] == 0)
        }
    }

    @Test func realSpeechIsPartlyVoicedAndFinite() throws {
        let audio = try AudioFileDecoder().read(contentsOf: TestData.ravdess("03-01-05-02-02-01-02"))
        let vector = features.vector(try Resampler.resample(audio, to: 16_000).samples)
        #expect(vector.allSatisfy { $0.isFinite })
        let voiced = vector[Self.index("voiced_ratio")]
        #expect(voiced > 0.15 && voiced < 0.9, "\(voiced)")
        // A man's or woman's voice: F0 between 70 and 350 Hz.
        let f0 = 55 * pow(2, vector[Self.index("f0_mean_st")] / 12)
        #expect(f0 > 70 && f0 < 350, "\(f0)")
    }
}
