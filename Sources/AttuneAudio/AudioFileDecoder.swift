import CSndFile
import Foundation

/// What an uploaded recording may be. Files are checked against these before their samples are
/// allocated (from the header) and again while they are decoded.
public struct UploadLimits: Sendable, Equatable {
    /// Longest decoded audio, in seconds.
    public var maxSeconds = 600.0
    public var maxChannels = 8
    public static let minSampleRate = 8_000
    public var maxSampleRate = 192_000
    /// Seconds ffmpeg may take for one file before it is killed.
    public var ffmpegTimeout = 30.0
    /// Most samples (frames × channels) a file may hold: ten minutes of 48 kHz stereo. This is
    /// what decoding costs, so a tiny file claiming hours of many-channel audio is refused
    /// before anything is allocated.
    public var maxSamples = 600 * 48_000 * 2

    public init() {}
}

/// Decodes whole audio files to mono floats: WAV, FLAC, OGG (Vorbis and Opus) and MP3 through
/// libsndfile, in process and from memory; WebM and M4A/MP4 through an `ffmpeg` child process
/// when one is installed.
public struct AudioFileDecoder: Sendable {
    /// The ffmpeg binary for WebM and M4A, or nil to refuse those formats.
    public var ffmpegPath: String?
    public var limits: UploadLimits
    /// Longest decoded audio accepted, in seconds.
    public var maxDurationSeconds: Double { limits.maxSeconds }

    public init(ffmpegPath: String? = AudioFileDecoder.findFFmpeg(), limits: UploadLimits = UploadLimits()) {
        self.ffmpegPath = ffmpegPath
        self.limits = limits
    }

    public init(ffmpegPath: String? = AudioFileDecoder.findFFmpeg(), maxDurationSeconds: Double) {
        var limits = UploadLimits()
        limits.maxSeconds = maxDurationSeconds
        self.init(ffmpegPath: ffmpegPath, limits: limits)
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
        case .webm:
            audio = try decodeWithFFmpeg(data, format: "matroska")
        case .mp4:
            audio = try decodeWithFFmpeg(data, format: "mov")
        case .unknown:
            throw AudioDecodingError("not a supported audio file (expected WAV, FLAC, OGG/Opus, MP3, WebM or M4A)")
        }
        guard audio.duration <= maxDurationSeconds else { throw tooLong(audio.duration) }
        return audio
    }

    private func tooLong(_ seconds: Double) -> AudioDecodingError {
        AudioDecodingError(
            String(format: "audio is %.0f s long; the limit is %.0f s (setting transcribe.max_seconds)", seconds, maxDurationSeconds),
            kind: .tooLarge)
    }

    /// Refuses a file whose header declares more than the limits allow, before any sample is read.
    func check(declaredFrames frames: Int64, sampleRate: Int, channels: Int) throws {
        guard (UploadLimits.minSampleRate...limits.maxSampleRate).contains(sampleRate) else {
            throw AudioDecodingError(
                "the file declares a sample rate of \(sampleRate) Hz; accepted: \(UploadLimits.minSampleRate)-\(limits.maxSampleRate) Hz (setting transcribe.max_sample_rate)")
        }
        guard (1...limits.maxChannels).contains(channels) else {
            throw AudioDecodingError("the file declares \(channels) channels; accepted: 1-\(limits.maxChannels) (setting transcribe.max_channels)")
        }
        // Streams of unknown length declare a huge count; their length is checked while decoding.
        guard frames > 0, frames < Int64(Int32.max) * 64 else { return }
        let declared = Double(frames) / Double(sampleRate)
        if declared > maxDurationSeconds + 1 { throw tooLong(declared) }
        if frames * Int64(channels) > Int64(limits.maxSamples) { throw tooManySamples(frames * Int64(channels), channels: channels, sampleRate: sampleRate) }
    }

    private func tooManySamples(_ samples: Int64, channels: Int, sampleRate: Int) -> AudioDecodingError {
        AudioDecodingError(
            "the file holds \(samples) samples (\(channels) channels at \(sampleRate) Hz); the limit is \(limits.maxSamples) (setting transcribe.max_samples)",
            kind: .tooLarge)
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

    /// Reads the whole file block by block, mixing each block to mono as it goes, so memory grows
    /// with the mono length only, and stops as soon as the length passes the limit.
    private func readAll(_ handle: OpaquePointer, info: SF_INFO) throws -> AudioBuffer {
        let channels = Int(info.channels)
        try check(declaredFrames: Int64(info.frames), sampleRate: Int(info.samplerate), channels: channels)
        let limit = Int(maxDurationSeconds * Double(info.samplerate)) + 1
        var mono: [Float] = []
        let blockFrames = 8_192
        var block = [Float](repeating: 0, count: blockFrames * channels)
        while true {
            let frames = block.withUnsafeMutableBufferPointer {
                sf_readf_float(handle, $0.baseAddress, sf_count_t(blockFrames))
            }
            if frames <= 0 { break }
            mono += Self.mixToMono(Array(block[..<(Int(frames) * channels)]), channels: channels)
            if mono.count > limit { throw tooLong(Double(mono.count) / Double(info.samplerate)) }
            if mono.count * channels > limits.maxSamples {
                throw tooManySamples(Int64(mono.count * channels), channels: channels, sampleRate: Int(info.samplerate))
            }
        }
        guard !mono.isEmpty else { throw AudioDecodingError("the file holds no audio frames (truncated?)") }
        return AudioBuffer(samples: mono.map { $0.isFinite ? $0 : 0 }, sampleRate: Int(info.samplerate))
    }

    /// Decodes with an ffmpeg child: the container format is forced (no probing of other
    /// demuxers), only local files may be opened (no network protocols), the output is cut at the
    /// duration limit, and the child is killed after `limits.ffmpegTimeout`.
    private func decodeWithFFmpeg(_ data: Data, format: String) throws -> AudioBuffer {
        guard let ffmpegPath, FileManager.default.isExecutableFile(atPath: ffmpegPath) else {
            throw AudioDecodingError("WebM and M4A need ffmpeg, which is not installed (apt-get install ffmpeg, or set transcribe.ffmpeg_path)")
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("attune-ffmpeg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = directory.appendingPathComponent("input")
        let output = directory.appendingPathComponent("output.f32")
        let log = directory.appendingPathComponent("errors.txt")
        try data.write(to: input)
        FileManager.default.createFile(atPath: log.path, contents: nil)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: ffmpegPath)
        process.arguments = [
            "-nostdin", "-hide_banner", "-loglevel", "error", "-protocol_whitelist", "file", "-f", format, "-i", input.path,
            "-t", String(maxDurationSeconds + 1), "-vn", "-ac", "1", "-ar", "16000", "-f", "f32le", output.path,
        ]
        let errors = try FileHandle(forWritingTo: log)
        defer { try? errors.close() }
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(limits.ffmpegTimeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw AudioDecodingError(
                String(format: "ffmpeg took longer than %.0f s to decode the file (setting transcribe.ffmpeg_timeout_s)", limits.ffmpegTimeout),
                kind: .tooLarge)
        }
        process.waitUntilExit()
        guard process.terminationStatus == 0, let decoded = try? Data(contentsOf: output), !decoded.isEmpty else {
            let message = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            let reason = message.split(separator: "\n").last.map { String($0.prefix(200)) } ?? "no audio stream"
            throw AudioDecodingError("cannot decode audio with ffmpeg: \(reason)")
        }
        let samples = decoded.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        guard Double(samples.count) / 16_000 <= maxDurationSeconds else { throw tooLong(Double(samples.count) / 16_000) }
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
