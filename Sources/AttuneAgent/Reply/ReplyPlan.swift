import AttuneCore
import Foundation

/// How strongly a feeling shows, from the fused estimate's confidence.
public enum Intensity: String, Codable, Sendable, Comparable {
    case mild, clear, strong

    public init(confidence: Double) {
        self = confidence >= 0.75 ? .strong : confidence >= 0.5 ? .clear : .mild
    }

    public static func < (lhs: Intensity, rhs: Intensity) -> Bool {
        let order: [Intensity] = [.mild, .clear, .strong]
        return order.firstIndex(of: lhs)! < order.firstIndex(of: rhs)!
    }
}

/// What a reply must do for the feeling the person shows, chosen before the model writes a word
/// and enforced afterwards by ``ReplyGuard``. The small local model misreads feelings often, so
/// the plan, not the model, decides how the reply treats them.
public struct ReplyPlan: Sendable, Equatable {
    public let emotion: EmotionLabel
    public let intensity: Intensity
    /// A crisis (self-harm, danger) overrides the emotion: calm support and a pointer to help.
    public let isCrisis: Bool
    /// A medical emergency or danger happening now: the reply must tell them to call for help.
    public let needsUrgentCare: Bool
    /// How to open: what to acknowledge.
    public let acknowledge: String
    /// What the reply must not do.
    public let avoid: [String]
    /// Reply emotions that contradict the person's (judged by the text emotion model). For a
    /// painful feeling only joy: an empathic sentence that names their anger or fear reads as
    /// anger or fear to the model, and a caring question ("How are you coping?") as surprise;
    /// neither is a contradiction.
    public let contradicting: Set<EmotionLabel>
    /// Phrases that betray a misread feeling, rejected whatever the classifier says.
    public let forbiddenPhrases: [String]
    /// Sentences spoken instead of one that the guard rejects, in turn.
    public let repairs: [String]
    /// Example exchanges (message, reply) put before the conversation: a small model imitates
    /// the form of examples far more reliably than it follows descriptions.
    public var examples: [(String, String)] { Self.examples[isCrisis ? nil : emotion] ?? [] }

    /// Every example exchange, in a fixed order: the prompt shows them all, so that its start
    /// stays the same from turn to turn and llama.cpp's prompt cache keeps it.
    public static var allExamples: [(String, String)] {
        ([EmotionLabel.neutral, .joy, .surprise, .sadness, .fear, .anger, .disgust].map(Optional.some) + [nil])
            .flatMap { examples[$0] ?? [] }
    }

    /// Sentences that betray the model narrating or echoing its instructions instead of
    /// talking to the person; rejected whatever the emotion.
    public static let metaPhrases = [
        "the person", "the user", "acknowledge", "start by doing", "do not use", "reply plan", "as an ai",
        "they feel", "they sound", "sounds mildly", "sounds clearly", "sounds strongly", "their tone",
    ]

    /// A small model refuses ordinary messages now and then ("I'm sorry, but I can't assist
    /// with that."); such a sentence is never spoken.
    public static let refusalPhrases = [
        "can't assist", "cannot assist", "not able to assist", "unable to assist", "can't help with that",
        "can't help you with that", "cannot help with that", "i can't provide", "i cannot provide",
        "i'm not able to help with", "language model",
    ]

    /// A small model lectures someone who is hurting ("It's important to be respectful and not
    /// take things personally.") or blames them ("You should have eaten your salad."); such a
    /// sentence is never spoken to a painful feeling.
    public static let lecturePhrases = [
        "it's important to", "it is important to", "it's always best", "it's always good", "you should have",
        "remember that", "remember,", "you need to understand",
    ]

