import AttuneAgent
import AttuneCore
@testable import AttuneServer
import Testing

/// How a turn's reading becomes its reply plan.
struct ReplyPlanningTests {
    static func turn(_ text: String, _ scores: [EmotionLabel: Double]) -> UserTurn {
        UserTurn(
            utterance: 1, text: text, textEmotion: EmotionEstimate(scores: scores, channel: .text, subject: "test", time: 0),
            fused: nil, speechEndedAt: .now, transcribedAt: .now, startedAt: 0)
    }

    /// "So the landlord kept my whole deposit… || Yeah, and I left the flat spotless.": the
    /// follow-up reads calm, and the model celebrated the clean flat.
    @Test func aCalmFollowUpToAPainfulTurnKeepsItsFeelingMildly() {
        let followUp = Self.turn("Yeah, and I left the flat spotless.", [.neutral: 0.34, .disgust: 0.2, .surprise: 0.16, .joy: 0.11])
        let plan = followUp.plan(after: [.joy, .anger])
        #expect(plan.emotion == .anger && plan.intensity == .mild)
        #expect(plan.forbiddenPhrases.contains("that's great"))
        // The model is not told a feeling it might misread; the guard still keeps cheer out.
        #expect(!plan.instructions.contains("angry"))

        // Nothing to carry: the first turn, a pleasant one before, or a clear reading now.
        #expect(followUp.plan(after: []).emotion == .neutral)
        #expect(followUp.plan(after: [.joy]).emotion == .neutral)
        let clear = Self.turn("Actually I just got the deposit back, all of it!", [.joy: 0.8, .surprise: 0.2])
        #expect(clear.plan(after: [.anger]).emotion == .joy)
        // Urgent care is read from the words of this turn, whatever the feeling.
        let urgent = Self.turn("and now my chest hurts and my left arm is numb", [.neutral: 0.4, .fear: 0.3])
        #expect(urgent.plan(after: [.sadness]).needsUrgentCare)
    }
}
