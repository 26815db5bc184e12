import ArgumentParser
import AttuneAudio
import AttuneServer
import AttuneSpeech
import Foundation

struct Say: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Speak a text and write it as a WAV file.")

    @Argument(help: "The text.") var text: String
    @Option(name: .shortAndLong, help: "Output WAV file.") var output: String
    @Option(help: "Voice: \(Voice.all.map(\.id).joined(separator: ", ")).") var voice = Voice.joe.id
    @Option(help: "Speaking rate, 0.5-2 (1 is the voice's own pace).") var rate = 1.0

    func run() async throws {
        let configuration = AttuneConfiguration()
        let synthesizer = try SpeechSynthesizer(piperDirectory: URL(fileURLWithPath: configuration.piperVoiceDirectory))
        do {
            let clock = ContinuousClock()
            let started = clock.now
            let audio = try await synthesizer.synthesize(text, voice: voice, rate: rate)
            let elapsed = clock.now - started
            try WAVFile.encode(audio).write(to: URL(fileURLWithPath: output))
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            FileHandle.standardError.write(Data(String(
                format: "%.2f s of audio at %d Hz in %.2f s (real-time factor %.3f)\n",
                audio.duration, audio.sampleRate, seconds, seconds / max(audio.duration, 0.001)).utf8))
        } catch let error as SynthesisError {
            throw ValidationError(error.description)
        }
        try await synthesizer.pool.shutdown()
    }
}