    static let examples: [EmotionLabel?: [(String, String)]] = [
        nil: [("I don't see the point of anything anymore, I just want it all to stop.",
               "Thank you for telling me. That sounds so heavy, and you don't have to carry it by yourself.")],
        .sadness: [("I failed my exam even though I studied for weeks.",
                    "Oh, I'm sorry. After weeks of studying, that's really disappointing. How are you holding up?")],
        .fear: [("I have a job interview tomorrow and I'm so nervous.",
                 "Interviews are nerve-racking, so that's completely understandable. You've prepared, and you can take it one question at a time.")],
        .anger: [("My landlord ignored my emails about the broken heating again!",
                  "That's so frustrating, you've been patient and you deserve a warm home. Have you thought about what you'll do next?")],
        .disgust: [("Someone left rotten food in the office fridge for weeks.",
                    "Ugh, that sounds really unpleasant. Nobody should have to open a fridge like that.")],
        .joy: [("I just passed my driving test!",
                "Congratulations, that's wonderful news! How does it feel to be allowed on the road?")],
        .surprise: [("My sister just turned up at my door from Australia without telling me!",
                     "Wow, what a surprise! How did it feel to see her standing there after such a long trip?")],
        .neutral: [("I'm going to the library this afternoon.",
                    "Nice. Are you looking for any book in particular?")],
    ]

    /// The messages of a second try (``ReplyGuard/needsSecondTry(minimumWords:)``): the first
    /// try's messages, what was said so far, and a note that quotes the person's last message
    /// (without it the model took a few-shot example for what they had said) and asks for the
    /// part that was missing.
    public static func secondTry(_ messages: [ChatMessage], said: [String], to message: String) -> [ChatMessage] {
        var messages = messages
        // The opener the first try went on from is part of what was said.
        if messages.last?.role == .assistant { messages.removeLast() }
        if !said.isEmpty { messages.append(ChatMessage(.assistant, said.joined(separator: " "))) }
        messages.append(ChatMessage(.system, secondTryNote + " Their message: \"\(message)\""))
        return messages
    }

    /// The second try's note, before the quoted message. It asks for a remark or a question
    /// about the thing itself: asked to "show you understood what happened", the model said "I
    /// understand." or told the person's message back to them.
    public static let secondTryNote = """
        Go on with one short sentence to them about the particular thing in their message, in your \
        own words: a warm remark on it or a question about it. No advice, no "it's important", and \
        do not repeat their words or what you said.
        """

    /// A few words spoken the moment the turn ends, before the model has written anything
    /// (`reply.opener`): a short acknowledgement of the feeling, as a person says "Oh, I'm so
    /// sorry." before they have found their words. The model is told it has said them and goes
    /// on from there. On two cores the model's first sentence takes one to two seconds; these
    /// words are synthesised once and kept, so they start at once.
    ///
    /// Nil where a fixed opening would not fit: urgent care (the first words must be the call
    /// for help) and a calm question (an acknowledgement before an answer sounds odd: "Oh. I'm
    /// doing well."). A calm statement, and a mild reading (too often a misreading), get only
    /// "Oh." ("Okay." led the model on to "That's great news!" about anything).
    public func opener(for message: String) -> String? {
        if isCrisis { return Self.crisisOpener }
        if needsUrgentCare { return nil }
        if emotion == .neutral || intensity == .mild {
            return message.trimmingCharacters(in: .whitespacesAndNewlines).hasSuffix("?") ? nil : Self.mildOpener
        }
        if emotion == .joy, intensity == .clear { return Self.clearJoyOpener }
        return Self.openers[emotion]
    }

    /// The openers by feeling (``opener(for:)``); each is a sentence Piper says clearly
    /// ("Mm-hmm." and "Hmm." come out as other words).
    static let openers: [EmotionLabel: String] = [
        .joy: "Oh, that's wonderful!", .surprise: "Oh, wow!", .sadness: "Oh, I'm so sorry.",
        .fear: "Oh, I hear you.", .anger: "Oh, that's frustrating.", .disgust: "Oh, that sounds awful.",
    ]
    static let mildOpener = "Oh."
    static let clearJoyOpener = "Oh, nice!"
    static let crisisOpener = "I'm really glad you told me."

    /// Every opener, for synthesising them ahead.
    public static var allOpeners: [String] {
        EmotionLabel.allCases.compactMap { openers[$0] } + [mildOpener, clearJoyOpener, crisisOpener]
    }

    /// What every urgent-care reply carries.
    public static let urgentHelp =
        "If this is happening right now, please call your local emergency number, such as 911 in the US or 999 or 112 in the UK and Europe, and if you are not safe where you are, get out first if you can."

