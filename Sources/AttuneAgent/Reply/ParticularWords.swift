import Foundation

/// The particular things a message is about ("exams", "chemistry", "landlord", "deposit"): its
/// words less function words, feeling words and fillers, each reduced to a rough stem. A reply
/// that mentions none of them has not shown that it heard what was said, which the manner
/// asks for ("Mention the particular thing they told you").
///
/// It is a lexical check on purpose: it asks whether the reply names the thing, not whether
/// it is about it, so it shares nothing with a relevance score.
public struct ParticularWords: Sendable, Equatable {
    public let stems: Set<String>

    public init(_ message: String) {
        stems = Set(Self.words(message).filter { $0.count >= 3 && !Self.ignored.contains($0) }.map(Self.stem)
            .filter { !Self.ignoredStems.contains($0) })
    }

    /// Whether the message names anything in particular.
    public var isEmpty: Bool { stems.isEmpty }

    /// Whether `sentence` mentions one of the message's particular words: the same stem, one stem
    /// the start of the other ("exam", "examination"), or six letters in common at the start
    /// ("pregnant", "pregnancy").
    public func isMentioned(in sentence: String) -> Bool {
        let theirs = stems
        return Self.words(sentence).map(Self.stem).contains { word in
            word.count >= 3 && theirs.contains { Self.related($0, word) }
        }
    }

    static func related(_ a: String, _ b: String) -> Bool {
        if a == b { return true }
        let (short, long) = a.count <= b.count ? (a, b) : (b, a)
        if short.count >= 4, long.hasPrefix(short) { return true }
        return zip(a, b).prefix { $0 == $1 }.count >= 6
    }

    static func words(_ text: String) -> [String] {
        text.lowercased().replacingOccurrences(of: "’", with: "'")
            .split(whereSeparator: { !$0.isLetter && !$0.isNumber && $0 != "'" })
            .map { $0.hasSuffix("'s") ? String($0.dropLast(2)) : String($0) }
    }

    /// A rough stem: a plural, past or progressive ending taken off ("flying" → "fly",
    /// "exams" → "exam", "cancelled" → "cancell").
    static func stem(_ word: String) -> String {
        for suffix in ["ing", "ed", "es", "s", "ly"] where word.hasSuffix(suffix) && word.count - suffix.count >= 3 {
            return String(word.dropLast(suffix.count))
        }
        return word
    }

    /// Function words, fillers and everyday verbs, which say nothing particular.
    static let ignored: Set<String> = [
        "the", "and", "but", "for", "nor", "yet", "not", "too", "very", "just", "really", "kind", "sort", "bit", "lot",
        "all", "any", "some", "every", "each", "both", "this", "that", "these", "those", "there", "here", "then", "than",
        "what", "which", "who", "whom", "whose", "when", "where", "why", "how", "with", "without", "from", "into",
        "onto", "over", "under", "about", "after", "before", "again", "still", "even", "ever", "never", "always",
        "also", "only", "now", "today", "tonight", "yesterday", "tomorrow", "morning", "week", "year", "time",
        "you", "your", "yours", "she", "her", "hers", "him", "his", "its", "they", "them", "their", "our", "ours",
        "myself", "yourself", "i'm", "i've", "i'll", "i'd", "you're", "it's", "that's", "there's", "we're", "they're",
        "can't", "don't", "didn't", "doesn't", "won't", "wasn't", "isn't", "aren't", "couldn't", "wouldn't",
        "was", "were", "are", "been", "being", "have", "has", "had", "having", "does", "did", "doing", "done",
        "can", "could", "would", "should", "will", "shall", "might", "must", "may", "get", "got", "getting",
        "make", "made", "take", "took", "give", "gave", "keep", "kept", "let", "say", "said", "tell", "told",
        "know", "knew", "think", "thought", "feel", "feeling", "felt", "want", "wanted", "need", "like", "look",
        "go", "going", "went", "gone", "come", "came", "coming", "see", "saw", "seen", "put", "thing", "things",
        "something", "anything", "nothing", "everything", "someone", "anyone", "everyone", "nobody", "one",
        "way", "because", "while", "until", "though", "although", "well", "yeah", "yes", "okay", "ugh", "wow",
        "huh", "hmm", "wait", "honestly", "actually", "literally", "basically", "totally", "quite", "pretty",
        "much", "more", "most", "less", "least", "own", "other", "another", "same", "new", "old", "first", "last",
        "next", "out", "off", "down", "around", "back", "away", "enough", "maybe", "probably", "suddenly", "right",
        "lately", "soon", "ago", "already", "almost", "anymore", "anyway",
        // Feelings, which the reply answers but which are not the thing that happened.
        "angry", "furious", "mad", "annoyed", "annoying", "irritated", "irritating", "frustrated", "frustrating",
        "upset", "sad", "unhappy", "down", "low", "blue", "flat", "lonely", "miserable", "heartbroken", "devastated",
        "disappointed", "disappointing", "scared", "afraid", "frightened", "terrified", "nervous", "worried",
        "anxious", "dreading", "panicking", "happy", "glad", "thrilled", "excited", "delighted", "proud", "amazing",
        "great", "good", "bad", "awful", "terrible", "horrible", "gross", "disgusting", "disgusted", "sick",
        "surprised", "shocked", "believe", "crazy", "weird", "strange", "unbelievable", "fine", "nice", "lovely",
    ]
    /// Stems of feeling words, so that "disappoint" in a reply does not count as the thing.
    static let ignoredStems: Set<String> = Set(ignored.map(stem))
}
