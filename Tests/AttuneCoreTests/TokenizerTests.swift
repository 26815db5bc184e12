import AttuneEmotion
import AttuneTestSupport
import Foundation
import Testing

/// Expected ids are what Hugging Face `tokenizers` gives with all-MiniLM-L6-v2's own
/// tokenizer.json (`Tokenizer.from_file(...).encode(text).ids`, padding removed).
@Suite struct WordPieceTokenizerTests {
    let tokenizer = try! WordPieceTokenizer(vocabulary: TestData.models.appendingPathComponent("minilm-vocab.txt"))

    @Test(arguments: [
        ("Hello, world!", [101, 7592, 1010, 2088, 999, 102]),
        ("I'm NOT happy at all...", [101, 1045, 1005, 1049, 2025, 3407, 2012, 2035, 1012, 1012, 1012, 102]),
        ("Café résumé naïve", [101, 7668, 13746, 15743, 102]),
        ("unaffable antidisestablishmentarianism", [101, 14477, 20961, 3468, 3424, 10521, 4355, 7875, 13602, 3672, 12199, 2964, 102]),
        ("[NAME] said: 我爱你 😂😂", [101, 1031, 2171, 1033, 2056, 1024, 1855, 100, 100, 100, 102]),
        (String(repeating: "a", count: 120), [101, 100, 102]),
        ("tab\tnew\nline\u{0}ctrl", [101, 21628, 2047, 2240, 6593, 12190, 102]),
        ("don't you dare!!! $100 & 50%", [101, 2123, 1005, 1056, 2017, 8108, 999, 999, 999, 1002, 2531, 1004, 2753, 1003, 102]),
    ])
    func matchesBertsUncasedTokenizer(text: String, expected: [Int32]) {
        #expect(tokenizer.encode(text) == expected)
    }

    @Test func emptyTextIsJustTheSpecialTokens() {
        #expect(tokenizer.encode("") == [tokenizer.classifier, tokenizer.separator])
        #expect(tokenizer.encode(" \n\t ") == [tokenizer.classifier, tokenizer.separator])
    }

    @Test func longTextIsTruncatedToTheModelsLength() {
        let ids = tokenizer.encode(String(repeating: "happy days ", count: 500))
        #expect(ids.count == 256)
        #expect(ids.first == tokenizer.classifier && ids.last == tokenizer.separator)
    }

    @Test func aMissingVocabularyIsAClearError() {
        #expect(throws: TokenizerError.self) { _ = try WordPieceTokenizer(vocabulary: URL(fileURLWithPath: "/nonexistent/vocab.txt")) }
    }
}
