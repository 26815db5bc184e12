import Foundation

/// Why audio could not be decoded.
public struct AudioDecodingError: Error, CustomStringConvertible, Sendable, Equatable {
    /// Why a file was refused: it is not audio Attune can read, or it is more than the limits allow.
    public enum Kind: Sendable, Equatable {
        case unsupported
        case tooLarge
    }

    public let kind: Kind
    public let description: String

    public init(_ description: String, kind: Kind = .unsupported) {
        self.kind = kind
        self.description = description
    }
}

/// Writes 16-bit PCM WAV files (reading goes through ``AudioFileDecoder``).
public enum WAVFile {
    /// Encodes mono samples as a 16-bit PCM WAV file.
    public static func encode(_ audio: AudioBuffer) -> Data {
        let pcm = PCM.int16LittleEndian(from: audio.samples)
        var out = [UInt8]()
        out += Array("RIFF".utf8) + le32(UInt32(36 + pcm.count))
        out += Array("WAVEfmt ".utf8) + le32(16)
        out += le16(1) + le16(1) + le32(UInt32(audio.sampleRate)) + le32(UInt32(audio.sampleRate * 2))
        out += le16(2) + le16(16)
        out += Array("data".utf8) + le32(UInt32(pcm.count)) + pcm
        return Data(out)
    }

    private static func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8)] }
    private static func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8((v >> (8 * $0)) & 0xFF) } }
}

extension AudioFileDecoder {
    /// Reads and decodes a file from disk.
    public func read(contentsOf url: URL) throws -> AudioBuffer {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw AudioDecodingError("cannot read \(url.path): \(error.localizedDescription)")
        }
        return try decode(data)
    }
}