    /// The help line every crisis reply carries.
    public static let crisisHelp =
        "If you might act on these thoughts or are in danger, please call your local emergency number now, or a crisis line such as 988 in the US or 116 123 in the UK and Ireland."

    public init(emotion: EmotionLabel, confidence: Double, isCrisis: Bool = false, needsUrgentCare: Bool = false) {
        self.emotion = emotion
        self.intensity = Intensity(confidence: confidence)
        self.isCrisis = isCrisis
        self.needsUrgentCare = needsUrgentCare
        let cheerful = ["that's great", "that is great", "awesome", "congratulations", "how exciting", "sounds fun", "glad to hear", "good for you", "yay", "fantastic", "wonderful"]
        let dismissive = ["calm down", "cheer up", "don't worry", "look on the bright side", "it could be worse", "just relax", "get over it"]
        if isCrisis {
            acknowledge = "Say calmly that you are glad they told you and that they deserve support right now."
            avoid = ["cheerfulness", "advice lists", "judging", "promising that everything will be fine"]
            contradicting = [.joy]
            forbiddenPhrases = cheerful + dismissive
            repairs = ["I'm really glad you told me, and I'm here with you.", "You deserve support right now, and you don't have to face this by yourself."]
            return
        }
        switch emotion {
        case .sadness:
            acknowledge = intensity == .strong
                ? "Name the heaviness gently and stay with it; do not hurry to fix anything."
                : "Acknowledge that this sounds hard, warmly and simply."
            avoid = ["cheerfulness", "silver linings", "telling them how to feel"]
            contradicting = [.joy]
            forbiddenPhrases = cheerful + dismissive
            repairs = ["That sounds really hard, and I'm sorry you're going through it.", "I'm here, and I'm listening."]
        case .fear:
            acknowledge = "Acknowledge the worry as understandable and offer steady, grounding reassurance."
            avoid = ["cheerfulness", "dismissing the worry", "adding new worries"]
            contradicting = [.joy]
            forbiddenPhrases = cheerful + ["calm down", "nothing to worry about", "don't be silly", "just relax"]
            repairs = ["That sounds frightening, and it makes sense that you feel uneasy.", "Let's take this one step at a time; you're not alone with it."]
        case .anger:
            acknowledge = intensity == .strong
                ? "Validate the frustration first; show you understand why it matters to them."
                : "Acknowledge the frustration plainly."
            avoid = ["cheerfulness", "telling them to calm down", "taking sides against them", "matching their anger"]
            contradicting = [.joy]
            forbiddenPhrases = cheerful + dismissive
            repairs = ["That sounds really frustrating, and it makes sense that you're upset.", "You have every reason to want this put right."]
        case .disgust:
            acknowledge = "Acknowledge that it felt wrong or repellent to them, without adding judgement of your own."
            avoid = ["cheerfulness", "arguing", "graphic detail"]
            contradicting = [.joy]
            forbiddenPhrases = cheerful
            repairs = ["That sounds really unpleasant to deal with.", "I can see why that put you off."]
        case .joy:
            acknowledge = "Share the good feeling warmly and ask about it."
            avoid = ["dampening the mood", "warnings", "changing the subject to problems"]
            // Cheering someone who is hurting is the worst mistake a reply can make; sympathy for
            // good news is a small one. So sympathy is overruled only when the joy is certain:
            // the text model reads "my mum has a scan tomorrow to check if the cancer is back" as
            // joy at 0.31, and the model's own sympathetic reply is then the right one.
            contradicting = intensity == .strong ? [.sadness, .anger, .disgust, .fear] : []
            forbiddenPhrases = intensity == .strong ? ["i'm sorry to hear", "that's terrible", "that sounds hard", "unfortunately"] : []
            repairs = ["That's lovely to hear!", "I'm really happy for you."]
        case .surprise:
            acknowledge = "Acknowledge that this was unexpected and be curious about it."
            avoid = ["assuming whether the surprise is good or bad"]
            contradicting = [.anger, .disgust]
            forbiddenPhrases = []
            repairs = ["That sounds unexpected!", "Tell me more about what happened."]
        case .neutral:
            acknowledge = "Respond naturally to what they said."
            avoid = ["inventing feelings they did not express"]
            contradicting = [.anger, .disgust]
            forbiddenPhrases = []
            repairs = ["I see.", "Tell me more."]
        }
    }

