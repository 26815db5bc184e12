import AttuneBench
import AttuneCore
import AttuneEmotion
import AttuneTestSupport
import Foundation
import Testing

/// The reply benchmark's judge, on replies of the kinds that a listener rejects (from the
/// issue that asked for it) and ones they accept, with the real sentence encoder.
@Suite(.serialized) struct ReplyJudgeTests {
    static let model = try! TextEmotionModel(models: TestData.models)
    static let judge = ReplyJudge(
        leakSources: ["You can use the \"you\" in your reply as if you're talking to them directly.",
                      "I have a job interview tomorrow and I'm so nervous."],
        relevanceThreshold: 0.2
    ) { model.encoder.embed(model.tokenizer.encode($0), threads: 1) }

    func verdict(_ reply: String, to message: String, _ emotion: EmotionLabel, expecting: ReplyJudge.Expectation? = nil) -> ReplyJudge.Verdict {
        Self.judge.judge(reply: reply, turns: [message], emotion: emotion, expecting: expecting)
    }

    @Test func repliesAListenerRejectsAreCaughtByTheRightCheck() {
        #expect(verdict("I'm sorry, but I can't assist with that.", to: "My coworker clips his nails at his desk, it's kind of gross.", .disgust).refusal)
        #expect(verdict("You should have eaten your salad.", to: "There was a cockroach in my salad at the restaurant, I feel sick.", .disgust).wrongEmotion)
        #expect(verdict("Good afternoon, Attune. I'm going to the library tonight.", to: "The meeting was moved to Thursday at ten.", .neutral).wrongRole)
        #expect(verdict("You can use the \"you\" in your reply as if you're talking to them directly.", to: "Someone has been following me home.", .fear).leak)
        #expect(verdict("Congratulations, that's wonderful!", to: "My dog died this morning.", .sadness).wrongEmotion)
        #expect(verdict("Oh no, I'm so sorry to hear that.", to: "I got the job! I start on Monday!", .joy).wrongEmotion)
        #expect(verdict("I see.", to: "My partner left me after eight years.", .sadness).nonAnswer)
        #expect(verdict("My manager took credit for my project in front of everyone.", to: "My manager took credit for my project in front of everyone again!", .anger).echo)
        #expect(verdict("Do you like pizza or pasta better?", to: "The doctor found a lump and I have to wait two weeks for the biopsy.", .fear).offTopic)
        #expect(verdict("That sounds so frightening.", to: "I have crushing pain in my chest", .fear, expecting: .care).missingHelp)
    }

    @Test func fittingRepliesPass() {
        let replies: [(String, String, EmotionLabel, ReplyJudge.Expectation?)] = [
            ("My dog died this morning. He was with me for fourteen years.", "I'm so sorry. Fourteen years is a lifetime together, and losing him must hurt terribly.", .sadness, nil),
            ("I got the job! I start next Monday!", "Congratulations! That's wonderful news, how are you feeling about starting on Monday?", .joy, nil),
            ("I have crushing pain in my chest and my arm is numb", "That could be serious. Please call 911 or an ambulance right now.", .fear, .care),
            ("I'm making pasta for dinner tonight", "Nice, pasta is always a good choice. What sauce are you making?", .neutral, nil),
            ("It's a bit annoying that my roommate never does the dishes.", "That's annoying, and it's not your fault that the dishes keep piling up.", .anger, nil),
        ]
        for (message, reply, emotion, expectation) in replies {
            let result = verdict(reply, to: message, emotion, expecting: expectation)
            #expect(result.acceptable, "\(reply): \(result.reasons)")
        }
    }
}
