import ArgumentParser
import AttuneAudio
import AttuneCore
import AttuneServer
import AttuneSpeech
import Foundation

struct VAD: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vad",
        abstract: "Find the speech in audio files with Silero VAD."
    )

    @Argument(help: "Audio files (WAV, FLAC, OGG, MP3; WebM and M4A with ffmpeg).") var files: [String]
    @Option(help: "Path to silero_vad.onnx.")
    var model = AttuneConfiguration().modelsDirectory + "/silero_vad.onnx"
    @Option(help: "Speech probability threshold.") var threshold: Float = VoiceActivitySettings().threshold
    @Option(help: "Silence that closes a segment, in seconds.") var minSilence = VoiceActivitySettings().minSilence
    @Option(help: "Shortest speech kept, in seconds.") var minSpeech = VoiceActivitySettings().minSpeech
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        var failed = false
        for file in files {
            do {
                let decoded = try AudioFileDecoder().read(contentsOf: URL(fileURLWithPath: file))
                let audio = try Resampler.resample(decoded, to: VoiceActivitySettings.sampleRate)
                var settings = VoiceActivitySettings()
                settings.threshold = threshold
                settings.minSilence = minSilence
                settings.minSpeech = minSpeech
                var detector = try SileroVoiceActivityDetector(model: URL(fileURLWithPath: model), settings: settings)
                let segments = try detector.segments(in: audio)
                if json {
                    let report = FileReport(file: file, durationSeconds: audio.duration, segments: segments)
                    print(String(decoding: try JSONEncoder().encode(report), as: UTF8.self))
                } else {
                    let spans = segments.map { String(format: "%.2f-%.2f s", $0.start, $0.end) }
                    print("\(file): \(spans.isEmpty ? "no speech" : spans.joined(separator: ", "))")
                }
            } catch {
                failed = true
                FileHandle.standardError.write(Data("\(file): \(error)\n".utf8))
            }
        }
        if failed { throw ExitCode.failure }
    }
}

private struct FileReport: Encodable {
    let file: String
    let durationSeconds: Double
    let segments: [SpeechSegment]

    enum CodingKeys: String, CodingKey {
        case file, segments
        case durationSeconds = "duration_s"
    }
}

func versionReport() -> String {
    """
    attune \(AttuneVersion.current)
    whisper.cpp \(NativeRuntime.whisperVersion)
    onnxruntime \(NativeRuntime.onnxRuntimeVersion)
    sherpa-onnx \(NativeRuntime.sherpaOnnxVersion)
    """
}
