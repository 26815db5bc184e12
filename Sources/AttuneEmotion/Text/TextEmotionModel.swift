import AttuneCore
import Foundation

/// The trained classification head, written by `scripts/train_emotion_head.py` to
/// `Resources/emotion-head.json`: an MLP on the sentence embedding plus a linear layer on the
/// presence of frequent WordPiece tokens, their logits added before the softmax.
public struct EmotionHead: Sendable {
    /// A weight matrix stored as little-endian float16, base64-encoded, row by row.
    struct Matrix: Decodable, Sendable {
        let rows: [[Float]]

        enum CodingKeys: String, CodingKey { case shape, f16 }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            let shape = try container.decode([Int].self, forKey: .shape)
            guard shape.count == 2, let data = Data(base64Encoded: try container.decode(String.self, forKey: .f16)),
                data.count == shape[0] * shape[1] * 2
            else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "bad float16 matrix"))
            }
            let values: [Float] = data.withUnsafeBytes { bytes in
                (0..<(data.count / 2)).map { Float(Float16(bitPattern: UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)))) }
            }
            rows = (0..<shape[0]).map { Array(values[($0 * shape[1])..<(($0 + 1) * shape[1])]) }
        }
    }

    struct Layer: Decodable, Sendable {
        let weight: Matrix  // [outputs][inputs]
        let bias: [Float]
        let activation: String
    }

    struct Lexical: Decodable, Sendable {
        /// WordPiece ids, and adjacent pairs coded as `first << 20 + second`.
        let tokens: [Int64]
        let weight: Matrix  // [term][class]
    }

    struct File: Decodable {
        let labels: [String]
        let features: [PooledFeature]?
        let layers: [Layer]
        let lexical: Lexical?
    }

    let labels: [EmotionLabel]
    /// The encoder's pooled hidden states the head reads, in order.
    public let features: [PooledFeature]
    let layers: [Layer]
    /// Row of each lexical term's weights, by term.
    let lexicalRows: [Int64: [Float]]
    /// [PAD], [UNK], [CLS], [SEP], [MASK]: not lexical terms.
    static let special: Set<Int32> = [0, 100, 101, 102, 103]

    public init(contentsOf url: URL) throws {
        let file = try JSONDecoder().decode(File.self, from: Data(contentsOf: url))
        labels = try file.labels.map { name in
            guard let label = EmotionLabel(normalizing: name) else { throw EncoderError(description: "unknown label \(name) in \(url.path)") }
            return label
        }
        features = file.features ?? [.sentenceEmbedding]
        layers = file.layers
        lexicalRows = Dictionary(uniqueKeysWithValues: zip(file.lexical?.tokens ?? [], file.lexical?.weight.rows ?? []))
    }

    /// The head shipped with Attune.
    public static func bundled() throws -> EmotionHead {
        guard let url = Bundle.module.url(forResource: "emotion-head", withExtension: "json") else {
            throw EncoderError(description: "emotion-head.json is missing from the AttuneEmotion bundle")
        }
        return try EmotionHead(contentsOf: url)
    }

    /// Class probabilities for one sentence: its pooled ``features`` and its token ids.
    public func probabilities(_ pooled: [Float], tokens: [Int32]) -> [EmotionLabel: Double] {
        var x = pooled
        for layer in layers {
            var out = layer.bias
            for row in 0..<out.count {
                var sum: Float = 0
                let weights = layer.weight.rows[row]
                for column in 0..<x.count { sum += weights[column] * x[column] }
                out[row] += sum
            }
            x = layer.activation == "relu" ? out.map { max($0, 0) } : out
        }
        // Lexical part: each known term counts once, the presence vector L2-normalised.
        let words = tokens.filter { !Self.special.contains($0) }.map(Int64.init)
        let terms = words + zip(words, words.dropFirst()).map { $0 << 20 + $1 }
        let present = Set(terms).compactMap { lexicalRows[$0] }
        if !present.isEmpty {
            let scale = 1 / Float(present.count).squareRoot()
            for row in present {
                for index in x.indices { x[index] += scale * row[index] }
            }
        }
        let top = x.max() ?? 0
        let exps = x.map { exp($0 - top) }
        let total = exps.reduce(0, +)
        return Dictionary(uniqueKeysWithValues: zip(labels, exps.map { Double($0 / total) }))
    }
}

/// Why text could not be read for emotion.
public struct TextEmotionError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// Emotion in words: tokenizer, MiniLM encoder and the trained head. A text that fits the
/// encoder comfortably is read whole, as the head was trained; a longer one is split into
/// sentences whose estimates are combined by their length.
public struct TextEmotionModel: Sendable {
    public let tokenizer: WordPieceTokenizer
    public let encoder: MiniLMEncoder
    public let head: EmotionHead
    /// Longest text accepted, in UTF-8 bytes.
    public var maxBytes: Int
    /// Threads per sentence encoding.
    public var threads: Int

    public init(models: URL, maxBytes: Int = 20_000, threads: Int = 1) throws {
        tokenizer = try WordPieceTokenizer(vocabulary: models.appendingPathComponent("minilm-vocab.txt"))
        encoder = try MiniLMEncoder(model: models.appendingPathComponent("minilm.gguf"))
        head = try EmotionHead.bundled()
        self.maxBytes = maxBytes
        self.threads = threads
    }

    /// The estimate for `text` (blocking: call it off the cooperative pool).
    public func estimate(_ text: String, subject: String, time: Double = Date().timeIntervalSince1970) throws -> EmotionEstimate {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw TextEmotionError(description: "text is empty") }
        guard trimmed.utf8.count <= maxBytes else {
            throw TextEmotionError(description: "text is \(trimmed.utf8.count) bytes; the limit is \(maxBytes) (setting emotion.max_text_bytes)")
        }
        let whole = tokenizer.encode(trimmed)
        let parts = whole.count <= Self.wholeTextTokens ? [trimmed] : Self.sentences(trimmed)
        var combined = [EmotionLabel: Double]()
        var totalWeight = 0.0
        for sentence in parts {
            let ids = parts.count == 1 ? whole : tokenizer.encode(sentence)
            let weight = Double(ids.count - 2).squareRoot()  // longer sentences count more, but not linearly
            guard weight > 0 else { continue }
            for (label, probability) in head.probabilities(encoder.features(ids, pooling: head.features, threads: threads), tokens: ids) {
                combined[label, default: 0] += weight * probability
            }
            totalWeight += weight
        }
        guard totalWeight > 0 else { throw TextEmotionError(description: "text has no words to read") }
        return EmotionEstimate(scores: combined, channel: .text, subject: subject, time: time)
    }

    /// Texts up to this many tokens are read in one pass.
    static let wholeTextTokens = 128

    /// Splits text after `.`, `!`, `?` (runs of them) and line breaks.
    static func sentences(_ text: String) -> [String] {
        var sentences: [String] = []
        var current = ""
        var previousWasEnd = false
        for character in text {
            let isEnd = character == "." || character == "!" || character == "?" || character == "…"
            if character.isNewline || (previousWasEnd && !isEnd && character.isWhitespace) {
                let sentence = current.trimmingCharacters(in: .whitespaces)
                if !sentence.isEmpty { sentences.append(sentence) }
                current = ""
                previousWasEnd = false
                continue
            }
            current.append(character)
            previousWasEnd = isEnd
        }
        let last = current.trimmingCharacters(in: .whitespaces)
        if !last.isEmpty { sentences.append(last) }
        return sentences
    }
}