    /// Instructions for the system prompt, addressed to the model.
    public var instructions: String {
        var lines: [String] = []
        if isCrisis {
            lines.append("You are talking with someone who may be in crisis or thinking about harming themselves. Stay calm, warm and serious.")
        } else if emotion != .neutral, intensity != .mild {
            // A mild reading is too often a misreading to tell the model about.
            lines.append("You are talking with someone who feels \(Self.adjective(emotion))\(intensity == .strong ? ", strongly" : "").")
        }
        if needsUrgentCare { lines.append(Self.urgentCareLine) }
        if intensity == .mild, !isCrisis {
            // Nor its treatment: "share the good feeling" about a feared scan misread as joy.
            lines.append("In your reply: \(Self.unclearTreatment)")
            lines.append(Self.avoidLine(Self.unclearAvoid))
        } else {
            lines.append("In your reply: \(acknowledge)")
            lines.append(Self.avoidLine(avoid))
        }
        return lines.joined(separator: "\n")
    }

    /// The one line a turn gets when every feeling's treatment is in the prompt's cached start
    /// (``guide``): how they sound, in the guide's words, plus the call for help when needed.
    public var feelingLine: String {
        let named = isCrisis ? Self.crisisCase : intensity == .mild ? Self.unclearCase : Self.guideCase(emotion, intensity)
        let line = "They sound \(named)."
        return needsUrgentCare ? line + "\n" + Self.urgentCareLine : line
    }

    /// How to treat every feeling, for the prompt's stable start (`reply.plan_in_start`): the
    /// same acknowledgements and things to avoid as ``instructions``, one line per case, named as
    /// ``feelingLine`` names them. Read once into llama-server's cache, it spares each turn the
    /// plan's 35-45 tokens (on two cores, more than half a second before the first token).
    /// Built once: every prompt starts with it.
    public static let guide: String = {
        var lines = ["Before each message you are told how they sound. Treat each case like this:"]
        let crisis = ReplyPlan(emotion: .sadness, confidence: 1, isCrisis: true)
        lines.append("- \(crisisCase): stay calm, warm and serious. \(crisis.acknowledge) \(avoidLine(crisis.avoid))")
        for emotion in [EmotionLabel.sadness, .fear, .anger, .disgust, .joy, .surprise, .neutral] {
            let clear = ReplyPlan(emotion: emotion, confidence: 0.6), strong = ReplyPlan(emotion: emotion, confidence: 0.9)
            for plan in clear.acknowledge == strong.acknowledge ? [clear] : [clear, strong] {
                lines.append("- \(guideCase(emotion, plan.intensity)): \(plan.acknowledge) \(avoidLine(plan.avoid))")
            }
        }
        lines.append("- \(unclearCase): \(unclearTreatment) \(avoidLine(unclearAvoid))")
        return lines.joined(separator: "\n")
    }()

    static let crisisCase = "as if they may be in crisis or thinking about harming themselves"
    static let unclearCase = "hard to read"
    /// A mild reading's treatment: not told the feeling, which is too often a misreading.
    static let unclearTreatment = "respond to what they told you, in a way that fits how it would feel."
    static let unclearAvoid = ["inventing feelings they did not express"]
    static let urgentCareLine = "What they describe may be an emergency: tell them to call the emergency services now."

    /// "Avoid cheerfulness, silver linings, telling them how to feel."
    static func avoidLine(_ things: [String]) -> String { "Avoid \(things.joined(separator: ", "))." }

    /// "sad", "strongly sad", "calm": a case of the ``guide``.
    static func guideCase(_ emotion: EmotionLabel, _ intensity: Intensity) -> String {
        (intensity == .strong && emotion != .neutral ? "strongly " : "") + adjective(emotion)
    }

    static func adjective(_ emotion: EmotionLabel) -> String {
        switch emotion {
        case .anger: "angry"
        case .disgust: "disgusted"
        case .fear: "afraid or anxious"
        case .joy: "happy"
        case .neutral: "calm"
        case .sadness: "sad"
        case .surprise: "surprised"
        }
    }
}
