import AttuneCore
import AttuneEmotion
import AttuneTestSupport
import Foundation
import Synchronization
import Testing

@testable import AttuneAgent

@Suite struct SentenceStreamTests {
    @Test func sentencesComeOutAsSoonAsTheyEnd() {
        var stream = SentenceStream()
        var out: [String] = []
        for piece in ["That sounds ", "really hard.", " I'm here", " for you, ok? And", " Dr. Smith can help", " too."] {
            out += stream.append(piece)
        }
        #expect(out == ["That sounds really hard.", "I'm here for you, ok?"])
        #expect(stream.finish() == "And Dr. Smith can help too.")
    }

    @Test func decimalsAndShortFragmentsDoNotSplit() {
        var stream = SentenceStream()
        #expect(stream.append("It costs 3.50 dollars. Ok. ").isEmpty == false)
        var other = SentenceStream()
        #expect(other.append("Hi. ").isEmpty)  // shorter than the minimum: waits for more
        #expect(other.append("How are you today? ") == ["Hi. How are you today?"])
    }
}

@Suite struct ServerSentEventsTests {
    @Test func parsesChunksSplitAnywhere() throws {
        let stream = """
            data: {"choices":[{"delta":{"content":"Hel"}}]}\r\n\r\n: keep-alive\n\ndata: {"choices":[{"delta":{"content":"lo"}}]}\n\ndata: [DONE]\n\n
            """
        var parser = ServerSentEvents()
        var events: [String] = []
        let bytes = Array(stream.utf8)
        for start in stride(from: 0, to: bytes.count, by: 7) {
            events += parser.feed(bytes[start..<min(start + 7, bytes.count)])
        }
        #expect(events.count == 3)
        #expect(try OpenAIChatClient.chunk(events[0]).text == "Hel")
        #expect(try OpenAIChatClient.chunk(events[1]).text == "lo")
        #expect(events[2] == "[DONE]")
    }

    /// llama-server's last chunk says how much of the prompt it found cached and how much it read.
    @Test func theLastChunkTellsHowMuchOfThePromptWasRead() throws {
        let last = #"{"choices":[{"finish_reason":"stop","index":0,"delta":{}}],"timings":{"cache_n":23,"prompt_n":7,"prompt_ms":66.5}}"#
        let chunk = try OpenAIChatClient.chunk(last)
        #expect(chunk.text == nil)
        #expect(chunk.promptReading == PromptReading(cachedTokens: 23, readTokens: 7))
        // Other servers send no timings.
        #expect(try OpenAIChatClient.chunk(#"{"choices":[{"delta":{"content":"Hi"}}]}"#).promptReading == nil)
    }

    @Test func errorsInTheStreamAreReported() {
        #expect(throws: LLMError.self) { try OpenAIChatClient.chunk(#"{"error":{"message":"model not loaded"}}"#) }
        #expect(throws: LLMError.self) { try OpenAIChatClient.chunk("not json") }
    }

    @Test func anUnreachableServerIsAClearError() async throws {
        var settings = LLMSettings()
        settings.connectTimeout = 1
        let client = OpenAIChatClient(settings: settings, baseURL: "http://127.0.0.1:9/v1")
        do {
            for try await _ in client.streamReply(to: [ChatMessage(.user, "hi")]) {}
            Issue.record("expected an error")
        } catch let error as LLMError {
            #expect(error.kind == .unreachable, "\(error)")
        }
    }
}

@Suite struct CrisisTests {
    @Test(arguments: [
        "I just want to end my life",
        "Sometimes I think everyone would be better off without me.",
        "I've been cutting myself again",
        "I don’t want to live anymore",
        "I don't think I want to be alive anymore, everything is just too much",
    ])
    func crisisMessagesAreRecognised(text: String) {
        #expect(CrisisDetector.isCrisis(text))
        #expect(ReplyPlan(emotion: .sadness, confidence: 0.9, isCrisis: true).instructions.contains("crisis"))
    }

    @Test(arguments: ["I killed it at the presentation today!", "This traffic is killing me", "I'm so tired of my job"])
    func everydayPhrasesAreNot(text: String) {
        #expect(!CrisisDetector.isCrisis(text))
    }

    @Test func aCrisisReplyAlwaysEndsWithTheHelpLine() async {
        let plan = ReplyPlan(emotion: .sadness, confidence: 0.8, isCrisis: true)
        var guardrail = ReplyGuard(plan: plan) { _ in nil }
        #expect(await guardrail.review("I'm so sorry you're feeling this way.") != nil)
        #expect(guardrail.closing() == [ReplyPlan.crisisHelp])
        var helped = ReplyGuard(plan: plan) { _ in nil }
        _ = await helped.review("Please call 988 right now, they are there for you.")
        #expect(helped.closing().isEmpty)
        // A hotline without its number is not the step to take.
        var vague = ReplyGuard(plan: plan) { _ in nil }
        _ = await vague.review("You can call a suicide hotline or seek help from a trusted friend or family member.")
        #expect(vague.closing() == [ReplyPlan.crisisHelp])
    }
}

