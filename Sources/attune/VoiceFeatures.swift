import ArgumentParser
import AttuneAudio
import AttuneBench
import AttuneCore
import AttuneVoice
import Foundation

/// Writes the acoustic features of RAVDESS-named clips as TSV, for training the voice emotion
/// model (`scripts/train_voice_emotion.py`): one row for each clip's whole speech and one for
/// each chunk of it.
struct VoiceFeatures: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "voice-features",
        abstract: "Acoustic features of RAVDESS-named WAV files as TSV (path, label, actor, chunk, features…)."
    )

    @Option(help: "Folder of RAVDESS-named WAV files (searched recursively).") var data: String
    @Option(help: "Also write chunks of this many seconds of speech (0: whole clips only).") var chunkSeconds = 2.0
    @Option(help: "Seconds between chunk starts.") var hopSeconds = 1.0
    @Option(help: "Output file.") var output: String

    func run() throws {
        let root = URL(fileURLWithPath: data)
        guard let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil) else {
            throw ValidationError("cannot read \(data)")
        }
        let files = walker.compactMap { $0 as? URL }.filter { $0.pathExtension.lowercased() == "wav" }.sorted { $0.path < $1.path }
        guard !files.isEmpty else { throw ValidationError("no WAV files under \(data)") }
        let features = AcousticFeatures()
        let decoder = AudioFileDecoder()
        var lines = [(["path", "label", "actor", "chunk"] + AcousticFeatures.names).joined(separator: "\t")]
        for (index, file) in files.enumerated() {
            guard let (label, actor) = VoiceEmotionBenchmark.ravdess(file) else { continue }
            let speech = AcousticFeatures.trimmed(try Resampler.resample(try decoder.read(contentsOf: file), to: 16_000).samples)
            var pieces: [(String, [Float])] = [("whole", speech)]
            let chunk = Int(chunkSeconds * 16_000), hop = max(1, Int(hopSeconds * 16_000))
            if chunk > 0, speech.count > chunk {
                for start in stride(from: 0, through: speech.count - chunk, by: hop) {
                    pieces.append(("\(start / hop)", Array(speech[start..<start + chunk])))
                }
            }
            for (name, samples) in pieces {
                let vector = features.vector(samples).map { String(format: "%.6g", $0) }
                lines.append(([file.path, label.rawValue, String(format: "%02d", actor), name] + vector).joined(separator: "\t"))
            }
            if (index + 1) % 100 == 0 { FileHandle.standardError.write(Data("[voice-features] \(index + 1)/\(files.count)\n".utf8)) }
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: output, atomically: true, encoding: .utf8)
        FileHandle.standardError.write(Data("[voice-features] \(lines.count - 1) rows from \(files.count) files -> \(output)\n".utf8))
    }
}
