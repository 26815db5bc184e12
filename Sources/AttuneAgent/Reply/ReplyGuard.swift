import AttuneCore
import Foundation

/// Checks each sentence of a reply against the ``ReplyPlan`` before it is spoken, and repairs
/// the ones that contradict the person's feeling.
///
/// A sentence is rejected when it contains one of the plan's forbidden phrases, or when the text
/// emotion model reads it as one of the plan's contradicting emotions with at least
/// `threshold` probability (`joyThreshold` for joy against a painful feeling: the model, trained
/// on GoEmotions where caring and approval count as joy, reads a reassuring sentence such as
/// "It's understandable to feel anxious about results day." as joy at 0.5 to 0.7, and a
/// cheerful one at 0.75 and above). A rejected sentence is replaced by the plan's next repair sentence
/// while none of the model's own sentences has been approved (each repair is used once), and
/// dropped after that. A crisis reply always ends with the help line.
public struct ReplyGuard: Sendable {
    public typealias Judge = @Sendable (String) async -> EmotionEstimate?

    public let plan: ReplyPlan
    public let threshold: Double
    public let joyThreshold: Double
    /// What the person said: a reply sentence that merely repeats it is rejected.
    public var userText = "" {
        didSet {
            particular = ParticularWords(userText)
            theirs = TheirWords(userText)
        }
    }
    /// Their message as the echo, parrot and thanks checks read it, split once per message.
    private var theirs = TheirWords("")
    /// The particular things they told about, which a reply should mention.
    private var particular = ParticularWords("")
    /// Whether one of the model's approved sentences mentions one of them.
    private var mentionedTheirs = false
    /// The words said before the model's (``alreadySaid(_:)``), whose repeat at the start of the
    /// model's first sentence is cut off.
    private var opener: String?
    /// The words of every sentence spoken, so that one saying the same again is rejected.
    private var spokenSentences: [Set<String>] = []
    /// Runs of ``leakWords`` words from the instructions and examples the model was shown: a
    /// sentence that reads them aloud is rejected.
    private var shown: Set<[String]> = []
    public static let leakWords = 6
    private let judge: Judge
    private var repairsUsed = 0
    /// The model's sentences approved so far, and their words.
    private var approved = 0
    private(set) public var approvedWords = 0
    private(set) public var rejected: [String] = []
    private var mentionedHelp = false
    /// The last words spoken, so that a read-out run of words that spans two sentences ("…
    /// wonderful news! How does it feel to …") is caught in the second.
    private var spokenTail: [String] = []

    /// - Parameter judge: the text emotion of a sentence (nil when it cannot be read).
    public init(plan: ReplyPlan, threshold: Double = 0.5, joyThreshold: Double = 0.75, judge: @escaping Judge) {
        self.plan = plan
        self.threshold = threshold
        self.joyThreshold = joyThreshold
        self.judge = judge
    }

    /// Remembers the instructions and examples the model was shown (not the person's words), so
    /// that a sentence repeating them is rejected.
    public mutating func shownToModel(_ texts: [String]) {
        for text in texts {
            let words = Self.words(Self.normalized(text))
            guard words.count >= Self.leakWords else { continue }
            for start in 0...(words.count - Self.leakWords) { shown.insert(Array(words[start..<(start + Self.leakWords)])) }
        }
    }

    /// What to say for `sentence`: itself, a repair, or nothing. A rejected sentence is dropped
    /// once one of the model's own sentences has been approved (that one answers what the person
    /// said; a generic repair after it would not); before that it is replaced by a repair, so the
    /// reply still opens by acknowledging their feeling.
    public mutating func review(_ sentence: String) async -> String? {
        var text = sentence.trimmingCharacters(in: .whitespacesAndNewlines)
        if let opener {
            // Only the model's first sentence can restart the opener.
            self.opener = nil
            text = Self.withoutLeading(opener, in: text)
        }
        guard !text.isEmpty else { return nil }
        let lowered = Self.normalized(text)
        let words = Self.words(lowered)
        // Said already (the opener, or an earlier sentence): nothing is missing, so no repair.
        if isRepeat(words) {
            rejected.append(text)
            return nil
        }
        if await contradicts(text, lowered: lowered, words: words) {
            rejected.append(text)
            guard approved == 0 else { return nil }
            // The next repair that does not say again what was said ("I'm really glad you told
            // me, and I'm here with you." after the opener "I'm really glad you told me.").
            while repairsUsed < plan.repairs.count {
                repairsUsed += 1
                let repair = plan.repairs[repairsUsed - 1]
                let repairWords = Self.words(Self.normalized(repair))
                if !isRepeat(repairWords) { return spoken(repair, words: repairWords) }
            }
            return nil
        }
        approved += 1
        approvedWords += words.count
        if Self.mentionsHelp(text) { mentionedHelp = true }
        if particular.isMentioned(in: text) { mentionedTheirs = true }
        return spoken(text, words: words)
    }

