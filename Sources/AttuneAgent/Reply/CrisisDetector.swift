import Foundation

/// Recognises messages that suggest self-harm, suicide or acute danger, so the reply plan can
/// switch to calm support with a pointer to help. It errs towards caution: a false alarm costs
/// one gentle sentence, a miss costs far more.
public enum CrisisDetector {
    /// Lower-cased phrases; a message containing any of them counts.
    static let phrases = [
        "kill myself", "killing myself", "end my life", "ending my life", "end it all", "take my own life",
        "suicide", "suicidal", "want to die", "wanna die", "wish i was dead", "wish i were dead",
        "better off dead", "better off without me", "no reason to live", "don't want to live", "do not want to live",
        "don't want to be alive", "to be alive anymore", "wish i wasn't alive", "rather be dead",
        "don't want to wake up", "hurt myself", "hurting myself", "harm myself", "self harm", "self-harm",
        "cut myself", "cutting myself", "overdose", "can't go on", "cannot go on", "not worth living",
        "going to jump", "no way out",
    ]

    public static func isCrisis(_ text: String) -> Bool {
        let normalized = text.lowercased()
            .replacingOccurrences(of: "’", with: "'")
            .components(separatedBy: .whitespacesAndNewlines).filter { !$0.isEmpty }.joined(separator: " ")
        return phrases.contains { normalized.contains($0) }
    }
}

/// Recognises messages describing a medical emergency or acute danger happening now (chest
/// pain, a stroke's signs, an intruder), so the reply also tells the person to call the
/// emergency services. Like ``CrisisDetector`` it errs towards caution.
public enum UrgentCareDetector {
    /// Lower-cased phrases; a message containing any of them counts.
    static let phrases = [
        "chest pain", "pain in my chest", "crushing pain", "tightness in my chest", "my chest hurts", "heart attack",
        "arm feels numb", "arm is numb", "face is drooping", "slurring", "can't breathe", "cannot breathe",
        "can't feel my", "hit his head", "hit her head", "hit my head", "unconscious", "not breathing", "passed out",
        "seizure", "bleeding a lot", "won't stop bleeding", "swallowed", "poisoned", "allergic reaction",
        "trying to get into my", "breaking in", "broke in", "someone is in my house", "intruder", "being attacked",
        "he's going to hurt me", "she's going to hurt me", "following me right now", "gas leak", "smell gas", "fire in my",
        "not waking up", "won't wake up", "can't wake him", "can't wake her", "unresponsive", "turning blue", "overdose",
    ]

    public static func needsUrgentCare(_ text: String) -> Bool {
        let normalized = text.lowercased()
            .replacingOccurrences(of: "’", with: "'")
            .components(separatedBy: .whitespacesAndNewlines).filter { !$0.isEmpty }.joined(separator: " ")
        return phrases.contains { normalized.contains($0) }
    }
}
