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
    /// How much of the prompt the model found cached and had to read.
    let promptReading = PromptReadingRecord()
    private let task: Task<Void, Never>
    private let stopped = Flag()

    init(utterance: Int, messages: [ChatMessage], chat: any ChatModel) {
        self.utterance = utterance
        self.messages = messages
        let (pieces, continuation) = AsyncThrowingStream.makeStream(of: String.self)
        self.pieces = pieces
        let (stopped, promptReading) = (self.stopped, self.promptReading)
        let task = Task {
            defer { stopped.set() }
            do {
                for try await piece in chat.streamReply(to: messages, recordingPromptIn: promptReading) {
                    continuation.yield(piece)
                }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        self.task = task
        // The reply that took it over stopped reading (it gave up on it, or was cancelled): stop
        // the model's writing too.
        continuation.onTermination = { _ in task.cancel() }
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
    /// How to answer this turn: its feeling (fused, or from the words alone), crisis and urgent
    /// care. A follow-up that reads calm or only mildly ("Yeah, and I left the flat spotless.")
    /// after a painful turn keeps that feeling, mildly: it is usually more of the same story,
    /// and cheering it is the worst mistake a reply can make.
    func plan(after recent: [EmotionLabel]) -> ReplyPlan {
        let feeling = fused ?? textEmotion
        let crisis = CrisisDetector.isCrisis(text)
        let urgent = UrgentCareDetector.needsUrgentCare(text)
        let confidence = feeling?.confidence ?? 0
        if let label = feeling?.label, label == .neutral || Intensity(confidence: confidence) == .mild,
           let previous = recent.last, previous.circumplex.valence < 0, previous != label {
            return ReplyPlan(emotion: previous, confidence: min(confidence, Self.carriedConfidence), isCrisis: crisis, needsUrgentCare: urgent)
        }
        return ReplyPlan(emotion: feeling?.label ?? .neutral, confidence: confidence, isCrisis: crisis, needsUrgentCare: urgent)
    }

    /// The confidence a carried-over feeling is planned with: a mild reading, whose treatment
    /// is not told to the model (``ReplyPlan/instructions``).
    static let carriedConfidence = 0.3

    /// The messages the language model gets for this turn under `plan` (``plan(after:)``), going
    /// on from `opener` when one is said first: the same for a speculative start and for the
    /// reply, so that the reply can take the speculation over when they are equal.
    func prompt(
        plan: ReplyPlan, opener: String?, builder: PromptBuilder, history: [RememberedTurn], recentEmotions: [EmotionLabel]
    ) -> [ChatMessage] {
        builder.messages(
            for: text, plan: plan, emotion: EmotionContext(current: fused ?? textEmotion, recent: recentEmotions), history: history,
            opener: opener)
    }
}
