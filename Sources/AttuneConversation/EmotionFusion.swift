import AttuneCore
import Foundation

/// Settings of ``EmotionFusion``.
public struct FusionSettings: Sendable, Equatable {
    /// Evidence loses half its weight every this many seconds.
    public var halfLife = 8.0
    /// Weight of the newest fused reading against the running state (0 < s ≤ 1) when the same
    /// channel speaks again; lower smooths more. A reading from another channel than the last one
    /// sets the state to the mixture, which already holds the other channels' evidence.
    public var smoothing = 0.6
    /// An update is reported when the top class changes, or the probabilities move by more than
    /// this in total (L1 distance between successive reported states).
    public var changeThreshold = 0.15
    /// How much each channel's probability of each class counts when channels are combined
    /// (learned from evidence; see ``FusionWeights``).
    public var weights = FusionWeights.bundled

    public init() {}
}

/// Combines the estimates of every channel about one subject into a current state.
///
/// With one channel heard, its latest estimate is the mixture as it is: the absence of the other
/// channels changes nothing. With several, class `k` gets `Σ_c w[c][k] × 2^(-age_c / halfLife) ×
/// p_c[k]`, normalised, where `w` are the learned ``FusionWeights``: old evidence fades, and a
/// channel counts as much for each class as the evidence showed it deserves. Successive readings
/// of one channel are blended into the running state (exponential smoothing) so a single jittery
/// reading does not swing it; a reading of another channel sets the state to the mixture, so the
/// words and the voice of one utterance are weighed by the learned weights alone. ``update(_:)`` answers a new fused estimate only when the state changed materially.
public struct EmotionFusion: Sendable {
    public let subject: String
    public let settings: FusionSettings
    private var latest: [EmotionChannel: EmotionEstimate] = [:]
    private var state: [Double]?
    private var lastChannel: EmotionChannel?
    private var reported: EmotionEstimate?

    public init(subject: String, settings: FusionSettings = .init()) {
        self.subject = subject
        self.settings = settings
    }

    /// The current fused state at `time`, or nil before any evidence.
    public func current(at time: Double) -> EmotionEstimate? {
        state.map { fusedEstimate($0, time: time) }
    }

    /// Takes a new estimate and returns the fused state, changed or not (nil for a `fused` input).
    public mutating func fuse(_ estimate: EmotionEstimate) -> EmotionEstimate? {
        guard estimate.channel != .fused else { return nil }
        latest[estimate.channel] = estimate
        let mixture = combine(at: estimate.time)
        if let previous = state, lastChannel == estimate.channel {
            state = zip(previous, mixture).map { settings.smoothing * $1 + (1 - settings.smoothing) * $0 }
        } else {
            state = mixture
        }
        lastChannel = estimate.channel
        return fusedEstimate(state!, time: estimate.time)
    }

    /// Takes a new estimate; returns the fused estimate if it differs materially from the last
    /// one reported (the first estimate is always reported).
    public mutating func update(_ estimate: EmotionEstimate) -> EmotionEstimate? {
        guard let fused = fuse(estimate) else { return nil }
        return markReported(fused) ? fused : nil
    }

    /// Whether `fused` differs materially from the last fused state reported (the first always
    /// does); if so, it becomes the last one reported.
    public mutating func markReported(_ fused: EmotionEstimate) -> Bool {
        if let reported {
            let distance = zip(reported.vector, fused.vector).map { abs($0 - $1) }.reduce(0, +)
            guard fused.label != reported.label || distance > settings.changeThreshold else { return false }
        }
        reported = fused
        return true
    }

    private func combine(at time: Double) -> [Double] {
        if latest.count == 1, let only = latest.values.first { return only.vector }
        var sum = [Double](repeating: 0, count: EmotionLabel.allCases.count)
        for (channel, estimate) in latest {
            let recency = pow(2, -max(0, time - estimate.time) / settings.halfLife)
            for (index, probability) in estimate.vector.enumerated() {
                sum[index] += recency * settings.weights.weight(channel, index) * probability
            }
        }
        let total = sum.reduce(0, +)
        guard total > 1e-9 else { return EmotionLabel.allCases.map { $0 == .neutral ? 1 : 0 } }
        return sum.map { $0 / total }
    }

    private func fusedEstimate(_ vector: [Double], time: Double) -> EmotionEstimate {
        EmotionEstimate(
            scores: Dictionary(uniqueKeysWithValues: zip(EmotionLabel.allCases, vector)),
            channel: .fused, subject: subject, time: time)
    }
}
