import CSoxr

/// Why audio could not be resampled.
public struct ResamplingError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// Streaming sample-rate conversion with libsoxr at its "high quality" setting (20-bit, linear
/// phase). One instance converts one stream: it keeps filter state between calls, so chunk
/// boundaries leave no clicks.
public final class Resampler {
    public let inputRate: Int
    public let outputRate: Int
    private let handle: soxr_t

    public init(from inputRate: Int, to outputRate: Int) throws {
        guard inputRate > 0, outputRate > 0 else {
            throw ResamplingError(description: "sample rates must be positive, got \(inputRate) -> \(outputRate)")
        }
        var error: soxr_error_t?
        guard let handle = attune_soxr_create(Double(inputRate), Double(outputRate), &error), error == nil else {
            throw ResamplingError(description: "libsoxr refused \(inputRate) -> \(outputRate) Hz: \(error.map { String(cString: $0) } ?? "unknown")")
        }
        self.inputRate = inputRate
        self.outputRate = outputRate
        self.handle = handle
    }

    deinit {
        soxr_delete(handle)
    }

    /// Converts the next chunk of the stream; the output lags the input by the filter's delay.
    public func process(_ samples: [Float]) -> [Float] {
        run(samples, final: false)
    }

    /// Ends the stream, returning the samples still held in the filter.
    public func flush() -> [Float] {
        run([], final: true)
    }

    private func run(_ samples: [Float], final: Bool) -> [Float] {
        if samples.isEmpty && !final { return [] }
        let ratio = Double(outputRate) / Double(inputRate)
        var chunk = [Float](repeating: 0, count: Int(Double(max(samples.count, 4_096)) * ratio) + 1_024)
        var output: [Float] = []
        var offset = 0
        while true {
            var consumed = 0
            var produced = 0
            samples.withUnsafeBufferPointer { input in
                chunk.withUnsafeMutableBufferPointer { out in
                    // A null input tells libsoxr the stream has ended and it should drain.
                    let source = final ? nil : UnsafeRawPointer(input.baseAddress! + offset)
                    _ = soxr_process(handle, source, final ? 0 : input.count - offset, &consumed, out.baseAddress, out.count, &produced)
                }
            }
            offset += consumed
            output += chunk[..<produced]
            if produced < chunk.count && (final || offset >= samples.count) { return output }
        }
    }

    /// Converts a whole recording.
    public static func resample(_ audio: AudioBuffer, to rate: Int) throws -> AudioBuffer {
        guard audio.sampleRate != rate else { return audio }
        let resampler = try Resampler(from: audio.sampleRate, to: rate)
        return AudioBuffer(samples: resampler.process(audio.samples) + resampler.flush(), sampleRate: rate)
    }
}