@Suite struct UrgentCareTests {
    @Test(arguments: [
        "I've had this crushing pain in my chest for twenty minutes",
        "my dad fell and hit his head and now he's slurring his words",
        "I think someone is trying to get into my flat right now",
        "I can’t breathe properly",
        "my little girl has a high fever and she's not waking up properly",
    ])
    func emergenciesAreRecognised(text: String) {
        #expect(UrgentCareDetector.needsUrgentCare(text))
        #expect(ReplyPlan(emotion: .fear, confidence: 0.9, needsUrgentCare: true).instructions.contains("emergency services"))
    }

    @Test(arguments: ["My chest of drawers arrived broken", "I'm a bit nervous about the dentist", "The heart of the city was busy"])
    func everydayPhrasesAreNot(text: String) {
        #expect(!UrgentCareDetector.needsUrgentCare(text))
    }

    @Test func anUrgentReplyTellsThemToCallForHelpUnlessItAlreadyDid() async {
        let plan = ReplyPlan(emotion: .fear, confidence: 0.8, needsUrgentCare: true)
        var guardrail = ReplyGuard(plan: plan) { _ in nil }
        #expect(await guardrail.review("That sounds really frightening.") != nil)
        #expect(guardrail.closing() == [ReplyPlan.urgentHelp])
        // The step: the emergency number, and getting out of danger (a break-in, a gas leak).
        #expect(ReplyPlan.urgentHelp.contains("emergency number") && ReplyPlan.urgentHelp.contains("get out"))
        var helped = ReplyGuard(plan: plan) { _ in nil }
        _ = await helped.review("Please call an ambulance right away.")
        #expect(helped.closing().isEmpty)
        // An ordinary plan adds nothing.
        #expect(ReplyGuard(plan: ReplyPlan(emotion: .fear, confidence: 0.8)) { _ in nil }.closing().isEmpty)
    }
}

@Suite(.serialized) struct ReplyGuardTests {
    static let model = try! TextEmotionModel(models: TestData.models)
    static let judge: ReplyGuard.Judge = { try? model.estimate($0, subject: "test") }

    @Test func aCheerfulSentenceToAFrightenedPersonIsRepaired() async {
        let plan = ReplyPlan(emotion: .fear, confidence: 0.8)
        var guardrail = ReplyGuard(plan: plan, judge: Self.judge)
        let out = await guardrail.review("That's great, have fun!")
        #expect(out == plan.repairs[0])
        #expect(guardrail.rejected == ["That's great, have fun!"])
        // A fitting sentence passes untouched.
        #expect(await guardrail.review("That sounds scary, and your worry makes sense.") == "That sounds scary, and your worry makes sense.")
    }

    @Test func aRejectedSentenceAfterAnApprovedOneIsDroppedNotReplaced() async {
        let plan = ReplyPlan(emotion: .sadness, confidence: 0.9)
        var guardrail = ReplyGuard(plan: plan, judge: Self.judge)
        let answer = "I'm so sorry your dog died, fourteen years is a long time together."
        #expect(await guardrail.review(answer) == answer)
        #expect(await guardrail.review("Cheer up, you can get a new puppy!") == nil)
        #expect(guardrail.rejected == ["Cheer up, you can get a new puppy!"])
        // An empathic sentence naming their frustration is not a contradiction of sadness.
        #expect(!(await guardrail.contradicts("It must be so frustrating to lose him like that.")))
    }

