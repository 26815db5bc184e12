import AttuneCore
import AttuneEmotion
import Foundation

/// `attune bench emotion-text`: accuracy, macro-F1 and per-text latency of the text emotion
/// model on a GoEmotions-style TSV (`text<TAB>label ids<TAB>id`), single-label rows only.
public struct TextEmotionBenchmark {
    public struct Report: Encodable, Sendable {
        public var texts: Int
        public var accuracy: Double
        public var macroF1: Double
        public var p50: Double
        public var p95: Double
        public var perClass: [String: [String: Double]]
        /// confusion[truth][predicted], in ``EmotionLabel/allCases`` order.
        public var confusion: [[Int]]

        enum CodingKeys: String, CodingKey {
            case texts, accuracy, confusion
            case macroF1 = "macro_f1"
            case p50 = "ms_per_text_p50"
            case p95 = "ms_per_text_p95"
            case perClass = "per_class"
        }
    }

    let model: TextEmotionModel

    public init(model: TextEmotionModel) {
        self.model = model
    }

    public func run(data: String, limit: Int = 0) throws -> Report {
        let labels = EmotionLabel.allCases
        var rows: [(String, Int)] = []
        for line in try String(contentsOfFile: data, encoding: .utf8).split(separator: "\n") {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard fields.count >= 2, !fields[1].contains(","), let id = Int(fields[1]), labels.indices.contains(id) else { continue }
            rows.append((String(fields[0]), id))
        }
        if limit > 0 { rows = Array(rows.prefix(limit)) }
        var scores = ClassificationScores()
        var times: [Double] = []
        let clock = ContinuousClock()
        for (text, truth) in rows {
            let started = clock.now
            let predicted = (try? model.estimate(text, subject: "bench").label) ?? .neutral
            times.append((clock.now - started).milliseconds)
            scores.add(truth: labels[truth], predicted: predicted)
        }
        return Report(
            texts: rows.count, accuracy: scores.accuracy, macroF1: scores.macroF1,
            p50: percentile(times, 0.5), p95: percentile(times, 0.95), perClass: scores.perClass, confusion: scores.confusion)
    }
}
