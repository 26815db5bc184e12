import AttuneConversation
import AttuneCore
import AttuneEmotion
import AttuneVoice

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

/// The voice channel: the voice emotion model on a chunk or an utterance, on the voice threads.
struct VoiceEmotionSensor: EmotionSensor {
    let model: VoiceEmotionModel
    let pool: InferencePool
    var channel: EmotionChannel { .voice }

    func estimate(_ input: SensorInput, subject: String, time: Double) async throws -> EmotionEstimate? {
        guard case .speech(let samples) = input else { return nil }
        let model = self.model
        return try await pool.run { try model.estimate(samples, subject: subject, time: time) }
    }
}
