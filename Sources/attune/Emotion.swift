import ArgumentParser
import AttuneCore
import AttuneAudio
import AttuneEmotion
import AttuneVoice
import AttuneServer
import Foundation

struct Emotion: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read the emotion in a text, or in the voice of an audio file (prints JSON).")

    @Argument(help: "The text.") var text: String?
    @Option(help: "An audio file (WAV, FLAC, OGG, MP3; WebM and M4A with ffmpeg): read its voice instead.") var audio: String?
    @Option(help: "With --audio: seconds per chunk.") var chunkSeconds = 1.5
    @Option(help: "With --audio: an ONNX voice model (default: voice.builtin's, the Whisper-encoder model).") var voiceModel: String?

    func validate() throws {
        guard (text == nil) != (audio == nil) else { throw ValidationError("give a text or --audio FILE, not both") }
        guard (0.5...30).contains(chunkSeconds) else { throw ValidationError("--chunk-seconds must be between 0.5 and 30") }
    }

    func run() throws {
        if let audio {
            let model = try VoiceEmotionModel(path: (voiceModel ?? AttuneConfiguration().voiceModelPath).map { URL(fileURLWithPath: $0) })
            let decoder = AudioFileDecoder(ffmpegPath: AudioFileDecoder.findFFmpeg())
            let samples = try Resampler.resample(try decoder.read(contentsOf: URL(fileURLWithPath: audio)), to: 16_000).samples
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(try model.read(samples, chunkSeconds: chunkSeconds, subject: "cli")), as: UTF8.self))
            return
        }
        guard let text else { return }
        let model = try TextEmotionModel(models: URL(fileURLWithPath: AttuneConfiguration().modelsDirectory), threads: 2)
        do {
            let estimate = try model.estimate(text, subject: "cli")
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(estimate), as: UTF8.self))
        } catch let error as TextEmotionError {
            throw ValidationError(error.description)
        }
    }
}
