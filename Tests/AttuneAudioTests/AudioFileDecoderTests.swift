import AttuneAudio
import AttuneTestSupport
import Foundation
import Testing

@Suite struct AudioFileDecoderTests {
    let decoder = AudioFileDecoder()

    @Test func wavRoundTripKeepsSamples() throws {
        let tone = (0..<1_600).map { Float(sin(Double($0) * 2 * .pi * 440 / 16_000)) * 0.5 }
        let decoded = try decoder.decode(WAVFile.encode(AudioBuffer(samples: tone, sampleRate: 16_000)))
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
        let audio = try decoder.decode(Data(data))
        #expect(audio.sampleRate == 8_000)
        #expect(audio.samples == [0, 0.25])
    }

    @Test func rejectsWhatIsNotAudio() {
        #expect(throws: AudioDecodingError.self) { try decoder.decode(Data("hello, this is text".utf8)) }
        #expect(throws: AudioDecodingError.self) { try decoder.decode(Data()) }
        #expect(throws: AudioDecodingError.self) { try decoder.decode(Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])) }
    }

    @Test func aTruncatedHeaderIsAnError() throws {
        let wav = WAVFile.encode(AudioBuffer(samples: [Float](repeating: 0.25, count: 100), sampleRate: 16_000))
        #expect(throws: AudioDecodingError.self) { try decoder.decode(wav.prefix(30)) }
    }

    @Test func truncatedDataKeepsWholeFrames() throws {
        let wav = WAVFile.encode(AudioBuffer(samples: [Float](repeating: 0.25, count: 100), sampleRate: 16_000))
        let audio = try decoder.decode(wav.prefix(wav.count - 51))
        #expect(audio.samples.count == 74)
    }

    @Test func tooLongAudioIsRefusedWithTheSettingName() throws {
        let wav = WAVFile.encode(AudioBuffer(samples: [Float](repeating: 0, count: 48_000), sampleRate: 16_000))
        let strict = AudioFileDecoder(maxDurationSeconds: 2)
        #expect {
            try strict.decode(wav)
        } throws: { String(describing: $0).contains("transcribe.max_seconds") }
    }

    @Test func webmWithoutFFmpegIsAClearError() throws {
        let noFFmpeg = AudioFileDecoder(ffmpegPath: nil)
        let webm = Data([0x1A, 0x45, 0xDF, 0xA3, 0x01, 0x00, 0x00, 0x00])
        #expect {
            try noFFmpeg.decode(webm)
        } throws: { String(describing: $0).contains("ffmpeg") }
    }

    /// A decoder whose ffmpeg never finishes is given up after `transcribe.ffmpeg_timeout_s`,
    /// and the child is killed.
    @Test func aHangingFFmpegIsKilledAtTheTimeout() throws {
        let directory = TestData.scratch.appendingPathComponent("attune-hang-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let marker = directory.appendingPathComponent("pid")
        let hanging = directory.appendingPathComponent("ffmpeg")
        try "#!/bin/sh\necho $$ > '\(marker.path)'\nexec sleep 600\n".write(to: hanging, atomically: true, encoding: .utf8)
        chmod(hanging.path, 0o755)
        var limits = UploadLimits()
        limits.ffmpegTimeout = 1
        let decoder = AudioFileDecoder(ffmpegPath: hanging.path, limits: limits)
        let webm = Data([0x1A, 0x45, 0xDF, 0xA3] + [UInt8](repeating: 0, count: 64))
        #expect {
            try decoder.decode(webm)
        } throws: { error in
            (error as? AudioDecodingError)?.kind == .tooLarge && String(describing: error).contains("transcribe.ffmpeg_timeout_s")
        }
        let pid = try #require(Int32(String(contentsOf: marker, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(kill(pid, 0) != 0, "the timed-out ffmpeg is still running")
    }

    /// A playlist that names a network address, raw or behind a WebM or MP4 signature, is
    /// refused without anything connecting to that address.
    @Test func playlistsNeverReachTheNetwork() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        try withUnsafeMutablePointer(to: &address) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                guard bind(listener, $0, length) == 0, listen(listener, 4) == 0, getsockname(listener, $0, &length) == 0 else {
                    throw AudioDecodingError("cannot listen")
                }
            }
        }
        let port = Int(UInt16(bigEndian: address.sin_port))
        let playlist = Array("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nhttp://127.0.0.1:\(port)/a.ts\n#EXT-X-ENDLIST\n".utf8)
        let files: [[UInt8]] = [
            playlist,
            [0x1A, 0x45, 0xDF, 0xA3] + playlist,
            [0, 0, 0, 0x14] + Array("ftypisom".utf8) + [0, 0, 0, 0] + playlist,
        ]
        for file in files {
            #expect(throws: AudioDecodingError.self) { try decoder.decode(Data(file)) }
        }
        var pending = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
        #expect(poll(&pending, 1, 200) == 0, "something connected to the playlist's address")
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

@Suite struct ResamplerTests {
    /// A 440 Hz tone resampled from 44.1 kHz keeps its frequency and level.
    @Test(arguments: [8_000, 22_050, 44_100, 48_000])
    func keepsAToneIntact(rate: Int) throws {
        let tone = (0..<rate).map { Float(sin(Double($0) * 2 * .pi * 440 / Double(rate))) * 0.5 }
        let out = try Resampler.resample(AudioBuffer(samples: tone, sampleRate: rate), to: 16_000)
        #expect(abs(out.samples.count - 16_000) <= 2)
        let middle = out.samples[2_000..<14_000]
        let expected = (2_000..<14_000).map { Float(sin(Double($0) * 2 * .pi * 440 / 16_000)) * 0.5 }
        let error = zip(middle, expected).map { abs($0 - $1) }.max() ?? 1
        #expect(error < 0.01)
    }

    @Test func streamingInChunksEqualsOneShot() throws {
        let noise = (0..<48_000).map { _ in Float.random(in: -0.5...0.5) }
        let whole = try Resampler.resample(AudioBuffer(samples: noise, sampleRate: 48_000), to: 16_000).samples
        let streaming = try Resampler(from: 48_000, to: 16_000)
        var chunked: [Float] = []
        for start in stride(from: 0, to: noise.count, by: 960) {
            chunked += streaming.process(Array(noise[start..<start + 960]))
        }
        chunked += streaming.flush()
        #expect(chunked.count == whole.count)
        #expect(zip(chunked, whole).allSatisfy { abs($0 - $1) < 1e-5 })
    }
}
