import AttuneCore

/// What a sensor reads emotion from.
public enum SensorInput: Sendable {
    /// Words: a transcript or typed text.
    case text(String)
    /// Speech: 16 kHz mono samples of one chunk or utterance.
    case speech([Float])
}

/// A producer of emotion estimates for one channel (text now; voice and face plug in here).
///
/// Implementations run their model off the cooperative pool, on a bounded pool of their own, and
/// throw `InferencePoolBusyError` when it is full.
public protocol EmotionSensor: Sendable {
    var channel: EmotionChannel { get }
    /// The estimate for `input` about `subject` at `time` (seconds since 1970), or nil when the
    /// input says nothing this sensor can read (empty text, speech to a text sensor).
    func estimate(_ input: SensorInput, subject: String, time: Double) async throws -> EmotionEstimate?
}
