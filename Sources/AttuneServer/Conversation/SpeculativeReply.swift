import AttuneAgent
import AttuneCore
import Foundation
import Synchronization

/// A reply started in a pause, on the pause's speculative transcript, before the turn has
/// ended (`reply.speculative_start`). The language model writes into a buffer (bounded by
/// `llm.max_tokens`); when the turn ends with the same prompt, its reply reads the buffer and
/// then the rest as it comes, so the model's time to the first sentence overlaps the wait for
/// the end of the turn. When the person goes on instead, it is cancelled and nobody hears it.
///
/// The ``Responder`` owns it: it cancels it when it is dropped and awaits it (``finish()``)
/// before the session ends; a reply that takes it over awaits it when the reply ends.
final class SpeculativeReply: Sendable {
    let utterance: Int
    let messages: [ChatMessage]
    let startedAt = ContinuousClock.now
    /// The model's text so far and to come; read once, by the reply that takes it over.
    let pieces: AsyncThrowingStream<String, any Error>
    private let task: Task<Void, Never>
    private let stopped = Flag()

    init(utterance: Int, messages: [ChatMessage], chat: any ChatModel) {
        self.utterance = utterance
        self.messages = messages
        let (pieces, continuation) = AsyncThrowingStream.makeStream(of: String.self)
        self.pieces = pieces
        let stopped = self.stopped
        task = Task {
            defer { stopped.set() }
            do {
                for try await piece in chat.streamReply(to: messages) {
                    continuation.yield(piece)
                }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
    }

    /// Stops the model's writing; returns at once.
    func cancel() { task.cancel() }

    /// Whether the model's stream has ended (finished, failed or cancelled).
    var hasStopped: Bool { stopped.isSet }

    /// Stops the model's writing if it has not ended, and waits until it has.
    func finish() async {
        task.cancel()
        await task.value
    }
}

extension UserTurn {
    /// How to answer this turn: its feeling (fused, or from the words alone), crisis and urgent care.
    var plan: ReplyPlan {
        let feeling = fused ?? textEmotion
        return ReplyPlan(
            emotion: feeling?.label ?? .neutral, confidence: feeling?.confidence ?? 0, isCrisis: CrisisDetector.isCrisis(text),
            needsUrgentCare: UrgentCareDetector.needsUrgentCare(text))
    }

    /// The messages the language model gets for this turn: the same for a speculative start and
    /// for the reply, so that the reply can take the speculation over when they are equal.
    func prompt(persona: Persona, memory settings: MemorySettings, history: [RememberedTurn], recentEmotions: [EmotionLabel]) -> [ChatMessage] {
        PromptBuilder(persona: persona, memory: settings).messages(
            for: text, plan: plan, emotion: EmotionContext(current: fused ?? textEmotion, recent: recentEmotions), history: history)
    }
}