    /// A reply the guard cut down to a few generic words does not answer the person: the model
    /// is asked once more, and what that second try says is reviewed without further repairs.
    @Test func aReplyCutDownToAFewWordsNeedsASecondTry() async {
        let plan = ReplyPlan(emotion: .anger, confidence: 0.8)
        var guardrail = ReplyGuard(plan: plan, judge: Self.judge)
        guardrail.userText = "It's a bit annoying that my roommate never does the dishes."
        #expect(await guardrail.review("That's frustrating.") == "That's frustrating.")
        #expect(!guardrail.needsSecondTry(minimumWords: 8))  // nothing rejected: the model chose to be brief
        #expect(await guardrail.review("It's important to take care of the things that are important to you.") == nil)
        #expect(guardrail.needsSecondTry(minimumWords: 8))
        #expect(!guardrail.needsSecondTry(minimumWords: 0))  // reply.second_try_words=0: never
        guardrail.stopRepairing()
        let answer = "Coming home to a sink full of their dishes every night would wear anyone down."
        #expect(await guardrail.review(answer) == answer)
        #expect(await guardrail.review("It's important to stay calm.") == nil)
        #expect(!guardrail.needsSecondTry(minimumWords: 8))

        // Only a repair spoken (the model's one sentence rejected): a second try is needed too,
        // and the repair's words are not the model's.
        var repaired = ReplyGuard(plan: plan, judge: Self.judge)
        #expect(await repaired.review("It's important to be respectful and not take things personally.") == plan.repairs[0])
        #expect(repaired.approvedWords == 0)
        #expect(repaired.needsSecondTry(minimumWords: 8))
        repaired.stopRepairing()
        #expect(await repaired.review("You should have talked to them sooner.") == nil)  // dropped, no second repair

        // A crisis reply's support and help line do not depend on the model: no second try.
        var crisis = ReplyGuard(plan: ReplyPlan(emotion: .sadness, confidence: 0.9, isCrisis: true), judge: Self.judge)
        _ = await crisis.review("It's important to stay positive.")
        #expect(!crisis.rejected.isEmpty && !crisis.needsSecondTry(minimumWords: 8))
    }

    /// A first try whose sentences keep being rejected, none approved, is going nowhere: the
    /// Responder stops it and asks once more at once (`reply.second_try_after_rejections`).
    @Test func aFirstTryWithOnlyRejectedSentencesIsGivenUpEarly() async {
        let plan = ReplyPlan(emotion: .anger, confidence: 0.6)
        var guardrail = ReplyGuard(plan: plan, judge: Self.judge)
        guardrail.userText = "It's a bit annoying that my roommate never does the dishes."
        guardrail.alreadySaid("Oh, that's frustrating.")
        #expect(await guardrail.review("It's important to take care of the things that are important to you.") == nil)
        #expect(!guardrail.isGoingNowhere(after: 2))
        #expect(guardrail.isGoingNowhere(after: 1))
        #expect(await guardrail.review("Oh, that's really frustrating.") == nil)  // a repeat of the opener
        #expect(guardrail.isGoingNowhere(after: 2))
        #expect(!guardrail.isGoingNowhere(after: 0))  // 0: never give up early
        // Once one of the model's sentences is approved the reply answers them: read on.
        let answer = "Coming home to a sink full of their dishes every night would wear anyone down."
        #expect(await guardrail.review(answer) == answer)
        #expect(!guardrail.isGoingNowhere(after: 2))
        // A crisis reply never waits on a second try.
        var crisis = ReplyGuard(plan: ReplyPlan(emotion: .sadness, confidence: 0.9, isCrisis: true), judge: Self.judge)
        _ = await crisis.review("It's important to stay positive.")
        _ = await crisis.review("You should look on the bright side.")
        #expect(crisis.rejected.count == 2 && !crisis.isGoingNowhere(after: 2))
    }

    /// Reading a reply stops its producer when the reader has had enough, and hands on every
    /// piece and the stream's error otherwise.
    @Test func readingAReplyCanStopTheModel() async throws {
        let stopped = Mutex(false)
        let endless = AsyncThrowingStream<String, any Error> { continuation in
            let producer = Task {
                while !Task.isCancelled {
                    continuation.yield("word ")
                    try? await Task.sleep(for: .milliseconds(5))
                }
            }
            continuation.onTermination = { _ in
                producer.cancel()
                stopped.withLock { $0 = true }
            }
        }
        var taken = 0
        let finished = try await endless.read { _ in
            taken += 1
            return taken < 3
        }
        #expect(!finished && taken == 3)
        #expect(stopped.withLock { $0 })

        let (short, feed) = AsyncThrowingStream.makeStream(of: String.self)
        feed.yield("Hello")
        feed.yield(" there.")
        feed.finish()
        var text = ""
        #expect(try await short.read { text += $0; return true })
        #expect(text == "Hello there.")

        let (failing, failure) = AsyncThrowingStream.makeStream(of: String.self)
        failure.yield("Hel")
        failure.finish(throwing: LLMError(.timeout, "no end"))
        await #expect(throws: LLMError.self) { _ = try await failing.read { _ in true } }
    }

