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
        var confusion = [[Int]](repeating: [Int](repeating: 0, count: labels.count), count: labels.count)
        var times: [Double] = []
        let clock = ContinuousClock()
        for (text, truth) in rows {
            let started = clock.now
            let predicted = (try? model.estimate(text, subject: "bench").label).flatMap(labels.firstIndex(of:)) ?? labels.firstIndex(of: .neutral)!
            times.append((clock.now - started).milliseconds)
            confusion[truth][predicted] += 1
        }
        var perClass: [String: [String: Double]] = [:]
        var f1s: [Double] = []
        for (index, label) in labels.enumerated() {
            let tp = Double(confusion[index][index])
            let predicted = Double(confusion.map { $0[index] }.reduce(0, +))
            let actual = Double(confusion[index].reduce(0, +))
            let precision = predicted > 0 ? tp / predicted : 0
            let recall = actual > 0 ? tp / actual : 0
            let f1 = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0
            perClass[label.rawValue] = ["precision": precision, "recall": recall, "f1": f1, "support": actual]
            f1s.append(f1)
        }
        let correct = labels.indices.map { confusion[$0][$0] }.reduce(0, +)
        return Report(
            texts: rows.count, accuracy: Double(correct) / Double(max(rows.count, 1)),
            macroF1: f1s.reduce(0, +) / Double(f1s.count), p50: percentile(times, 0.5), p95: percentile(times, 0.95),
            perClass: perClass, confusion: confusion)
    }
}
