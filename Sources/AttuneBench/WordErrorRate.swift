import Foundation

/// Word error rate with the usual normalisation: case folded, punctuation removed, common
/// contractions expanded ("they're" and "they are" are the same words), digits spelled out,
/// whitespace collapsed.
public enum WordErrorRate {
    /// Word-level edit distance between reference and hypothesis, and the reference length.
    public static func errors(reference: String, hypothesis: String) -> (errors: Int, words: Int) {
        let ref = normalize(reference)
        let hyp = normalize(hypothesis)
        guard !ref.isEmpty else { return (hyp.count, 0) }
        var previous = Array(0...hyp.count)
        for (i, word) in ref.enumerated() {
            var current = [i + 1] + [Int](repeating: 0, count: hyp.count)
            for (j, other) in hyp.enumerated() {
                current[j + 1] = min(previous[j + 1] + 1, current[j] + 1, previous[j] + (word == other ? 0 : 1))
            }
            previous = current
        }
        return (previous[hyp.count], ref.count)
    }

    public static func normalize(_ text: String) -> [String] {
        var cleaned = ""
        for character in text.lowercased() {
            if character.isLetter || character.isNumber || character == "'" {
                cleaned.append(character)
            } else {
                cleaned.append(" ")
            }
        }
        return cleaned.split(separator: " ").flatMap { token -> [String] in
            if let expanded = expand(String(token)) { return expanded }
            let word = token.replacingOccurrences(of: "'", with: "")
            if let number = Int(word) { return spell(number) }
            return word.isEmpty ? [] : [word]
        }
    }

    /// Contractions whose expansion is unambiguous ("'s" and "'d" are not: is/has, had/would).
    private static let contractions: [String: [String]] = [
        "won't": ["will", "not"], "can't": ["can", "not"], "shan't": ["shall", "not"], "i'm": ["i", "am"],
    ]
    private static let suffixes: [(String, String)] = [("n't", "not"), ("'re", "are"), ("'ll", "will"), ("'ve", "have")]

    private static func expand(_ token: String) -> [String]? {
        if let words = contractions[token] { return words }
        for (suffix, word) in suffixes where token.hasSuffix(suffix) && token.count > suffix.count {
            return [String(token.dropLast(suffix.count)), word]
        }
        return nil
    }

    private static let ones = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                               "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
    private static let tens = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]

    /// English words for 0 ... 999,999; larger numbers digit by digit.
    static func spell(_ number: Int) -> [String] {
        switch number {
        case 0..<20: return [ones[number]]
        case 20..<100: return [tens[number / 10]] + (number % 10 == 0 ? [] : [ones[number % 10]])
        case 100..<1_000: return [ones[number / 100], "hundred"] + (number % 100 == 0 ? [] : spell(number % 100))
        case 1_000..<1_000_000: return spell(number / 1_000) + ["thousand"] + (number % 1_000 == 0 ? [] : spell(number % 1_000))
        default: return String(number).compactMap { $0.wholeNumberValue.map { ones[$0] } }
        }
    }
}
