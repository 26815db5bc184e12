import Foundation

/// Whether a transcript stops where a spoken sentence cannot end: on an article, a possessive,
/// a conjunction, an auxiliary verb or a preposition that needs what follows ("Kids are",
/// "talking by the", "and my", "I was going to"), on a filler ("um"), or on Whisper's marks of
/// a sentence left open (a trailing comma, dash or ellipsis).
///
/// It reads words, not sound, so it cannot tell "Kids are talking" (a sentence) from the same
/// words before "by the door"; what it catches is the pause that sound alone takes for an end.
/// The lists leave out words that often do end a spoken sentence: particles ("come in", "what
/// for", "where are you from"), pronouns ("so do I"), "is" ("it is what it is"), "do", "did",
/// "can", "will" ("yes, I did"), "so", "that", "though".
public enum SentenceEnding {
    /// Words after which a spoken sentence goes on.
    public static let openWords: Set<String> = [
        // articles and possessive determiners
        "a", "an", "the", "my", "your", "our", "their",
        // conjunctions
        "and", "but", "or", "nor", "because", "cause", "if", "although", "unless", "whereas", "whether",
        // auxiliaries and the copula after a subject, waiting for their verb or complement
        "are", "was", "were", "am", "been", "would", "could", "should", "might", "must", "shall",
        // prepositions that are not also particles
        "of", "to", "by", "at", "into", "onto", "than", "towards", "toward", "during", "among", "between",
        // fillers
        "um", "uh", "er", "erm", "uhm",
    ]

    /// Whether `transcript` stops on an open word or an open mark; false for an empty transcript
    /// and for one ending in "." "?" "!" after a word that may end a sentence.
    public static func seemsUnfinished(_ transcript: String) -> Bool {
        let trimmed = transcript.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let last = trimmed.last else { return false }
        if last == "," || last == "-" || last == "\u{2014}" || last == "\u{2026}" || trimmed.hasSuffix("..") { return true }
        if last == "?" || last == "!" { return false }
        let lastWord = trimmed.lowercased().split { !($0.isLetter || $0 == "'") }.last.map(String.init) ?? ""
        return openWords.contains(lastWord)
    }
}
