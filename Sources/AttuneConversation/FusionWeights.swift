import AttuneCore
import Foundation

/// How much each channel's probability of each class counts when several channels are combined.
///
/// Learned from evidence by `scripts/train_fusion.py` and bundled as `fusion-weights.json`:
/// on RAVDESS the words say nothing of the feeling ("Kids are talking by the door"), so the text
/// channel's *neutral* counts for little beside the voice, while its other classes keep the
/// weight they had (there was no evidence against them). A channel the file does not list (the
/// face, until it is trained) counts 1 for every class.
///
/// ```json
/// {"classes": ["anger", …, "surprise"], "weights": {"text": [7 numbers], "voice": [7 numbers]}}
/// ```
public struct FusionWeights: Sendable, Equatable {
    public private(set) var weights: [EmotionChannel: [Double]]

    /// Every channel and class counts the same.
    public static let equal = FusionWeights(weights: [:])

    /// The weights learned by `scripts/train_fusion.py`, or ``equal`` if the package lost them
    /// (a test checks they load).
    public static let bundled: FusionWeights = {
        guard let url = Bundle.module.url(forResource: "fusion-weights", withExtension: "json") else { return .equal }
        return (try? FusionWeights(contentsOf: url)) ?? .equal
    }()

    public init(weights: [EmotionChannel: [Double]]) {
        self.weights = weights
    }

    /// Reads a weights file; the error names the file and what is wrong with it.
    public init(contentsOf url: URL) throws {
        struct File: Decodable {
            let classes: [String]
            let weights: [String: [Double]]
        }
        let file: File
        do {
            file = try JSONDecoder().decode(File.self, from: Data(contentsOf: url))
        } catch {
            throw FusionWeightsError("\(url.path): \(error)")
        }
        guard file.classes == EmotionLabel.allCases.map(\.rawValue) else {
            throw FusionWeightsError("\(url.path): classes must be \(EmotionLabel.allCases.map(\.rawValue)), not \(file.classes)")
        }
        var weights: [EmotionChannel: [Double]] = [:]
        for (name, values) in file.weights {
            guard let channel = EmotionChannel(rawValue: name), channel != .fused else {
                throw FusionWeightsError("\(url.path): no channel named \(name)")
            }
            guard values.count == file.classes.count, values.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
                throw FusionWeightsError("\(url.path): \(name) needs \(file.classes.count) weights ≥ 0")
            }
            weights[channel] = values
        }
        self.weights = weights
    }

    /// The weight of `channel`'s probability of the class at `index` (``EmotionLabel/allCases`` order).
    public func weight(_ channel: EmotionChannel, _ index: Int) -> Double {
        weights[channel]?[index] ?? 1
    }
}

public struct FusionWeightsError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
