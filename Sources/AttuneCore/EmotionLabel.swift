import Foundation

/// The seven emotion classes that every channel (text, voice, face) reports in.
public enum EmotionLabel: String, CaseIterable, Codable, Sendable {
    case anger, disgust, fear, joy, neutral, sadness, surprise

    /// Maps the names other data sets and models use onto this vocabulary, in one place.
    /// Returns nil for names that have no counterpart here.
    public init?(normalizing name: String) {
        let key = name.lowercased().trimmingCharacters(in: .whitespacesAndNewlines)
        if let label = EmotionLabel(rawValue: key) {
            self = label
        } else if let label = Self.aliases[key] {
            self = label
        } else {
            return nil
        }
    }

    private static let aliases: [String: EmotionLabel] = [
        "angry": .anger, "annoyed": .anger, "mad": .anger,
        "disgusted": .disgust, "contempt": .disgust,
        "fearful": .fear, "afraid": .fear, "scared": .fear, "anxious": .fear, "nervous": .fear,
        "happy": .joy, "happiness": .joy, "joyful": .joy,
        "calm": .neutral, "neutrality": .neutral,
        "sad": .sadness, "unhappy": .sadness,
        "surprised": .surprise,
    ]
}
