import AttuneCore

/// Accuracy, macro-F1 and per-class figures of predictions against independent labels, over
/// Attune's seven classes (``EmotionLabel/allCases`` order).
public struct ClassificationScores: Sendable {
    /// confusion[truth][predicted].
    public private(set) var confusion: [[Int]]

    public init() {
        let count = EmotionLabel.allCases.count
        confusion = [[Int]](repeating: [Int](repeating: 0, count: count), count: count)
    }

    public mutating func add(truth: EmotionLabel, predicted: EmotionLabel) {
        confusion[Self.index(truth)][Self.index(predicted)] += 1
    }

    public var count: Int { confusion.map { $0.reduce(0, +) }.reduce(0, +) }

    public var accuracy: Double {
        Double(confusion.indices.map { confusion[$0][$0] }.reduce(0, +)) / Double(max(count, 1))
    }

    /// precision, recall, f1 and support of each class.
    public var perClass: [String: [String: Double]] {
        var result: [String: [String: Double]] = [:]
        for (index, label) in EmotionLabel.allCases.enumerated() {
            let truePositives = Double(confusion[index][index])
            let predicted = Double(confusion.map { $0[index] }.reduce(0, +))
            let actual = Double(confusion[index].reduce(0, +))
            let precision = predicted > 0 ? truePositives / predicted : 0
            let recall = actual > 0 ? truePositives / actual : 0
            let f1 = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0
            result[label.rawValue] = ["precision": precision, "recall": recall, "f1": f1, "support": actual]
        }
        return result
    }

    /// The mean F1 over the seven classes, each counting the same.
    public var macroF1: Double {
        let f1s = perClass.values.compactMap { $0["f1"] }
        return f1s.reduce(0, +) / Double(max(f1s.count, 1))
    }

    private static func index(_ label: EmotionLabel) -> Int { EmotionLabel.allCases.firstIndex(of: label)! }
}
