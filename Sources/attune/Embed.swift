import ArgumentParser
import AttuneEmotion
import AttuneServer
import Foundation

/// Writes sentence embeddings of a TSV's texts, for training the emotion head
/// (`scripts/train_emotion_head.py`).
struct Embed: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Embed the texts of a TSV (text<TAB>…) with all-MiniLM-L6-v2 into a float32 matrix file."
    )

    @Option(help: "TSV whose first column is the text.") var data: String
    @Option(help: "Output: one row of little-endian float32 per text, 384 per pooled feature.") var output: String?
    @Option(help: "Pooled hidden states, LAYER:POOLING separated by commas (pooling: mean, max, first); default: the head's own.")
    var features: String?
    @Option(help: "Also write each text's WordPiece ids, one JSON array per line.") var tokens: String?
    @Option(help: "Parallel workers (each single-threaded).") var workers = 2

    func run() async throws {
        let model = try TextEmotionModel(models: URL(fileURLWithPath: AttuneConfiguration().modelsDirectory))
        let encoder = model.encoder
        let tokenizer = model.tokenizer
        let pooling = try features.map(Self.parse) ?? model.head.features
        let texts = try String(contentsOfFile: data, encoding: .utf8).split(separator: "\n").map {
            String($0.split(separator: "\t", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
        }
        if let tokens {
            let lines = texts.map { "[" + tokenizer.encode($0).map(String.init).joined(separator: ",") + "]" }
            try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: tokens))
        }
        guard let output else { return }
        var rows = [[Float]](repeating: [], count: texts.count)
        let clock = ContinuousClock()
        let started = clock.now
        try await withThrowingTaskGroup(of: (Int, [[Float]]).self) { group in
            let chunk = (texts.count + workers - 1) / workers
            for worker in 0..<workers {
                let range = (worker * chunk)..<min(texts.count, (worker + 1) * chunk)
                group.addTask {
                    (worker, range.map { encoder.features(tokenizer.encode(texts[$0]), pooling: pooling, threads: 1) })
                }
            }
            for try await (worker, embedded) in group {
                for (offset, row) in embedded.enumerated() { rows[worker * chunk + offset] = row }
            }
        }
        var bytes = Data()
        for row in rows { row.withUnsafeBytes { bytes.append(contentsOf: $0) } }
        try bytes.write(to: URL(fileURLWithPath: output))
        let seconds = (clock.now - started).components.seconds
        FileHandle.standardError.write(Data("embedded \(texts.count) texts (\(pooling.map(\.description).joined(separator: ","))) in \(seconds) s\n".utf8))
    }

    static func parse(_ list: String) throws -> [PooledFeature] {
        try list.split(separator: ",").map { item in
            guard let feature = PooledFeature(item.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("--features: '\(item)' is not LAYER:POOLING (e.g. 6:mean)")
            }
            return feature
        }
    }
}