    /// Remembers words spoken before the model's (the plan's opener), so that a sentence of the
    /// model's saying them again is rejected; they are not the model's own.
    /// Outside a crisis the opener acknowledges the feeling, so a rejected sentence of the model's
    /// is dropped from then on, not repaired: a generic repair after it ("Oh, I'm so sorry. That
    /// sounds really hard, and I'm sorry you're going through it.") says nothing of theirs.
    public mutating func alreadySaid(_ text: String) {
        _ = spoken(text, words: Self.words(Self.normalized(text)))
        opener = text
        if !plan.isCrisis { stopRepairing() }
    }

    /// `sentence` without a repeat of the opener at its start: continuing "Oh.", the model
    /// often begins "Oh. That's very…", which comes out of the sentence splitter as one sentence.
    /// The opener's words, or its first word alone when that is an interjection ("Oh", "Okay"),
    /// are cut off as often as they repeat, as long as two words or more are left ("Oh no."
    /// stays).
    static func withoutLeading(_ opener: String, in sentence: String) -> String {
        let openerWords = words(normalized(opener))
        guard let first = openerWords.first else { return sentence }
        var rest = Substring(sentence)
        while true {
            let theirs = words(normalized(String(rest)))
            let repeated = theirs.starts(with: openerWords) ? openerWords.count
                : theirs.first == first && interjections.contains(first) ? 1 : 0
            guard repeated > 0 else { break }
            if theirs.count - repeated < 2 {
                // All of it repeats the opener ("Oh."), or too little would be left to stand alone.
                if theirs.count == repeated { return "" }
                break
            }
            for _ in 0..<repeated {
                rest = rest.drop { !isWordCharacter($0) }
                rest = rest.drop(while: isWordCharacter)
            }
            rest = rest.drop { !$0.isLetter && !$0.isNumber }
        }
        guard rest.startIndex != sentence.startIndex else { return sentence }
        return rest.prefix(1).uppercased() + rest.dropFirst()
    }

    private static func isWordCharacter(_ character: Character) -> Bool {
        character.isLetter || character.isNumber || character == "'" || character == "’"
    }

    /// Remembers a sentence about to be spoken, by its words.
    private mutating func spoken(_ text: String, words: [String]) -> String {
        spokenTail = Array((spokenTail + words).suffix(Self.leakWords - 1))
        spokenSentences.append(Set(words))
        return text
    }

    static func normalized(_ text: String) -> String {
        text.lowercased().replacingOccurrences(of: "’", with: "'")
    }

    /// Whether the reply needs a second try: the guard rejected some of the model's sentences
    /// (most often the one about what happened, turned into advice) and what it let through
    /// is under `minimumWords` words of the model's own ("That's frustrating.", or only a
    /// generic repair), which does not answer what the person said. Never in a crisis: its
    /// support and help line do not depend on the model.
    public func needsSecondTry(minimumWords: Int) -> Bool {
        !plan.isCrisis && !rejected.isEmpty && approvedWords < minimumWords
    }

    /// Whether the reply so far is going nowhere: at least `rejections` (above 0) of the model's
    /// sentences rejected and none approved, so that unless a later sentence is approved it will
    /// need a second try (``needsSecondTry(minimumWords:)``). Never in a crisis.
    public func isGoingNowhere(after rejections: Int) -> Bool {
        rejections > 0 && !plan.isCrisis && approved == 0 && rejected.count >= rejections
    }

    /// Whether none of the model's approved sentences mentions the particular things the person
    /// told about (``ParticularWords``), when they told about any: "That's a big change! Have
    /// you considered what you want to do?" to a team moving to Berlin. Never in a crisis.
    public var mentionsNothingOfTheirs: Bool {
        !plan.isCrisis && !particular.isEmpty && !mentionedTheirs
    }

    /// From now on a rejected sentence is dropped, not repaired: for the second try, after
    /// whatever the first one said.
    public mutating func stopRepairing() {
        repairsUsed = plan.repairs.count
    }

    /// Sentences to add once the model has finished: the crisis help line or the call for
    /// emergency help, when the plan needs one and the reply did not give it.
    public func closing() -> [String] {
        guard !mentionedHelp else { return [] }
        if plan.isCrisis { return [ReplyPlan.crisisHelp] }
        if plan.needsUrgentCare { return [ReplyPlan.urgentHelp] }
        return []
    }

    /// Whether `text` contradicts the plan, narrates instead of talking to the person, refuses,
    /// lectures or blames someone who is hurting, reads out its instructions or examples, echoes
    /// their words, says again what was just said, or thanks them for thanks they did not give.
    public func contradicts(_ text: String) async -> Bool {
        let lowered = Self.normalized(text)
        let words = Self.words(lowered)
        return isRepeat(words) ? true : await contradicts(text, lowered: lowered, words: words)
    }

