/// Mono audio as 32-bit floats in [-1, 1].
public struct AudioBuffer: Sendable, Equatable {
    public var samples: [Float]
    public var sampleRate: Int

    public init(samples: [Float], sampleRate: Int) {
        self.samples = samples
        self.sampleRate = sampleRate
    }

    public var duration: Double {
        sampleRate > 0 ? Double(samples.count) / Double(sampleRate) : 0
    }
}

public enum PCM {
    /// Converts little-endian signed 16-bit samples to floats in [-1, 1).
    public static func floats(fromInt16LittleEndian bytes: some Collection<UInt8>) -> [Float] {
        var samples = [Float]()
        samples.reserveCapacity(bytes.count / 2)
        var iterator = bytes.makeIterator()
        while let low = iterator.next(), let high = iterator.next() {
            let value = Int16(bitPattern: UInt16(low) | UInt16(high) << 8)
            samples.append(Float(value) / 32_768)
        }
        return samples
    }

    /// Converts floats to little-endian signed 16-bit samples, clipping to the valid range.
    public static func int16LittleEndian(from samples: [Float]) -> [UInt8] {
        var bytes = [UInt8]()
        bytes.reserveCapacity(samples.count * 2)
        for sample in samples {
            let clipped = sample.isFinite ? min(max(sample, -1), 1) : 0
            let value = UInt16(bitPattern: Int16((clipped * 32_767).rounded()))
            bytes.append(UInt8(value & 0xFF))
            bytes.append(UInt8(value >> 8))
        }
        return bytes
    }
}
