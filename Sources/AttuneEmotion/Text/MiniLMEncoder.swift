import CWhisper
import Foundation

public struct EncoderError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// Which hidden states of the encoder to pool, and how.
public struct PooledFeature: Codable, Hashable, Sendable, CustomStringConvertible {
    public enum Pooling: String, Sendable {
        /// The average over all tokens, `[CLS]` and `[SEP]` included.
        case mean
        /// The largest value of each feature over the tokens.
        case max
        /// The `[CLS]` token's state.
        case first
    }

    /// 0 is the embedding layer's output, 1...6 the transformer layers'.
    public var layer: Int
    public var pooling: Pooling

    public init(layer: Int, pooling: Pooling) {
        self.layer = layer
        self.pooling = pooling
    }

    /// The model's own sentence embedding: the last layer's mean.
    public static let sentenceEmbedding = PooledFeature(layer: 6, pooling: .mean)

    /// Written `LAYER:POOLING`, e.g. `6:mean`.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: ":")
        guard parts.count == 2, let layer = Int(parts[0]), let pooling = Pooling(rawValue: String(parts[1])) else { return nil }
        self.init(layer: layer, pooling: pooling)
    }

    public var description: String { "\(layer):\(pooling.rawValue)" }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let feature = PooledFeature(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "'\(text)' is not LAYER:POOLING"))
        }
        self = feature
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// all-MiniLM-L6-v2, a 6-layer BERT, run on ggml from the GGUF file setup writes. It turns token
/// ids into a sentence embedding: mean pooling over the tokens, then L2 normalisation, as the
/// model's sentence-transformers modules specify.
///
/// `@unchecked Sendable`: after loading, the weights' ggml context is only read; every
/// ``features(_:pooling:threads:)`` call builds and frees its own compute context, so calls may run
/// concurrently on different threads.
public final class MiniLMEncoder: @unchecked Sendable {
    public let dimension: Int
    public let layers: Int
    public let heads: Int
    public let maxPositions: Int
    private let epsilon: Float
    private let weights: OpaquePointer
    private let file: OpaquePointer

    public init(model url: URL) throws {
        guard FileManager.default.isReadableFile(atPath: url.path) else {
            throw EncoderError(description: "text encoder not found at \(url.path); run `make setup`")
        }
        var context: OpaquePointer?
        let loaded = withUnsafeMutablePointer(to: &context) { pointer in
            gguf_init_from_file(url.path, gguf_init_params(no_alloc: false, ctx: pointer))
        }
        guard let loaded, let context else {
            throw EncoderError(description: "ggml could not read the GGUF file \(url.path)")
        }
        func number(_ key: String) throws -> Int {
            let id = gguf_find_key(loaded, key)
            guard id >= 0 else { throw EncoderError(description: "\(url.path) lacks \(key)") }
            return Int(gguf_get_val_u32(loaded, id))
        }
        file = loaded
        weights = context
        dimension = try number("bert.embedding_length")
        layers = try number("bert.block_count")
        heads = try number("bert.attention.head_count")
        maxPositions = try number("bert.context_length")
        let epsilonKey = gguf_find_key(loaded, "bert.attention.layer_norm_epsilon")
        epsilon = epsilonKey >= 0 ? gguf_get_val_f32(loaded, epsilonKey) : 1e-12
        for name in ["embeddings.word_embeddings.weight", "encoder.layer.\(layers - 1).output.dense.weight"] {
            guard ggml_get_tensor(weights, name) != nil else { throw EncoderError(description: "\(url.path) lacks \(name)") }
        }
    }

    deinit {
        ggml_free(weights)
        gguf_free(file)
    }

    /// The normalised sentence embedding of `ids` (with `[CLS]` and `[SEP]`).
    public func embed(_ ids: [Int32], threads: Int = 2) -> [Float] {
        features(ids, pooling: [.sentenceEmbedding], threads: threads)
    }