    /// A reply that names nothing of what the person told about has not shown it heard them:
    /// the Responder asks once more (`reply.second_try_unmentioned`).
    @Test func aReplyThatMentionsNothingOfTheirsIsNoticed() async {
        var guardrail = ReplyGuard(plan: ReplyPlan(emotion: .surprise, confidence: 0.6), judge: Self.judge)
        guardrail.userText = "My boss suddenly announced that the whole team is moving to Berlin."
        #expect(await guardrail.review("That's a big change! Have you considered what you want to do?") != nil)
        #expect(guardrail.mentionsNothingOfTheirs)
        #expect(await guardrail.review("Moving the whole team to another country is a lot to take in.") != nil)
        #expect(!guardrail.mentionsNothingOfTheirs)

        // Stems, not exact words; feeling words are not the thing that happened.
        let exams = ParticularWords("I passed all my exams! I honestly thought I'd failed chemistry")
        #expect(exams.isMentioned(in: "Your chemistry exam went better than you feared."))
        #expect(!exams.isMentioned(in: "That's wonderful, you must be so relieved!"))
        #expect(ParticularWords("the test says I'm pregnant").isMentioned(in: "A pregnancy you weren't expecting!"))
        #expect(!ParticularWords("I didn't make the choir, I'm a bit disappointed").isMentioned(in: "That can be disappointing."))
        // A message of feelings alone names nothing in particular; nor is anything asked of a crisis reply.
        var feelings = ReplyGuard(plan: ReplyPlan(emotion: .joy, confidence: 0.9), judge: Self.judge)
        feelings.userText = "I'm so happy right now!"
        #expect(await feelings.review("That's lovely to hear!") != nil)
        #expect(!feelings.mentionsNothingOfTheirs)
        var crisis = ReplyGuard(plan: ReplyPlan(emotion: .sadness, confidence: 0.9, isCrisis: true), judge: Self.judge)
        crisis.userText = "I lost my job and I don't want to be alive anymore"
        _ = await crisis.review("I'm really glad you told me.")
        #expect(!crisis.mentionsNothingOfTheirs)
    }

    @Test func aSentenceSaidTwiceOrThanksNobodyGaveAreNotSpoken() async {
        var guardrail = ReplyGuard(plan: ReplyPlan(emotion: .disgust, confidence: 0.8), judge: Self.judge)
        guardrail.userText = "I read about a company dumping chemicals in the river near a school."
        #expect(await guardrail.review("Oh, that's really upsetting.") == "Oh, that's really upsetting.")
        #expect(await guardrail.contradicts("Oh, that's very upsetting."))
        #expect(!(await guardrail.contradicts("Dumping chemicals near children is appalling.")))
        #expect(await guardrail.contradicts("You're welcome! It's good that you care."))
        var thanked = ReplyGuard(plan: ReplyPlan(emotion: .joy, confidence: 0.8), judge: Self.judge)
        thanked.userText = "Thanks for listening to me earlier, it helped."
        #expect(!(await thanked.contradicts("You're welcome, I'm glad it helped.")))
    }

    @Test func theSecondTryShowsWhatWasSaidAndAsksForTheMissingPart() {
        let first = [ChatMessage(.system, "persona"), ChatMessage(.user, "my roommate never does the dishes")]
        let messages = ReplyPlan.secondTry(first, said: ["That's frustrating."], to: "my roommate never does the dishes")
        #expect(messages.prefix(2) == first[...])
        #expect(messages[2] == ChatMessage(.assistant, "That's frustrating."))
        // The note quotes their message: without it the model answered a few-shot example.
        #expect(messages[3].role == .system && messages[3].content.hasPrefix(ReplyPlan.secondTryNote))
        #expect(messages[3].content.hasSuffix("\"my roommate never does the dishes\""))
        #expect(ReplyPlan.secondTry(first, said: [], to: "hello").count == 3)
    }

    @Test func refusalsAndReadOutInstructionsAreNeverSpoken() async {
        let plan = ReplyPlan(emotion: .disgust, confidence: 0.6)
        var guardrail = ReplyGuard(plan: plan, judge: Self.judge)
        guardrail.shownToModel([plan.instructions] + ReplyPlan.allExamples.map(\.0))
        #expect(await guardrail.contradicts("I'm sorry, but I can't assist with that."))
        #expect(await guardrail.contradicts("I have a job interview tomorrow and I'm so nervous."))
        #expect(await guardrail.contradicts("Acknowledge that it felt wrong or repellent to them, without adding judgement."))
        #expect(!(await guardrail.contradicts("Ugh, clipping nails at a desk is really gross.")))

        // A run of an example's words that spans two sentences is caught in the second
        // (the joy example: "…that's wonderful news! How does it feel to be allowed on the road?").
        var joyful = ReplyGuard(plan: ReplyPlan(emotion: .joy, confidence: 0.9), judge: Self.judge)
        joyful.shownToModel(ReplyPlan.allExamples.map(\.1))
        #expect(await joyful.review("That's great news!") == "That's great news!")
        #expect(await joyful.review("How does it feel to have so many followers?") == nil)
        #expect(await joyful.review("What does he post?") == "What does he post?")
    }

