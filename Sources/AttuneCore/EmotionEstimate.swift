import Foundation

/// Where an emotion estimate came from.
public enum EmotionChannel: String, Codable, Sendable, CaseIterable {
    case text, voice, face, fused
}

/// One reading of how someone feels: a probability for each of the seven classes, the top
/// class, and valence and arousal derived from the probabilities.
public struct EmotionEstimate: Codable, Sendable, Equatable {
    /// Probabilities in ``EmotionLabel/allCases`` order, summing to 1.
    public let probabilities: [EmotionLabel: Double]
    public let label: EmotionLabel
    /// The top class's probability.
    public let confidence: Double
    /// Unpleasant (-1) to pleasant (1).
    public let valence: Double
    /// Calm (0) to excited (1).
    public let arousal: Double
    public let channel: EmotionChannel
    /// The session or participant the estimate is about.
    public let subject: String
    /// Seconds since 1970.
    public let time: Double

    /// Builds an estimate from scores for some or all classes (missing ones count as 0); the
    /// scores are normalised to sum to 1. All-zero or invalid scores mean neutral.
    public init(scores: [EmotionLabel: Double], channel: EmotionChannel, subject: String, time: Double) {
        var clean = Dictionary(uniqueKeysWithValues: EmotionLabel.allCases.map { label in
            (label, max(0, scores[label].flatMap { $0.isFinite ? $0 : nil } ?? 0))
        })
        let total = clean.values.reduce(0, +)
        if total > 0 {
            clean = clean.mapValues { $0 / total }
        } else {
            clean[.neutral] = 1
        }
        probabilities = clean
        let top = EmotionLabel.allCases.max { clean[$0]! < clean[$1]! }!
        label = top
        confidence = clean[top]!
        valence = EmotionLabel.allCases.reduce(0) { $0 + clean[$1]! * $1.circumplex.valence }
        arousal = EmotionLabel.allCases.reduce(0) { $0 + clean[$1]! * $1.circumplex.arousal }
        self.channel = channel
        self.subject = subject
        self.time = time
    }

    /// Probabilities as an array in ``EmotionLabel/allCases`` order.
    public var vector: [Double] { EmotionLabel.allCases.map { probabilities[$0]! } }

    enum CodingKeys: String, CodingKey {
        case probabilities, label, confidence, valence, arousal, channel, subject, time
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        let named = Dictionary(uniqueKeysWithValues: probabilities.map { ($0.key.rawValue, $0.value) })
        try container.encode(named, forKey: .probabilities)
        try container.encode(label, forKey: .label)
        try container.encode(confidence, forKey: .confidence)
        try container.encode(valence, forKey: .valence)
        try container.encode(arousal, forKey: .arousal)
        try container.encode(channel, forKey: .channel)
        try container.encode(subject, forKey: .subject)
        try container.encode(time, forKey: .time)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let named = try container.decode([String: Double].self, forKey: .probabilities)
        var scores: [EmotionLabel: Double] = [:]
        for (name, value) in named {
            guard let label = EmotionLabel(normalizing: name) else {
                throw DecodingError.dataCorruptedError(forKey: .probabilities, in: container, debugDescription: "unknown emotion \(name)")
            }
            scores[label, default: 0] += value
        }
        self.init(
            scores: scores, channel: try container.decode(EmotionChannel.self, forKey: .channel),
            subject: try container.decode(String.self, forKey: .subject), time: try container.decode(Double.self, forKey: .time))
    }
}

extension EmotionLabel {
    /// Where each class sits on Russell's circumplex of affect: valence from unpleasant (-1) to
    /// pleasant (1), arousal from calm (0) to excited (1). An estimate's valence and arousal are
    /// these coordinates weighted by its probabilities. The placements follow the usual reading
    /// of the circumplex (e.g. Russell 1980; Posner, Russell & Peterson 2005): anger and fear
    /// unpleasant and aroused, sadness unpleasant and calm, joy pleasant and moderately aroused,
    /// surprise slightly pleasant and highly aroused, neutral at the centre-low.
    public var circumplex: (valence: Double, arousal: Double) {
        switch self {
        case .anger: (-0.6, 0.85)
        case .disgust: (-0.65, 0.5)
        case .fear: (-0.7, 0.8)
        case .joy: (0.8, 0.6)
        case .neutral: (0, 0.2)
        case .sadness: (-0.75, 0.25)
        case .surprise: (0.25, 0.85)
        }
    }
}
