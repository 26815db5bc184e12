import ArgumentParser
import AttuneAudio
import AttuneCore
import AttuneServer
import AttuneSpeech
import Foundation

struct Transcribe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Transcribe audio files with Whisper (WAV, FLAC, OGG/Opus, MP3; WebM and M4A with ffmpeg)."
    )

    @Argument(help: "Audio files.") var files: [String]
    @Option(help: "Whisper model: tiny.en-q8_0, tiny.en, base, ... or a path.") var model = AttuneConfiguration().whisperModel
    @Option(help: "Threads per decode.") var threads = WhisperSettings().threadsPerDecode
    @Flag(help: "Print JSON with segments, timings and confidence.") var json = false

    func run() async throws {
        var configuration = AttuneConfiguration()
        configuration.whisperModel = model
        var settings = WhisperSettings()
        settings.threadsPerDecode = threads
        let transcriber = WhisperTranscriber(
            model: try WhisperModel(path: URL(fileURLWithPath: configuration.whisperModelPath)), settings: settings)
        let decoder = AudioFileDecoder()
        var failed = false
        for file in files {
            do {
                let audio = try Resampler.resample(try decoder.read(contentsOf: URL(fileURLWithPath: file)), to: 16_000)
                let transcript = try await transcriber.transcribe(audio.samples, pass: .final)
                if json {
                    let report = FileTranscript(file: file, durationSeconds: audio.duration, transcript: transcript)
                    print(String(decoding: try JSONEncoder().encode(report), as: UTF8.self))
                } else {
                    print(files.count > 1 ? "\(file): \(transcript.text)" : transcript.text)
                }
            } catch {
                failed = true
                FileHandle.standardError.write(Data("\(file): \(error)\n".utf8))
            }
        }
        try await transcriber.pool.shutdown()
        if failed { throw ExitCode.failure }
    }
}

private struct FileTranscript: Encodable {
    let file: String
    let durationSeconds: Double
    let transcript: Transcript

    enum CodingKeys: String, CodingKey {
        case file, text, confidence, segments
        case durationSeconds = "duration_s"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(file, forKey: .file)
        try container.encode(durationSeconds, forKey: .durationSeconds)
        try container.encode(transcript.text, forKey: .text)
        try container.encode(transcript.confidence, forKey: .confidence)
        try container.encode(transcript.segments, forKey: .segments)
    }
}
