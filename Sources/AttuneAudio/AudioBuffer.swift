import AttuneCore

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

/// Why a streamed audio frame was refused.
public struct AudioFrameError: Error, CustomStringConvertible, Sendable {
    public let code: ServerEvent.ErrorCode
    public let description: String

    public init(code: ServerEvent.ErrorCode, description: String) {
        self.code = code
        self.description = description
    }
}

extension PCM {
    /// Validates and converts one streamed frame. A refused frame is refused whole, so the
    /// stream never holds half a sample.
    public static func samples(
        fromFrame bytes: [UInt8], encoding: ClientMessage.SampleEncoding, maxBytes: Int
    ) throws(AudioFrameError) -> [Float] {
        guard !bytes.isEmpty else {
            throw AudioFrameError(code: .emptyFrame, description: "empty audio frame")
        }
        guard bytes.count <= maxBytes else {
            throw AudioFrameError(
                code: .frameTooLarge,
                description: "audio frame of \(bytes.count) bytes exceeds the limit of \(maxBytes) (setting stream.max_frame_bytes)")
        }
        switch encoding {
        case .pcm16:
            guard bytes.count % 2 == 0 else {
                throw AudioFrameError(code: .oddFrame, description: "PCM16 frames hold whole 2-byte samples; got \(bytes.count) bytes")
            }
            return floats(fromInt16LittleEndian: bytes)
        case .float32:
            guard bytes.count % 4 == 0 else {
                throw AudioFrameError(code: .oddFrame, description: "float32 frames hold whole 4-byte samples; got \(bytes.count) bytes")
            }
            var samples = [Float](repeating: 0, count: bytes.count / 4)
            for index in samples.indices {
                let i = index * 4
                let bits = UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24
                samples[index] = Float(bitPattern: bits)
            }
            if let bad = samples.firstIndex(where: { !$0.isFinite }) {
                throw AudioFrameError(code: .badSamples, description: "sample \(bad) is \(samples[bad]); samples must be finite")
            }
            return samples.map { min(max($0, -1), 1) }
        }
    }
}
