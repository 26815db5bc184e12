import AttuneONNX
import AttuneTestSupport
import Foundation
import Testing

/// The ONNX runner on ONNX Runtime itself: a model written here whose outputs are known, and
/// the Silero VAD model setup installs.
@Suite struct OnnxModelTests {
    /// y = softmax(x·W + b) for x of shape [batch, 3], as an ONNX file (ir 8, opset 13).
    static let weights: [Float] = [1, -1, 0.5, 2, -0.5, 0]  // W, 3×2, row-major
    static let bias: [Float] = [0.1, -0.2]

    static func softmaxModel() throws -> URL {
        let graph = Protobuf()
            .message(1, Protobuf().string(1, "x").string(1, "W").string(1, "b").string(2, "z").string(4, "Gemm"))
            .message(1, Protobuf().string(1, "z").string(2, "y").string(4, "Softmax")
                .message(5, Protobuf().string(1, "axis").varint(3, 1).varint(20, 2)))  // AttributeProto: name, i, type INT
            .string(2, "softmax-test")
            .message(5, tensor("W", dims: [3, 2], values: weights))
            .message(5, tensor("b", dims: [2], values: bias))
            .message(11, valueInfo("x", dims: [nil, 3]))
            .message(12, valueInfo("y", dims: [nil, 2]))
        let model = Protobuf()
            .varint(1, 8)  // ir_version
            .message(8, Protobuf().string(1, "").varint(2, 13))  // opset_import
            .message(7, graph)
        let url = URL(fileURLWithPath: TestData.temporaryDirectory()).appendingPathComponent("softmax.onnx")
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(model.bytes).write(to: url)
        return url
    }

    static func tensor(_ name: String, dims: [Int], values: [Float]) -> Protobuf {
        var message = Protobuf()
        for dim in dims { message = message.varint(1, UInt64(dim)) }
        let raw = values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }
        return message.varint(2, 1).string(8, name).bytes(9, raw)  // data_type FLOAT, name, raw_data
    }

    static func valueInfo(_ name: String, dims: [Int?]) -> Protobuf {
        var shape = Protobuf()
        for dim in dims {
            shape = shape.message(1, dim.map { Protobuf().varint(1, UInt64($0)) } ?? Protobuf().string(2, "batch"))
        }
        let type = Protobuf().message(1, Protobuf().varint(1, 1).message(2, shape))  // tensor_type: FLOAT, shape
        return Protobuf().string(1, name).message(2, type)
    }

    static func expected(_ x: [Float]) -> [Float] {
        let logits = (0..<2).map { column in (0..<3).map { x[$0] * weights[$0 * 2 + column] }.reduce(0, +) + bias[column] }
        let exps = logits.map { exp($0 - logits.max()!) }
        return exps.map { $0 / exps.reduce(0, +) }
    }

    @Test func readsTheSignatureAndComputesKnownOutputs() throws {
        let model = try OnnxModel(path: try Self.softmaxModel(), threads: 2)
        #expect(model.inputs == [TensorSpec("x", shape: [nil, 3])])
        #expect(model.outputs == [TensorSpec("y", shape: [nil, 2])])
        try model.expect(inputs: [TensorSpec("x", shape: [nil, 3])], outputs: [TensorSpec("y", shape: [nil, 2])])

        let rows: [[Float]] = [[1, 2, 3], [-1, 0.5, 0], [0, 0, 0]]
        let result = try model.run(["x": FloatTensor(shape: [3, 3], values: rows.flatMap { $0 })], outputs: ["y"])
        let y = try #require(result["y"])
        #expect(y.shape == [3, 2])
        for (index, row) in rows.enumerated() {
            for (got, want) in zip(y.values[index * 2..<index * 2 + 2], Self.expected(row)) {
                #expect(abs(got - want) < 1e-5, "row \(index): \(got) vs \(want)")
            }
        }
    }

    @Test func aModelOfTheWrongShapeIsRefusedWithTheFileAndTheMismatch() throws {
        let url = try Self.softmaxModel()
        let model = try OnnxModel(path: url)
        #expect {
            try model.expect(inputs: [TensorSpec("x", shape: [nil, 40])], outputs: [TensorSpec("scores", shape: [nil, 7])])
        } throws: { error in
            let text = "\(error)"
            return text.contains(url.path) && text.contains("input x: float [?, 3] where x: float [?, 40] is expected")
                && text.contains("no output scores")
        }
        // Feeding the wrong shape is an error, not a crash.
        #expect(throws: OnnxError.self) { _ = try model.run(["x": FloatTensor(shape: [1, 4], values: [1, 2, 3, 4])], outputs: ["y"]) }
        #expect(throws: OnnxError.self) { _ = try model.run(["nope": FloatTensor(shape: [1, 3], values: [1, 2, 3])], outputs: ["y"]) }
    }

    @Test func missingAndCorruptFilesAreClearErrors() throws {
        #expect { try OnnxModel(path: URL(fileURLWithPath: "/nonexistent/model.onnx")) } throws: { "\($0)".contains("/nonexistent/model.onnx") }
        let junk = URL(fileURLWithPath: TestData.temporaryDirectory() + "-junk.onnx")
        try Data("not a model".utf8).write(to: junk)
        #expect { try OnnxModel(path: junk) } throws: { "\($0)".contains(junk.path) }
    }

    @Test func readsTheSignatureOfARealModel() throws {
        let model = try OnnxModel(path: TestData.vadModel)
        #expect(model.inputs.contains { $0.name == "state" && $0.element == .float }, "\(model.inputs)")
        #expect(model.inputs.contains { $0.name == "sr" && $0.element == .int64 }, "\(model.inputs)")
        #expect(!model.outputs.isEmpty)
    }
}

/// Just enough protobuf writing for an ONNX file: varints, length-delimited fields.
struct Protobuf {
    private(set) var bytes: [UInt8] = []

    private static func varintBytes(_ value: UInt64) -> [UInt8] {
        var value = value
        var out: [UInt8] = []
        repeat {
            var byte = UInt8(value & 0x7F)
            value >>= 7
            if value != 0 { byte |= 0x80 }
            out.append(byte)
        } while value != 0
        return out
    }

    func varint(_ field: Int, _ value: UInt64) -> Protobuf {
        var copy = self
        copy.bytes += Self.varintBytes(UInt64(field << 3)) + Self.varintBytes(value)
        return copy
    }

    func bytes(_ field: Int, _ data: [UInt8]) -> Protobuf {
        var copy = self
        copy.bytes += Self.varintBytes(UInt64(field << 3 | 2)) + Self.varintBytes(UInt64(data.count)) + data
        return copy
    }

    func string(_ field: Int, _ text: String) -> Protobuf { bytes(field, Array(text.utf8)) }
    func message(_ field: Int, _ message: Protobuf) -> Protobuf { bytes(field, message.bytes) }
}