    /// ``contradicts(_:)`` but for a repeat (``review(_:)`` checks that first), with the sentence
    /// normalised and split into words already.
    private func contradicts(_ text: String, lowered: String, words: [String]) async -> Bool {
        if plan.forbiddenPhrases.contains(where: { lowered.contains($0) }) { return true }
        if lowered.contains("you're welcome"), !theirs.thanked { return true }
        if ReplyPlan.metaPhrases.contains(where: { lowered.contains($0) }) { return true }
        if ReplyPlan.refusalPhrases.contains(where: { lowered.contains($0) }) { return true }
        if plan.emotion.circumplex.valence < 0 || plan.isCrisis,
           ReplyPlan.lecturePhrases.contains(where: { lowered.contains($0) }) { return true }
        // Runs of words read out of the instructions or examples, within this sentence or
        // continuing the last one spoken.
        let continued = spokenTail + words
        if continued.count >= Self.leakWords,
           (0...(continued.count - Self.leakWords)).contains(where: { shown.contains(Array(continued[$0..<($0 + Self.leakWords)])) }) {
            return true
        }
        if words.count >= 3, theirs.phrase.contains(words.joined(separator: " ")) { return true }
        if isParrot(words) { return true }
        guard !plan.contradicting.isEmpty, let estimate = await judge(text) else { return false }
        guard plan.contradicting.contains(estimate.label) else { return false }
        let painful = plan.isCrisis || plan.emotion.circumplex.valence < 0
        return estimate.confidence >= (estimate.label == .joy && painful ? joyThreshold : threshold)
    }

    /// A sentence that says their message back ("You moved the sofa to the other wall in the
    /// living room."): at least `parrotWords` words, of which `parrotShare` or more are theirs
    /// (with "I" and "my" turned into "you" and "your"). A question about it ("What did you
    /// learn from the documentary about octopuses?") shares fewer.
    func isParrot(_ words: [String]) -> Bool {
        guard words.count >= Self.parrotWords else { return false }
        let shared = words.filter(theirs.vocabulary.contains).count
        return Double(shared) >= Self.parrotShare * Double(words.count)
    }

    /// A sentence that says again what an earlier one said ("Oh, that's really upsetting. Oh,
    /// that's very upsetting."): `repeatShare` or more of the two sentences' words in common, or
    /// no word that the earlier one did not have ("I'm sorry." after "Oh, I'm so sorry.").
    func isRepeat(_ words: [String]) -> Bool {
        let these = Set(words)
        guard !these.isEmpty else { return false }
        return spokenSentences.contains { earlier in
            these.isSubset(of: earlier)
                || Double(these.intersection(earlier).count) >= Self.repeatShare * Double(these.union(earlier).count)
        }
    }

    static let interjections: Set<String> = ["oh", "okay", "ok", "ah", "wow", "ugh"]
    public static let repeatShare = 0.6
    public static let parrotWords = 5
    public static let parrotShare = 0.75
    private static let spokenBack = [
        "i": "you", "me": "you", "my": "your", "mine": "yours", "myself": "yourself", "i'm": "you're", "i've": "you've",
        "i'll": "you'll", "i'd": "you'd", "we": "you", "us": "you", "our": "your", "we're": "you're", "am": "are", "was": "were",
    ]

    /// The person's message as the checks read it.
    private struct TheirWords: Sendable {
        /// Their words, lower-cased and joined by single spaces: a sentence whose words run
        /// inside it echoes them.
        let phrase: String
        /// Their words and the same said back ("my" as "your"): what a parrot's sentence is made of.
        let vocabulary: Set<String>
        /// Whether they said thanks, so that "you're welcome" fits.
        let thanked: Bool

        init(_ text: String) {
            phrase = ReplyGuard.words(text.lowercased()).joined(separator: " ")
            let normalized = ReplyGuard.normalized(text)
            let words = ReplyGuard.words(normalized)
            vocabulary = Set(words).union(words.map { ReplyGuard.spokenBack[$0] ?? $0 })
            thanked = normalized.contains("thank")
        }
    }

    static func words(_ text: String) -> [String] {
        text.split(whereSeparator: { !$0.isLetter && !$0.isNumber && $0 != "'" }).map(String.init)
    }

    public static func mentionsHelp(_ text: String) -> Bool {
        // A concrete step: a number to call, or emergency services. "A hotline" without its
        // number is not one (the model said "You can call a suicide hotline" to a crisis).
        let lowered = text.lowercased()
        return ["988", "116 123", "911", "999", "112", "emergency number", "emergency services", "ambulance"].contains { lowered.contains($0) }
    }
}
