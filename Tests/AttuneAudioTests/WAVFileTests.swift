import AttuneAudio
import Foundation
import Testing

@Suite struct WAVFileTests {
    @Test func encodeThenDecodeKeepsSamples() throws {
        let tone = (0..<1_600).map { Float(sin(Double($0) * 2 * .pi * 440 / 16_000)) * 0.5 }
        let decoded = try WAVFile.decode(WAVFile.encode(AudioBuffer(samples: tone, sampleRate: 16_000)))
        #expect(decoded.sampleRate == 16_000)
        #expect(decoded.samples.count == tone.count)
        let worst = zip(decoded.samples, tone).map { abs($0 - $1) }.max() ?? 1
        #expect(worst < 1.0 / 16_000)
    }

    @Test func stereoIsMixedToMono() throws {
        // Two frames of 16-bit stereo: (+0.5, -0.5) and (+0.25, +0.25).
        var data = header(channels: 2, rate: 8_000, bits: 16, encoding: 1, dataBytes: 8)
        for value: Int16 in [16_384, -16_384, 8_192, 8_192] {
            data += [UInt8(UInt16(bitPattern: value) & 0xFF), UInt8(UInt16(bitPattern: value) >> 8)]
        }
        let audio = try WAVFile.decode(Data(data))
        #expect(audio.sampleRate == 8_000)
        #expect(audio.samples == [0, 0.25])
    }

    @Test func rejectsWhatIsNotAWAVFile() {
        #expect(throws: AudioDecodingError.self) { try WAVFile.decode(Data("hello, this is text".utf8)) }
        #expect(throws: AudioDecodingError.self) { try WAVFile.decode(Data()) }
    }

    @Test func rejectsUnsupportedEncodings() {
        let alaw = header(channels: 1, rate: 8_000, bits: 8, encoding: 6, dataBytes: 0)
        #expect(throws: AudioDecodingError("unsupported WAV encoding 6 with 8 bits per sample")) {
            try WAVFile.decode(Data(alaw))
        }
    }

    @Test func truncatedDataKeepsWholeFrames() throws {
        let tone = [Float](repeating: 0.25, count: 100)
        let full = WAVFile.encode(AudioBuffer(samples: tone, sampleRate: 16_000))
        let audio = try WAVFile.decode(full.prefix(full.count - 51))
        #expect(audio.samples.count == 74)
    }

    private func header(channels: UInt16, rate: UInt32, bits: UInt16, encoding: UInt16, dataBytes: UInt32) -> [UInt8] {
        func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8)] }
        func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8((v >> (8 * $0)) & 0xFF) } }
        let blockAlign = channels * bits / 8
        return Array("RIFF".utf8) + le32(36 + dataBytes) + Array("WAVEfmt ".utf8) + le32(16)
            + le16(encoding) + le16(channels) + le32(rate) + le32(rate * UInt32(blockAlign))
            + le16(blockAlign) + le16(bits) + Array("data".utf8) + le32(dataBytes)
    }
}