    /// Pooled hidden states of `ids`, one unit-length block of `dimension` values per entry of
    /// `pooling`, concatenated in that order. One forward pass serves all of them.
    public func features(_ ids: [Int32], pooling: [PooledFeature], threads: Int = 2) -> [Float] {
        let count = min(ids.count, maxPositions)
        let empty = [Float](repeating: 0, count: dimension * pooling.count)
        guard count > 0 else { return empty }
        // Room for every intermediate tensor of the graph (about 16 MB per layer at 256 tokens),
        // with a twofold margin; the pages of the unused part are never touched.
        let bytes = 32 << 20 + 2 * layers * count * (dimension * 48 + heads * count * 16)
        guard let context = ggml_init(ggml_init_params(mem_size: bytes, mem_buffer: nil, no_alloc: false)) else {
            return empty
        }
        defer { ggml_free(context) }

        let tokens = ggml_new_tensor_1d(context, GGML_TYPE_I32, Int64(count))!
        let positions = ggml_new_tensor_1d(context, GGML_TYPE_I32, Int64(count))!
        let tokenData = tokens.pointee.data.assumingMemoryBound(to: Int32.self)
        let positionData = positions.pointee.data.assumingMemoryBound(to: Int32.self)
        for index in 0..<count {
            tokenData[index] = ids[index]
            positionData[index] = Int32(index)
        }

        var x = ggml_get_rows(context, tensor("embeddings.word_embeddings.weight"), tokens)!
        x = ggml_add(context, x, ggml_get_rows(context, tensor("embeddings.position_embeddings.weight"), positions))!
        let typeZero = ggml_view_1d(context, tensor("embeddings.token_type_embeddings.weight"), Int64(dimension), 0)
        x = ggml_add(context, x, typeZero)!
        x = layerNorm(context, x, "embeddings.LayerNorm")
        // Every tensor of the graph keeps its own memory in `context`, so each layer's output
        // can be read after the pass: 0 is the embedding layer, `layers` the last.
        var hidden = [x]
        for layer in 0..<layers {
            x = block(context, x, layer: layer, count: count)
            hidden.append(x)
        }
        let deepest = pooling.map { min(max($0.layer, 0), layers) }.max() ?? layers
        let graph = ggml_new_graph(context)
        ggml_build_forward_expand(graph, hidden[deepest])
        _ = ggml_graph_compute_with_ctx(context, graph, Int32(threads))

        var result: [Float] = []
        result.reserveCapacity(empty.count)
        for feature in pooling {
            let states = UnsafeBufferPointer(
                start: hidden[min(max(feature.layer, 0), layers)].pointee.data.assumingMemoryBound(to: Float.self),
                count: count * dimension)
            result += Self.pool(states, tokens: count, dimension: dimension, by: feature.pooling)
        }
        return result
    }

    /// One block of ``features(_:pooling:threads:)``: `states` is `tokens` rows of `dimension`.
    static func pool(_ states: UnsafeBufferPointer<Float>, tokens: Int, dimension: Int, by pooling: PooledFeature.Pooling) -> [Float] {
        var pooled: [Float]
        switch pooling {
        case .mean:
            pooled = [Float](repeating: 0, count: dimension)
            for token in 0..<tokens {
                for feature in 0..<dimension { pooled[feature] += states[token * dimension + feature] }
            }
        case .max:
            pooled = Array(states[0..<dimension])
            for token in 1..<max(tokens, 1) {
                for feature in 0..<dimension { pooled[feature] = max(pooled[feature], states[token * dimension + feature]) }
            }
        case .first:
            pooled = Array(states[0..<dimension])
        }
        let norm = max(sqrt(pooled.reduce(0) { $0 + $1 * $1 }), 1e-12)
        return pooled.map { $0 / norm }
    }

    private func tensor(_ name: String) -> UnsafeMutablePointer<ggml_tensor> {
        ggml_get_tensor(weights, name)!
    }

    private func linear(_ context: OpaquePointer, _ x: UnsafeMutablePointer<ggml_tensor>, _ name: String) -> UnsafeMutablePointer<ggml_tensor> {
        ggml_add(context, ggml_mul_mat(context, tensor(name + ".weight"), x), tensor(name + ".bias"))!
    }

    private func layerNorm(_ context: OpaquePointer, _ x: UnsafeMutablePointer<ggml_tensor>, _ name: String) -> UnsafeMutablePointer<ggml_tensor> {
        ggml_add(context, ggml_mul(context, ggml_norm(context, x, epsilon), tensor(name + ".weight")), tensor(name + ".bias"))!
    }

    /// One transformer layer: self-attention and feed-forward, each with residual and LayerNorm.
    private func block(_ context: OpaquePointer, _ x: UnsafeMutablePointer<ggml_tensor>, layer: Int, count: Int) -> UnsafeMutablePointer<ggml_tensor> {
        let prefix = "encoder.layer.\(layer)."
        let headSize = dimension / heads
        let n = Int64(count)
        func split(_ t: UnsafeMutablePointer<ggml_tensor>) -> UnsafeMutablePointer<ggml_tensor> {
            ggml_reshape_3d(context, t, Int64(headSize), Int64(heads), n)!  // [d, heads, n]
        }
        let q = ggml_permute(context, split(linear(context, x, prefix + "attention.self.query")), 0, 2, 1, 3)  // [d, n, heads]
        let k = ggml_permute(context, split(linear(context, x, prefix + "attention.self.key")), 0, 2, 1, 3)  // [d, n, heads]
        let v = ggml_cont(context, ggml_permute(context, split(linear(context, x, prefix + "attention.self.value")), 1, 2, 0, 3))  // [n, d, heads]
        let scores = ggml_mul_mat(context, k, q)  // [n_k, n_q, heads]
        let probabilities = ggml_soft_max_ext(context, scores, nil, 1 / sqrt(Float(headSize)), 0)
        let attended = ggml_mul_mat(context, v, probabilities)  // [d, n_q, heads]
        let merged = ggml_cont_2d(context, ggml_permute(context, attended, 0, 2, 1, 3), Int64(dimension), n)!
        var h = layerNorm(context, ggml_add(context, x, linear(context, merged, prefix + "attention.output.dense"))!, prefix + "attention.output.LayerNorm")
        let hidden = ggml_gelu_erf(context, linear(context, h, prefix + "intermediate.dense"))!
        h = layerNorm(context, ggml_add(context, h, linear(context, hidden, prefix + "output.dense"))!, prefix + "output.LayerNorm")
        return h
    }
}
