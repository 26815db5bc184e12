import CSndFile
import Foundation

/// Decodes whole audio files to mono floats: WAV, FLAC, OGG (Vorbis and Opus) and MP3 through
/// libsndfile, in process and from memory; WebM and M4A/MP4 through an `ffmpeg` child process
/// when one is installed.
public struct AudioFileDecoder: Sendable {
    /// The ffmpeg binary for WebM and M4A, or nil to refuse those formats.
    public var ffmpegPath: String?
    /// Longest decoded audio accepted, in seconds.
    public var maxDurationSeconds: Double

    public init(ffmpegPath: String? = AudioFileDecoder.findFFmpeg(), maxDurationSeconds: Double = 600) {
        self.ffmpegPath = ffmpegPath
        self.maxDurationSeconds = maxDurationSeconds
    }

    /// What the first bytes say a file is.
    public enum Container: String, Sendable {
        case wav, flac, ogg, mp3, webm, mp4, unknown

        public init(sniffing data: Data) {
            let head = [UInt8](data.prefix(12))
            func starts(_ bytes: [UInt8], at offset: Int = 0) -> Bool {
                head.count >= offset + bytes.count && Array(head[offset..<offset + bytes.count]) == bytes
            }
            if starts(Array("RIFF".utf8)) && starts(Array("WAVE".utf8), at: 8) || starts(Array("RF64".utf8)) {
                self = .wav
            } else if starts(Array("fLaC".utf8)) {
                self = .flac
            } else if starts(Array("OggS".utf8)) {
                self = .ogg
            } else if starts(Array("ID3".utf8)) || (head.count >= 2 && head[0] == 0xFF && head[1] & 0xE0 == 0xE0) {
                self = .mp3
            } else if starts([0x1A, 0x45, 0xDF, 0xA3]) {
                self = .webm
            } else if starts(Array("ftyp".utf8), at: 4) {
                self = .mp4
            } else {
                self = .unknown
            }
        }
    }

    public func decode(_ data: Data) throws -> AudioBuffer {
        guard !data.isEmpty else { throw AudioDecodingError("the file is empty") }
        let audio: AudioBuffer
        switch Container(sniffing: data) {
        case .wav, .flac, .ogg, .mp3:
            audio = try decodeWithSndFile(data)
        case .webm, .mp4:
            audio = try decodeWithFFmpeg(data)
        case .unknown:
            throw AudioDecodingError("not a supported audio file (expected WAV, FLAC, OGG/Opus, MP3, WebM or M4A)")
        }
        guard audio.duration <= maxDurationSeconds else {
            throw AudioDecodingError(String(format: "audio is %.0f s long; the limit is %.0f s (setting transcribe.max_seconds)", audio.duration, maxDurationSeconds))
        }
        return audio
    }

    private func decodeWithSndFile(_ data: Data) throws -> AudioBuffer {
        try data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
            // libsndfile keeps the pointer to `file` until `sf_close`, so it must stay valid
            // for the whole read, not just the call that opens it.
            var file = AttuneMemoryFile(
                data: bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), size: sf_count_t(bytes.count), position: 0)
            return try withUnsafeMutablePointer(to: &file) { file in
                var info = SF_INFO()
                guard let handle = attune_sf_open_memory(file, &info) else {
                    throw AudioDecodingError("cannot decode audio: \(String(cString: sf_strerror(nil)))")
                }
                defer { sf_close(handle) }
                return try readAll(handle, info: info)
            }
        }
    }

    private func readAll(_ handle: OpaquePointer, info: SF_INFO) throws -> AudioBuffer {
        let channels = Int(info.channels)
        guard channels > 0, info.samplerate > 0 else { throw AudioDecodingError("the file declares no channels or sample rate") }
        let limit = Int(maxDurationSeconds * Double(info.samplerate)) + 1
        var interleaved: [Float] = []
        var block = [Float](repeating: 0, count: 8_192 * channels)
        while true {
            let frames = block.withUnsafeMutableBufferPointer {
                sf_readf_float(handle, $0.baseAddress, sf_count_t(8_192))
            }
            if frames <= 0 { break }
            interleaved += block[..<(Int(frames) * channels)]
            if interleaved.count / channels > limit { break }
        }
        guard !interleaved.isEmpty else { throw AudioDecodingError("the file holds no audio frames (truncated?)") }
        return AudioBuffer(samples: Self.mixToMono(interleaved, channels: channels), sampleRate: Int(info.samplerate))
    }

    private func decodeWithFFmpeg(_ data: Data) throws -> AudioBuffer {
        guard let ffmpegPath, FileManager.default.isExecutableFile(atPath: ffmpegPath) else {
            throw AudioDecodingError("WebM and M4A need ffmpeg, which is not installed (apt-get install ffmpeg, or set transcribe.ffmpeg_path)")
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("attune-ffmpeg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = directory.appendingPathComponent("input")
        let output = directory.appendingPathComponent("output.f32")
        try data.write(to: input)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: ffmpegPath)
        process.arguments = [
            "-nostdin", "-hide_banner", "-loglevel", "error", "-i", input.path,
            "-t", String(maxDurationSeconds + 1), "-vn", "-ac", "1", "-ar", "16000", "-f", "f32le", output.path,
        ]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0, let decoded = try? Data(contentsOf: output), !decoded.isEmpty else {
            let reason = message.split(separator: "\n").last.map(String.init) ?? "no audio stream"
            throw AudioDecodingError("cannot decode audio with ffmpeg: \(reason)")
        }
        let samples = decoded.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        return AudioBuffer(samples: samples.map { $0.isFinite ? $0 : 0 }, sampleRate: 16_000)
    }

    static func mixToMono(_ interleaved: [Float], channels: Int) -> [Float] {
        guard channels > 1 else { return interleaved }
        let frames = interleaved.count / channels
        return (0..<frames).map { frame in
            var sum: Float = 0
            for channel in 0..<channels { sum += interleaved[frame * channels + channel] }
            return sum / Float(channels)
        }
    }

    /// The first `ffmpeg` on the PATH, if any.
    public static func findFFmpeg() -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/ffmpeg" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}
