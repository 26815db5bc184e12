import AttuneCore
import Foundation

/// Settings of ``EmotionFusion``.
public struct FusionSettings: Sendable, Equatable {
    /// Evidence loses half its weight every this many seconds.
    public var halfLife = 8.0
    /// Weight of the newest fused reading against the running state (0 < s ≤ 1); lower smooths more.
    public var smoothing = 0.6
    /// An update is reported when the top class changes, or the probabilities move by more than
    /// this in total (L1 distance between successive reported states).
    public var changeThreshold = 0.15
    /// Relative trust in each channel, multiplied with an estimate's own confidence.
    public var channelWeights: [EmotionChannel: Double] = [.text: 1, .voice: 0.8, .face: 0.9]

    public init() {}
}

/// Combines the estimates of every channel about one subject into a current state.
///
/// Each channel's latest estimate counts with weight `confidence × channel weight × 2^(-age /
/// halfLife)`, so old evidence fades and any subset of channels works. The weighted mixture is
/// then blended into the running state (exponential smoothing) so single jittery readings do not
/// swing it. ``update(_:)`` answers a new fused estimate only when the state changed materially.
public struct EmotionFusion: Sendable {
    public let subject: String
    public let settings: FusionSettings
    private var latest: [EmotionChannel: EmotionEstimate] = [:]
    private var state: [Double]?
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
        if let previous = state {
            state = zip(previous, mixture).map { settings.smoothing * $1 + (1 - settings.smoothing) * $0 }
        } else {
            state = mixture
        }
        return fusedEstimate(state!, time: estimate.time)
    }

    /// Takes a new estimate; returns the fused estimate if it differs materially from the last
    /// one reported (the first estimate is always reported).
    public mutating func update(_ estimate: EmotionEstimate) -> EmotionEstimate? {
        guard let fused = fuse(estimate) else { return nil }
        if let reported {
            let distance = zip(reported.vector, fused.vector).map { abs($0 - $1) }.reduce(0, +)
            guard fused.label != reported.label || distance > settings.changeThreshold else { return nil }
        }
        reported = fused
        return fused
    }

    private func combine(at time: Double) -> [Double] {
        var sum = [Double](repeating: 0, count: EmotionLabel.allCases.count)
        var total = 0.0
        for (channel, estimate) in latest {
            let age = max(0, time - estimate.time)
            let weight = estimate.confidence * (settings.channelWeights[channel] ?? 1) * pow(2, -age / settings.halfLife)
            for (index, probability) in estimate.vector.enumerated() { sum[index] += weight * probability }
            total += weight
        }
        guard total > 1e-9 else { return EmotionLabel.allCases.map { $0 == .neutral ? 1 : 0 } }
        return sum.map { $0 / total }
    }

    private func fusedEstimate(_ vector: [Double], time: Double) -> EmotionEstimate {
        EmotionEstimate(
            scores: Dictionary(uniqueKeysWithValues: zip(EmotionLabel.allCases, vector)),
            channel: .fused, subject: subject, time: time)
    }
}