    @Test func theClassifierCatchesJoyWithoutForbiddenWords() async {
        let plan = ReplyPlan(emotion: .sadness, confidence: 0.9)
        let guardrail = ReplyGuard(plan: plan, judge: Self.judge)
        #expect(await guardrail.contradicts("I love this, thank you so much, it made my day!"))
        #expect(!(await guardrail.contradicts("I'm so sorry, that must hurt a lot.")))
    }

    /// The text model reads reassurance as joy (GoEmotions counts caring as joy) at 0.5 to 0.7;
    /// only cheerfulness reaches the joy threshold against a painful feeling.
    @Test func reassuranceIsNotCheerfulnessButLecturingIsRejected() async {
        let guardrail = ReplyGuard(plan: ReplyPlan(emotion: .fear, confidence: 0.8), judge: Self.judge)
        #expect(!(await guardrail.contradicts("It's understandable to feel anxious about results day.")))
        #expect(!(await guardrail.contradicts("It's okay to feel that way.")))
        #expect(await guardrail.contradicts("That's very nice, you must be so happy!"))
        #expect(await guardrail.contradicts("It's important to be respectful and not take things personally."))
        #expect(await guardrail.contradicts("You should have checked the salad first."))
        // The same reassurance to good news is not lecturing, and joy is not checked against joy.
        let joyful = ReplyGuard(plan: ReplyPlan(emotion: .joy, confidence: 0.8), judge: Self.judge)
        #expect(!(await joyful.contradicts("Remember that you earned this!")))
    }

    /// A joy reading overrules the model's sympathy only when it is strong, and a mild reading of
    /// any feeling is not handed to the model as what to do.
    @Test func uncertainJoyDoesNotOverruleSympathy() async {
        let unsure = ReplyGuard(plan: ReplyPlan(emotion: .joy, confidence: 0.31), judge: Self.judge)
        #expect(!(await unsure.contradicts("I'm so sorry, waiting for a scan like that is frightening.")))
        #expect(!ReplyPlan(emotion: .joy, confidence: 0.31).instructions.contains("good feeling"))
        let sure = ReplyGuard(plan: ReplyPlan(emotion: .joy, confidence: 0.9), judge: Self.judge)
        #expect(await sure.contradicts("I'm so sorry to hear that."))
        #expect(ReplyPlan(emotion: .joy, confidence: 0.9).instructions.contains("good feeling"))
    }

    @Test func narrationAndEchoesAreRejected() async {
        var guardrail = ReplyGuard(plan: ReplyPlan(emotion: .joy, confidence: 0.9)) { _ in nil }
        guardrail.userText = "I got the job! I can't believe it, I start next Monday!"
        #expect(await guardrail.contradicts("The person sounds happy."))
        #expect(await guardrail.contradicts("Acknowledge the good news warmly."))
        #expect(await guardrail.contradicts("I got the job!"))
        #expect(!(await guardrail.contradicts("Congratulations, that's fantastic news!")))
    }

    @Test func aSentenceThatSaysTheirMessageBackIsRejected() async {
        var guardrail = ReplyGuard(plan: ReplyPlan(emotion: .neutral, confidence: 0.9)) { _ in nil }
        guardrail.userText = "I moved the sofa to the other wall in the living room"
        #expect(await guardrail.contradicts("You moved the sofa to the other wall in the living room."))
        #expect(!(await guardrail.contradicts("Nice, does the room feel bigger with the sofa over there?")))
        guardrail.userText = "I watched a documentary about octopuses last night"
        #expect(!(await guardrail.contradicts("What did you learn from the documentary about octopuses?")))
    }

