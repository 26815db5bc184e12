import AttuneConversation
import AttuneCore
import AttuneEmotion

/// Emotion in words, as the conversation core's text sensor: MiniLM and the trained head on
/// the emotion threads.
struct TextEmotionSensor: EmotionSensor {
    let model: TextEmotionModel
    let pool: InferencePool
    var channel: EmotionChannel { .text }

    func estimate(_ input: SensorInput, subject: String, time: Double) async throws -> EmotionEstimate? {
        guard case .text(let text) = input, !text.isEmpty else { return nil }
        let model = self.model
        return try await pool.run { try model.estimate(text, subject: subject, time: time) }
    }
}
