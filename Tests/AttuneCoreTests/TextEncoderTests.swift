import AttuneEmotion
import AttuneTestSupport
import Foundation
import Testing

/// The Swift/ggml encoder against `scripts/minilm_reference.py`, a numpy forward pass computed
/// from the original safetensors weights (float64), on the same token ids.
@Suite(.serialized) struct TextEncoderTests {
    static let encoder = try! MiniLMEncoder(model: TestData.models.appendingPathComponent("minilm.gguf"))
    static let tokenizer = try! WordPieceTokenizer(vocabulary: TestData.models.appendingPathComponent("minilm-vocab.txt"))

    static let sentences = [
        "I'm so happy you came to visit!",
        "I'm not happy at all.",
        "This is disgusting, I can't believe they did that.",
        "What?! No way, that's amazing!",
        "I'm scared of what the doctor will say tomorrow.",
        "The meeting is at three o'clock in room 204.",
        "[NAME] left and I miss him so much... 😢",
        "Café résumé naïve unaffable antidisestablishmentarianism",
        "a",
    ]

    @Test func embeddingsMatchAnIndependentNumpyForwardPass() throws {
        let ids = Self.sentences.map { Self.tokenizer.encode($0) }
        let reference = try Self.numpyReference(ids)
        try #require(reference.count == ids.count)
        for (index, tokens) in ids.enumerated() {
            let swift = Self.encoder.embed(tokens)
            #expect(swift.count == 384)
            let cosine = zip(swift, reference[index]).reduce(0.0) { $0 + Double($1.0) * $1.1 }
            #expect(cosine >= 0.999, "\(Self.sentences[index]): cosine \(cosine)")
        }
    }

    @Test func similarSentencesAreCloserThanUnrelatedOnes() {
        let embed = { Self.encoder.embed(Self.tokenizer.encode($0)) }
        let dot = { (a: [Float], b: [Float]) in zip(a, b).reduce(Float(0)) { $0 + $1.0 * $1.1 } }
        let happy = embed("I feel really happy today")
        let glad = embed("Today I am very glad")
        let invoice = embed("Please find the invoice attached")
        #expect(dot(happy, glad) > dot(happy, invoice) + 0.2)
    }

    @Test func aMissingModelIsAClearError() {
        #expect(throws: EncoderError.self) { _ = try MiniLMEncoder(model: URL(fileURLWithPath: "/nonexistent/minilm.gguf")) }
    }

    static func numpyReference(_ ids: [[Int32]]) throws -> [[Double]] {
        let (data, _) = try TestData.runReference(
            "minilm_reference.py", arguments: [TestData.models.appendingPathComponent("minilm.safetensors").path],
            input: try JSONEncoder().encode(ids))
        return try JSONDecoder().decode([[Double]].self, from: data)
    }
}