    @Test func theModelSayingTheOpenerAgainIsDroppedNotRepaired() async throws {
        let plan = ReplyPlan(emotion: .sadness, confidence: 0.9)
        let opener = try #require(plan.opener(for: "My cat died this morning."))
        var guardrail = ReplyGuard(plan: plan, judge: Self.judge)
        guardrail.userText = "My cat died this morning."
        guardrail.alreadySaid(opener)
        // "Oh, I'm sorry." after "Oh, I'm so sorry.": dropped, and no repair stands in for it;
        // nor for a sentence rejected for another reason, since the opener acknowledged the feeling.
        #expect(await guardrail.review("Oh, I'm sorry.") == nil)
        #expect(await guardrail.review("Cheer up, there are other cats!") == nil)
        #expect(guardrail.rejected == ["I'm sorry.", "Cheer up, there are other cats!"])
        #expect(guardrail.approvedWords == 0)
        #expect(await guardrail.review("Losing your cat so suddenly is heartbreaking.") != nil)
        // The model's first sentence restarting the opener loses the repeat, and only that.
        var oh = ReplyGuard(plan: ReplyPlan(emotion: .neutral, confidence: 0.9)) { _ in nil }
        oh.alreadySaid("Oh.")
        #expect(await oh.review("Oh, that sounds like a busy afternoon.") == "That sounds like a busy afternoon.")
        #expect(await oh.review("Oh, what will you read?") == "Oh, what will you read?")
        #expect(ReplyGuard.withoutLeading("Okay.", in: "Okay, I see what you mean.") == "I see what you mean.")
        #expect(ReplyGuard.withoutLeading("Oh.", in: "Oh. Oh, that’s very hard.") == "That’s very hard.")
        #expect(ReplyGuard.withoutLeading("Oh, I'm so sorry.", in: "Oh, I'm so sorry, that's awful.") == "That's awful.")
        #expect(ReplyGuard.withoutLeading("Oh, I'm so sorry.", in: "Oh no.") == "Oh no.")
        #expect(ReplyGuard.withoutLeading("I'm really glad you told me.", in: "I'm here for you.") == "I'm here for you.")
        #expect(ReplyGuard.withoutLeading("Oh.", in: "Oh.").isEmpty)
        // A crisis repair that would say the opener again is skipped for the next one.
        let crisis = ReplyPlan(emotion: .sadness, confidence: 0.9, isCrisis: true)
        var careful = ReplyGuard(plan: crisis) { _ in nil }
        careful.alreadySaid(try #require(crisis.opener(for: "I want it all to end")))
        #expect(await careful.review("Calm down.") == crisis.repairs[1])
    }

    @Test func repairsRunOutAndThenSentencesAreDropped() async {
        let plan = ReplyPlan(emotion: .anger, confidence: 0.9)
        var guardrail = ReplyGuard(plan: plan) { _ in nil }
        for _ in plan.repairs { #expect(await guardrail.review("Calm down.") != nil) }
        #expect(await guardrail.review("Calm down.") == nil)
    }
}

@Suite struct OpenerTests {
    @Test func theOpenerFitsTheFeelingAndItsStrength() {
        #expect(ReplyPlan(emotion: .sadness, confidence: 0.9).opener(for: "My dog died.") == "Oh, I'm so sorry.")
        #expect(ReplyPlan(emotion: .anger, confidence: 0.6).opener(for: "They cancelled my flight again!") == "Oh, that's frustrating.")
        #expect(ReplyPlan(emotion: .joy, confidence: 0.9).opener(for: "I got the job!") == "Oh, that's wonderful!")
        // Joy read only clearly (it may be a misreading) gets a smaller word; a mild reading of
        // anything only "Oh.".
        #expect(ReplyPlan(emotion: .joy, confidence: 0.6).opener(for: "We moved house.") == "Oh, nice!")
        #expect(ReplyPlan(emotion: .fear, confidence: 0.3).opener(for: "The scan is tomorrow.") == "Oh.")
        #expect(ReplyPlan(emotion: .neutral, confidence: 0.9).opener(for: "I'm going to the library.") == "Oh.")
        #expect(ReplyPlan(emotion: .sadness, confidence: 0.9, isCrisis: true).opener(for: "I want it all to stop.") == "I'm really glad you told me.")
    }

    @Test func noOpenerWhereAFixedOneWouldNotFit() {
        // Urgent care opens with the call for help, and a calm question gets its answer first.
        #expect(ReplyPlan(emotion: .fear, confidence: 0.9, needsUrgentCare: true).opener(for: "My dad collapsed and isn't breathing") == nil)
        #expect(ReplyPlan(emotion: .neutral, confidence: 0.9).opener(for: "What should I cook tonight? ") == nil)
        #expect(ReplyPlan(emotion: .surprise, confidence: 0.3).opener(for: "Is that even possible?") == nil)
        // A feeling read clearly still gets its opener in a question.
        #expect(ReplyPlan(emotion: .sadness, confidence: 0.9).opener(for: "Why does everyone leave me?") == "Oh, I'm so sorry.")
    }

    @Test func everyOpenerIsListedForSynthesisAhead() {
        let plans = EmotionLabel.allCases.flatMap { emotion in
            [0.3, 0.6, 0.9].map { ReplyPlan(emotion: emotion, confidence: $0) }
        } + [ReplyPlan(emotion: .sadness, confidence: 0.9, isCrisis: true)]
        let used = Set(plans.compactMap { $0.opener(for: "Something happened.") })
        #expect(used == Set(ReplyPlan.allOpeners))
    }
}

@Suite struct PromptTests {
    let turns = (1...12).map {
        RememberedTurn(
            userText: "Turn \($0): I talked about my sister's wedding and the long drive there. It was a lot.",
            emotion: $0 % 2 == 0 ? .sadness : .joy, reply: "That sounds like a big day. How did it go?", interrupted: false)
    }

    @Test func recentTurnsAreVerbatimAndOlderOnesSummarisedWithinBudget() {
        var memory = MemorySettings()
        memory.recentTurns = 4
        memory.historyTokens = 400
        memory.summaryTokens = 100
        let builder = PromptBuilder(persona: .companion, memory: memory)
        let messages = builder.messages(
            for: "I feel low today.", plan: ReplyPlan(emotion: .sadness, confidence: 0.8),
            emotion: EmotionContext(current: nil, recent: [.joy, .sadness]), history: turns)
        #expect(messages.first?.role == .system)
        #expect(messages.last == ChatMessage(.user, "I feel low today."))
        let examples = ReplyPlan.allExamples.count
        #expect(examples >= 8)
        let verbatim = messages.filter { $0.role == .user }.count - 1 - examples
        #expect(verbatim == 4)
        #expect(messages.contains { $0.content.hasPrefix("Turn 12:") })
        #expect(!messages.contains { $0.content.hasPrefix("Turn 8:") })
        let system = messages.filter { $0.role == .system }.map(\.content).joined(separator: "\n")
        #expect(system.contains("Earlier in this conversation"))
        #expect(system.contains("Turn 8"))  // the newest older turn made the summary
        #expect(messages[messages.count - 2].content.contains("sad"))  // the plan, right before the message
        // The memory part (summary and recent turns) stays within its budget.
        let historyCost = messages.dropFirst(1 + 2 * examples).dropLast(2).map { PromptBuilder.tokens($0.content) }.reduce(0, +)
        #expect(historyCost <= memory.historyTokens)
    }

    @Test func thePromptStartsTheSameWhateverTheTurn() {
        let builder = PromptBuilder(persona: .companion)
        let sad = builder.messages(
            for: "My dog died.", plan: ReplyPlan(emotion: .sadness, confidence: 0.9),
            emotion: EmotionContext(current: nil, recent: []), history: [])
        let happy = builder.messages(
            for: "I got the job!", plan: ReplyPlan(emotion: .joy, confidence: 0.9),
            emotion: EmotionContext(current: nil, recent: [.sadness, .joy]), history: Array(turns.prefix(2)))
        let stable = 1 + 2 * ReplyPlan.allExamples.count
        #expect(Array(sad.prefix(stable)) == Array(happy.prefix(stable)))
        #expect(sad[sad.count - 2].content != happy[happy.count - 2].content)
    }

    @Test func theModelIsToldToGoOnFromTheOpener() {
        let plan = ReplyPlan(emotion: .sadness, confidence: 0.9)
        let builder = PromptBuilder(persona: .companion)
        let emotion = EmotionContext(current: nil, recent: [])
        let opened = builder.messages(for: "My dog died.", plan: plan, emotion: emotion, history: [], opener: "Oh, I'm so sorry.")
        let plain = builder.messages(for: "My dog died.", plan: plan, emotion: emotion, history: [])
        // The opener is the start of the reply, which the model continues; the manner, in the
        // cached start of every prompt, says how to go on from it.
        #expect(opened.last == ChatMessage(.assistant, "Oh, I'm so sorry."))
        #expect(opened[opened.count - 2] == ChatMessage(.user, "My dog died."))
        #expect(opened[0].content.contains("you have said them out loud: go on from them, and do not say them again"))
        // Nothing else differs, so no per-turn line has to be read before the first token.
        #expect(Array(opened.dropLast()) == plain)
        // A second try replaces the opener with all that was said.
        let again = ReplyPlan.secondTry(opened, said: ["Oh, I'm so sorry.", "That's hard."], to: "My dog died.")
        #expect(again[again.count - 2] == ChatMessage(.assistant, "Oh, I'm so sorry. That's hard."))
        #expect(again[again.count - 3] == ChatMessage(.user, "My dog died."))
    }

    @Test func theNextPromptStartsWithTheContextReadAfterAReply() {
        let builder = PromptBuilder(persona: .companion)
        let history = [
            RememberedTurn(userText: "My sister is visiting next week.", emotion: .fear, reply: "Oh. That's exciting!", interrupted: false),
            RememberedTurn(userText: "The flat is a mess.", emotion: .sadness, reply: "Oh, I hear you. A quick tidy helps.", interrupted: false),
        ]
        let context = builder.context(history: history)
        let next = builder.messages(
            for: "She always notices the dust.", plan: ReplyPlan(emotion: .fear, confidence: 0.8),
            emotion: EmotionContext(current: nil, recent: [.fear, .sadness]), history: history, opener: "Oh, I hear you.")
        // What is read into the cache after the reply is exactly where the next prompt starts,
        // and it ends with the last reply, so only the plan, message and opener are new.
        #expect(Array(next.prefix(context.count)) == context)
        #expect(context.last == ChatMessage(.assistant, "Oh, I hear you. A quick tidy helps."))
        #expect(next.count - context.count == 3)
    }

    @Test func withThePlanInTheStartEachTurnOnlyNamesTheFeeling() {
        let builder = PromptBuilder(persona: .companion)
        let emotion = EmotionContext(current: nil, recent: [])
        func turn(_ plan: ReplyPlan) -> [ChatMessage] { builder.messages(for: "My dog died.", plan: plan, emotion: emotion, history: []) }
        let strongSad = turn(ReplyPlan(emotion: .sadness, confidence: 0.9))
        let clearFear = turn(ReplyPlan(emotion: .fear, confidence: 0.6))
        let mild = turn(ReplyPlan(emotion: .anger, confidence: 0.3))
        let crisis = turn(ReplyPlan(emotion: .sadness, confidence: 0.9, isCrisis: true))
        let urgent = turn(ReplyPlan(emotion: .fear, confidence: 0.9, needsUrgentCare: true))
        // Every turn starts the same, with every treatment in it, and names its case in one line.
        let stable = 1 + 2 * ReplyPlan.allExamples.count
        for messages in [clearFear, mild, crisis, urgent] { #expect(Array(messages.prefix(stable)) == Array(strongSad.prefix(stable))) }
        let start = strongSad[0].content
        #expect(start.contains("- strongly sad: Name the heaviness gently"))
        #expect(start.contains("- sad: Acknowledge that this sounds hard"))
        #expect(start.contains("- afraid or anxious: Acknowledge the worry"))
        #expect(!start.contains("strongly afraid"))  // one treatment for every strength of fear
        #expect(start.contains("- hard to read: respond to what they told you"))
        #expect(start.contains("- as if they may be in crisis"))
        #expect(strongSad[strongSad.count - 2].content == "They sound strongly sad.")
        #expect(clearFear[clearFear.count - 2].content == "They sound afraid or anxious.")
        #expect(mild[mild.count - 2].content == "They sound hard to read.")
        #expect(crisis[crisis.count - 2].content.hasPrefix("They sound as if they may be in crisis"))
        #expect(urgent[urgent.count - 2].content.contains("call the emergency services now"))
        // Each turn's line is far shorter than the plan it stands for.
        let plan = ReplyPlan(emotion: .sadness, confidence: 0.9)
        #expect(PromptBuilder.tokens(plan.feelingLine) * 4 < PromptBuilder.tokens(plan.instructions))
        // Without it, each turn gets its plan's instructions in full, and the start has none.
        let perTurn = PromptBuilder(persona: .companion, planInStart: false).messages(for: "My dog died.", plan: plan, emotion: emotion, history: [])
        #expect(!perTurn[0].content.contains("Treat each case"))
        #expect(perTurn[perTurn.count - 2].content == plan.instructions)
    }

    @Test func anInterruptedTurnIsMentioned() {
        let history = [RememberedTurn(userText: "Tell me a story.", emotion: .neutral, reply: "Once upon a time,", interrupted: true)]
        let messages = PromptBuilder(persona: .interviewer).messages(
            for: "Actually, never mind.", plan: ReplyPlan(emotion: .neutral, confidence: 0.5),
            emotion: EmotionContext(current: nil, recent: []), history: history)
        let guidance = messages[messages.count - 2].content
        #expect(guidance.contains("interrupted"))
        #expect(guidance.contains("Once upon a time,"))
        #expect(messages[0].content.hasPrefix(Persona.interviewer.instructions))
    }

    @Test func aCustomPersonaLoadsFromAFileAndBadOnesAreRefused() throws {
        let directory = URL(fileURLWithPath: TestData.temporaryDirectory())
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let good = directory.appendingPathComponent("coach.json")
        try Data(#"{"id":"coach","name":"Coach","instructions":"You are an upbeat running coach."}"#.utf8).write(to: good)
        #expect(try Persona.load(from: good).id == "coach")
        let bad = directory.appendingPathComponent("bad.json")
        try Data(#"{"id":"","name":"x","instructions":""}"#.utf8).write(to: bad)
        #expect(throws: PersonaError.self) { try Persona.load(from: bad) }
        #expect(throws: PersonaError.self) { try Persona.load(from: directory.appendingPathComponent("missing.json")) }
    }
}
