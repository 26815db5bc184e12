import Foundation

/// Why a WAV file could not be read.
public struct AudioDecodingError: Error, CustomStringConvertible, Sendable, Equatable {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}

/// Reads RIFF/WAVE files holding integer PCM (8, 16, 24 or 32 bit) or 32-bit float samples,
/// mixing every channel down to mono.
public enum WAVFile {
    public static func read(contentsOf url: URL) throws -> AudioBuffer {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw AudioDecodingError("cannot read \(url.path): \(error.localizedDescription)")
        }
        return try decode(data)
    }

    public static func decode(_ data: Data) throws -> AudioBuffer {
        let bytes = [UInt8](data)
        guard bytes.count >= 12, bytes[0..<4] == riff[...], bytes[8..<12] == wave[...] else {
            throw AudioDecodingError("not a WAV file (missing RIFF/WAVE header)")
        }
        var format: Format?
        var offset = 12
        while offset + 8 <= bytes.count {
            let id = Array(bytes[offset..<offset + 4])
            let size = Int(readUInt32(bytes, offset + 4))
            let body = offset + 8
            let available = min(size, bytes.count - body)
            if id == fmt {
                format = try Format(bytes, at: body, size: available)
            } else if id == dataChunk {
                guard let format else { throw AudioDecodingError("WAV data chunk comes before its fmt chunk") }
                return format.decode(bytes[body..<body + available])
            }
            offset = body + size + (size & 1)
        }
        throw AudioDecodingError(format == nil ? "WAV file has no fmt chunk" : "WAV file has no data chunk")
    }

    /// Encodes mono samples as a 16-bit PCM WAV file.
    public static func encode(_ audio: AudioBuffer) -> Data {
        let pcm = PCM.int16LittleEndian(from: audio.samples)
        var out = [UInt8]()
        out += riff
        out += le32(UInt32(36 + pcm.count))
        out += wave + fmt + le32(16)
        out += le16(1) + le16(1) + le32(UInt32(audio.sampleRate)) + le32(UInt32(audio.sampleRate * 2))
        out += le16(2) + le16(16)
        out += dataChunk + le32(UInt32(pcm.count)) + pcm
        return Data(out)
    }

    private struct Format {
        let encoding: UInt16  // 1 = integer PCM, 3 = IEEE float
        let channels: Int
        let sampleRate: Int
        let bitsPerSample: Int

        init(_ bytes: [UInt8], at offset: Int, size: Int) throws {
            guard size >= 16 else { throw AudioDecodingError("WAV fmt chunk is truncated") }
            var encoding = readUInt16(bytes, offset)
            channels = Int(readUInt16(bytes, offset + 2))
            sampleRate = Int(readUInt32(bytes, offset + 4))
            bitsPerSample = Int(readUInt16(bytes, offset + 14))
            if encoding == 0xFFFE, size >= 26 {  // WAVE_FORMAT_EXTENSIBLE: the sub-format's first two bytes
                encoding = readUInt16(bytes, offset + 24)
            }
            self.encoding = encoding
            guard channels > 0 else { throw AudioDecodingError("WAV file declares no channels") }
            guard sampleRate > 0 else { throw AudioDecodingError("WAV file declares a sample rate of 0") }
            switch (encoding, bitsPerSample) {
            case (1, 8), (1, 16), (1, 24), (1, 32), (3, 32): break
            default:
                throw AudioDecodingError("unsupported WAV encoding \(encoding) with \(bitsPerSample) bits per sample")
            }
        }

        func decode(_ data: ArraySlice<UInt8>) -> AudioBuffer {
            let width = bitsPerSample / 8
            let frameWidth = width * channels
            let frames = data.count / frameWidth
            var samples = [Float](repeating: 0, count: frames)
            let base = data.startIndex
            for frame in 0..<frames {
                var sum: Float = 0
                for channel in 0..<channels {
                    sum += sample(data, at: base + frame * frameWidth + channel * width)
                }
                samples[frame] = sum / Float(channels)
            }
            return AudioBuffer(samples: samples, sampleRate: sampleRate)
        }

        private func sample(_ d: ArraySlice<UInt8>, at i: Int) -> Float {
            switch (encoding, bitsPerSample) {
            case (1, 8): return (Float(d[i]) - 128) / 128
            case (1, 16): return Float(Int16(bitPattern: UInt16(d[i]) | UInt16(d[i + 1]) << 8)) / 32_768
            case (1, 24):
                let raw = Int32(bitPattern: UInt32(d[i]) << 8 | UInt32(d[i + 1]) << 16 | UInt32(d[i + 2]) << 24)
                return Float(raw >> 8) / 8_388_608
            case (1, 32):
                let raw = Int32(bitPattern: UInt32(d[i]) | UInt32(d[i + 1]) << 8 | UInt32(d[i + 2]) << 16 | UInt32(d[i + 3]) << 24)
                return Float(raw) / 2_147_483_648
            default:
                let value = Float(bitPattern: UInt32(d[i]) | UInt32(d[i + 1]) << 8 | UInt32(d[i + 2]) << 16 | UInt32(d[i + 3]) << 24)
                return value.isFinite ? value : 0
            }
        }
    }

    private static let riff: [UInt8] = Array("RIFF".utf8)
    private static let wave: [UInt8] = Array("WAVE".utf8)
    private static let fmt: [UInt8] = Array("fmt ".utf8)
    private static let dataChunk: [UInt8] = Array("data".utf8)

    private static func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8)] }
    private static func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8((v >> (8 * $0)) & 0xFF) } }
}

private func readUInt16(_ b: [UInt8], _ i: Int) -> UInt16 {
    UInt16(b[i]) | UInt16(b[i + 1]) << 8
}

private func readUInt32(_ b: [UInt8], _ i: Int) -> UInt32 {
    UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24
}
