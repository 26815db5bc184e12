import Foundation

/// Cuts streamed reply text into sentences as the pieces arrive, so each can be spoken while
/// the model is still writing the next.
///
/// A sentence ends at `.`, `!`, `?` or `…` (with any closing quotes or brackets) once the next
/// character shows it was not an abbreviation or a decimal point: whitespace after the mark. A
/// line break also ends one. Fragments shorter than `minimumCharacters` wait for more text.
public struct SentenceStream: Sendable {
    public var minimumCharacters = 12
    private var buffer = ""

    public init(minimumCharacters: Int = 12) {
        self.minimumCharacters = minimumCharacters
    }

    /// Adds a piece of text; returns the sentences it completed.
    public mutating func append(_ piece: String) -> [String] {
        buffer += piece
        var sentences: [String] = []
        while let end = nextBoundary() {
            let sentence = String(buffer[..<end]).trimmingCharacters(in: .whitespacesAndNewlines)
            buffer = String(buffer[end...])
            if !sentence.isEmpty { sentences.append(sentence) }
        }
        return sentences
    }

    /// The text still held when the stream ends.
    public mutating func finish() -> String? {
        let rest = buffer.trimmingCharacters(in: .whitespacesAndNewlines)
        buffer = ""
        return rest.isEmpty ? nil : rest
    }

    private static let abbreviations: Set<String> = ["mr", "mrs", "ms", "dr", "prof", "st", "vs", "etc", "e.g", "i.e"]

    private func nextBoundary() -> String.Index? {
        var index = buffer.startIndex
        while index < buffer.endIndex {
            let character = buffer[index]
            if character.isNewline {
                let candidate = buffer.index(after: index)
                if buffer[..<index].trimmingCharacters(in: .whitespaces).count >= minimumCharacters { return candidate }
            } else if ".!?…".contains(character) {
                var end = buffer.index(after: index)
                while end < buffer.endIndex, ".!?…\"'”’)]".contains(buffer[end]) { end = buffer.index(after: end) }
                guard end < buffer.endIndex else { return nil }  // wait: the next piece may continue it
                if buffer[end].isWhitespace, buffer[..<end].count >= minimumCharacters, !endsWithAbbreviation(before: index) {
                    return end
                }
                index = end
                continue
            }
            index = buffer.index(after: index)
        }
        return nil
    }

    private func endsWithAbbreviation(before mark: String.Index) -> Bool {
        guard buffer[mark] == "." else { return false }
        let word = buffer[..<mark].split(whereSeparator: { $0.isWhitespace }).last.map { $0.lowercased() } ?? ""
        return Self.abbreviations.contains(word)
    }
}
