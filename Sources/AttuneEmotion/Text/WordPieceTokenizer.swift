import Foundation

public struct TokenizerError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// BERT's uncased WordPiece tokenizer, as all-MiniLM-L6-v2 specifies it (`BertNormalizer` with
/// lowercasing and accent stripping, `BertPreTokenizer`, greedy longest-match WordPiece with
/// `##` continuations and words over 100 characters as `[UNK]`).
public struct WordPieceTokenizer: Sendable {
    private let vocabulary: [String: Int32]
    public let classifier: Int32
    public let separator: Int32
    public let unknown: Int32
    public let padding: Int32
    /// Longest sequence the model takes, special tokens included.
    public let maxLength: Int
    private let maxWordCharacters = 100

    /// - Parameter vocabulary: `vocab.txt`, one token per line, the line number its id.
    public init(vocabulary url: URL, maxLength: Int = 256) throws {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else {
            throw TokenizerError(description: "cannot read the WordPiece vocabulary at \(url.path); run `make setup`")
        }
        var vocabulary: [String: Int32] = [:]
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
            vocabulary[String(line)] = Int32(index)
        }
        guard let cls = vocabulary["[CLS]"], let sep = vocabulary["[SEP]"], let unk = vocabulary["[UNK]"], let pad = vocabulary["[PAD]"] else {
            throw TokenizerError(description: "\(url.path) lacks BERT's special tokens")
        }
        self.vocabulary = vocabulary
        self.classifier = cls
        self.separator = sep
        self.unknown = unk
        self.padding = pad
        self.maxLength = maxLength
    }

    /// Token ids for one text: `[CLS] pieces… [SEP]`, truncated to ``maxLength``.
    public func encode(_ text: String) -> [Int32] {
        var ids = [classifier]
        for word in preTokenize(normalize(text)) {
            ids += wordPieces(word)
            if ids.count >= maxLength - 1 { break }
        }
        return Array(ids.prefix(maxLength - 1)) + [separator]
    }

    /// The pieces as text, for inspection and tests.
    public func tokens(_ text: String) -> [String] {
        let names = Dictionary(uniqueKeysWithValues: vocabulary.map { ($0.value, $0.key) })
        return encode(text).map { names[$0] ?? "?" }
    }

    // MARK: - BertNormalizer

    func normalize(_ text: String) -> String {
        var cleaned = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if scalar.value == 0 || scalar.value == 0xFFFD || isControl(scalar) { continue }
            if isWhitespace(scalar) {
                cleaned.append(" ")
            } else if isChinese(scalar) {
                cleaned.append(" ")
                cleaned.append(scalar)
                cleaned.append(" ")
            } else {
                cleaned.append(scalar)
            }
        }
        // Lowercase, then strip accents: decompose and drop the combining marks.
        let decomposed = String(cleaned).lowercased().decomposedStringWithCanonicalMapping
        return String(String.UnicodeScalarView(decomposed.unicodeScalars.filter { $0.properties.generalCategory != .nonspacingMark }))
    }

    // MARK: - BertPreTokenizer: split on whitespace, and every punctuation mark on its own

    func preTokenize(_ text: String) -> [String] {
        var words: [String] = []
        var current = String.UnicodeScalarView()
        func flush() {
            if !current.isEmpty { words.append(String(current)) }
            current = String.UnicodeScalarView()
        }
        for scalar in text.unicodeScalars {
            if isWhitespace(scalar) {
                flush()
            } else if isPunctuation(scalar) {
                flush()
                words.append(String(scalar))
            } else {
                current.append(scalar)
            }
        }
        flush()
        return words
    }

    // MARK: - WordPiece

    func wordPieces(_ word: String) -> [Int32] {
        let characters = Array(word.unicodeScalars)
        guard characters.count <= maxWordCharacters else { return [unknown] }
        var pieces: [Int32] = []
        var start = 0
        while start < characters.count {
            var end = characters.count
            var found: Int32?
            while start < end {
                var candidate = String(String.UnicodeScalarView(characters[start..<end]))
                if start > 0 { candidate = "##" + candidate }
                if let id = vocabulary[candidate] {
                    found = id
                    break
                }
                end -= 1
            }
            guard let found else { return [unknown] }
            pieces.append(found)
            start = end
        }
        return pieces
    }

    // MARK: - Character classes, as BERT defines them

    private func isWhitespace(_ scalar: Unicode.Scalar) -> Bool {
        scalar == " " || scalar == "\t" || scalar == "\n" || scalar == "\r" || scalar.properties.generalCategory == .spaceSeparator
    }

    private func isControl(_ scalar: Unicode.Scalar) -> Bool {
        if scalar == "\t" || scalar == "\n" || scalar == "\r" { return false }
        switch scalar.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned: return true
        default: return false
        }
    }

    private func isPunctuation(_ scalar: Unicode.Scalar) -> Bool {
        let v = scalar.value
        if (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v) { return true }
        switch scalar.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
            .initialPunctuation, .finalPunctuation, .otherPunctuation:
            return true
        default: return false
        }
    }

    private func isChinese(_ scalar: Unicode.Scalar) -> Bool {
        let ranges: [ClosedRange<UInt32>] = [
            0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F,
            0x2B740...0x2B81F, 0x2B820...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F,
        ]
        return ranges.contains { $0.contains(scalar.value) }
    }
}
