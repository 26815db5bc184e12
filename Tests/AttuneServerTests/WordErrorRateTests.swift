import AttuneBench
import Testing

struct WordErrorRateTests {
    @Test func contractionsPunctuationAndNumbersAreNotErrors() {
        #expect(WordErrorRate.errors(reference: "They're excited, sweetie.", hypothesis: "They are excited sweetie").errors == 0)
        #expect(WordErrorRate.errors(reference: "I can't, I won't!", hypothesis: "i can not i will not").errors == 0)
        #expect(WordErrorRate.errors(reference: "We'll see 42 dogs", hypothesis: "we will see forty two dogs").errors == 0)
    }

    @Test func realDifferencesAreCounted() {
        let result = WordErrorRate.errors(reference: "They're excited, sweetie.", hypothesis: "They are excited, Tweedy.")
        #expect(result.errors == 1 && result.words == 4)
        #expect(WordErrorRate.errors(reference: "kids are talking", hypothesis: "").errors == 3)
    }
}
