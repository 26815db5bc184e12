import AttuneCore
import AttuneEmotion
import AttuneTestSupport
import Foundation
import Testing

@Suite(.serialized) struct TextEmotionTests {
    static let model = try! TextEmotionModel(models: TestData.models)

    @Test(arguments: [
        ("Stop lying to me, I am furious!", EmotionLabel.anger),
        ("That is disgusting, I feel sick just looking at it.", .disgust),
        ("I'm terrified of the surgery tomorrow.", .fear),
        ("Thank you so much, this made my day!", .joy),
        ("The bus leaves at 8 from the north station.", .neutral),
        ("I miss her so much, I cry every night.", .sadness),
        ("Wow, I did not expect that at all!", .surprise),
    ])
    func clearExamplesGetTheirClass(text: String, label: EmotionLabel) throws {
        let estimate = try Self.model.estimate(text, subject: "t")
        #expect(estimate.label == label, "\(text): \(estimate.label) \(estimate.probabilities)")
        #expect(estimate.channel == .text)
        #expect(abs(estimate.probabilities.values.reduce(0, +) - 1) < 1e-6)
    }

    @Test func negationIsNotJoy() throws {
        let negated = try Self.model.estimate("I'm not happy at all.", subject: "t")
        let plain = try Self.model.estimate("I'm happy.", subject: "t")
        #expect(plain.label == .joy)
        #expect(negated.label != .joy, "\(negated.probabilities)")
        #expect(negated.valence < plain.valence)
    }

    @Test func intensityRaisesConfidence() throws {
        let mild = try Self.model.estimate("I'm a bit annoyed.", subject: "t")
        let strong = try Self.model.estimate("I am absolutely furious, I hate this so much!!!", subject: "t")
        #expect(strong.probabilities[.anger]! > mild.probabilities[.anger]!)
        #expect(strong.arousal > mild.arousal)
    }

    @Test func longTextsAreReadSentenceBySentence() throws {
        let text = "The train was late again. I waited for an hour in the rain. Then it was cancelled and I just wanted to scream, I was so angry!"
        let estimate = try Self.model.estimate(text, subject: "t")
        #expect(estimate.probabilities[.anger]! > estimate.probabilities[.joy]!)
    }

    @Test func awkwardInputGetsAnAnswerOrAClearError() throws {
        #expect(throws: TextEmotionError.self) { try Self.model.estimate("   \n ", subject: "t") }
        #expect(throws: TextEmotionError.self) { try Self.model.estimate(String(repeating: "so sad. ", count: 12_800), subject: "t") }
        for text in ["😂😂😂", "¿Dónde está la biblioteca?", "我很高兴", String(repeating: "a", count: 500)] {
            let estimate = try Self.model.estimate(text, subject: "t")
            #expect(abs(estimate.probabilities.values.reduce(0, +) - 1) < 1e-6)
        }
    }
}
