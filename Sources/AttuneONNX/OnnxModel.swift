import AttuneCore
import CSherpaOnnx
import Foundation

/// What went wrong loading or running an ONNX model; the message names the file.
public struct OnnxError: Error, CustomStringConvertible, Sendable {
    public let description: String

    init(_ description: String) { self.description = description }

    /// An error about a model, from code that checks more than the runner does.
    public init(message: String) { self.description = message }
}

/// An input or output of a model: its name, element type and shape (nil for a dimension the
/// model leaves open, such as the batch).
public struct TensorSpec: Sendable, Equatable, CustomStringConvertible {
    public enum Element: Sendable, Equatable {
        case float
        case int64
        /// Any other ONNX element type, by its number.
        case other(Int32)
    }

    public let name: String
    public let element: Element
    public let shape: [Int?]

    public init(_ name: String, _ element: Element = .float, shape: [Int?]) {
        self.name = name
        self.element = element
        self.shape = shape
    }

    public var description: String {
        "\(name): \(element) [\(shape.map { $0.map(String.init) ?? "?" }.joined(separator: ", "))]"
    }

    /// Whether a tensor of this spec can be fed where `expected` is asked for: same name, element
    /// and rank, and every dimension `expected` fixes is fixed to the same size here or left open.
    func fits(_ expected: TensorSpec) -> Bool {
        name == expected.name && element == expected.element && shape.count == expected.shape.count
            && zip(shape, expected.shape).allSatisfy { actual, wanted in wanted == nil || actual == nil || actual == wanted }
    }
}

/// A float tensor: row-major values and their shape.
public struct FloatTensor: Sendable, Equatable {
    public var shape: [Int]
    public var values: [Float]

    public init(shape: [Int], values: [Float]) {
        precondition(shape.reduce(1, *) == values.count, "shape \(shape) does not hold \(values.count) values")
        self.shape = shape
        self.values = values
    }
}

/// One ONNX model loaded into ONNX Runtime (the library sherpa-onnx ships), run on float
/// tensors on the CPU.
///
/// The session's `Run` is safe to call from several threads at once (ONNX Runtime's
/// documented guarantee), so one model serves a whole pool; callers still run it off the
/// cooperative thread pool, on a bounded pool of their own, since it blocks.
public final class OnnxModel: @unchecked Sendable {
    public let path: URL
    public let inputs: [TensorSpec]
    public let outputs: [TensorSpec]

    private let api: UnsafePointer<AttuneOrtApi>
    private let env: OpaquePointer
    private let session: OpaquePointer
    private let memory: OpaquePointer

    /// Loads `path`, with `threads` threads for one run's operators (intra-op).
    public init(path: URL, threads: Int = 1) throws {
        guard let api = attune_onnxruntime_api() else {
            throw OnnxError("ONNX Runtime \(String(cString: attune_onnxruntime_version())) does not offer C API version \(ATTUNE_ORT_API_VERSION)")
        }
        guard FileManager.default.fileExists(atPath: path.path) else { throw OnnxError("\(path.path): no such model file") }
        self.api = api
        self.path = path
        let name = path.lastPathComponent
        NativeLifecycle.onnx.lock()
        defer { NativeLifecycle.onnx.unlock() }

        var env: OpaquePointer?
        try Self.check(api, api.pointee.CreateEnv(Int32(ATTUNE_ORT_LOG_ERROR), "attune", &env), "\(name): creating the environment")
        guard let env else { throw OnnxError("\(name): no environment") }
        var options: OpaquePointer?
        do {
            try Self.check(api, api.pointee.CreateSessionOptions(&options), "\(name): session options")
            defer { api.pointee.ReleaseSessionOptions(options) }
            try Self.check(api, api.pointee.SetIntraOpNumThreads(options, Int32(max(1, threads))), "\(name): threads")
            try Self.check(api, api.pointee.SetInterOpNumThreads(options, 1), "\(name): threads")
            try Self.check(api, api.pointee.SetSessionGraphOptimizationLevel(options, Int32(ATTUNE_ORT_ENABLE_ALL)), "\(name): optimisation")
            var session: OpaquePointer?
            try Self.check(api, api.pointee.CreateSession(env, path.path, options, &session), "\(path.path): loading the model")
            guard let session else { throw OnnxError("\(path.path): no session") }
            do {
                var memory: OpaquePointer?
                try Self.check(api, api.pointee.CreateCpuMemoryInfo(Int32(ATTUNE_ORT_ARENA_ALLOCATOR), Int32(ATTUNE_ORT_MEM_TYPE_DEFAULT), &memory), "\(name): memory info")
                guard let memory else { throw OnnxError("\(name): no memory info") }
                self.memory = memory
                inputs = try Self.specs(api, session, count: api.pointee.SessionGetInputCount, typeInfo: api.pointee.SessionGetInputTypeInfo, name: api.pointee.SessionGetInputName, file: name)
                outputs = try Self.specs(api, session, count: api.pointee.SessionGetOutputCount, typeInfo: api.pointee.SessionGetOutputTypeInfo, name: api.pointee.SessionGetOutputName, file: name)
            } catch {
                api.pointee.ReleaseSession(session)
                throw error
            }
            self.session = session
        } catch {
            api.pointee.ReleaseEnv(env)
            throw error
        }
        self.env = env
    }

    deinit {
        NativeLifecycle.onnx.lock()
        defer { NativeLifecycle.onnx.unlock() }
        api.pointee.ReleaseMemoryInfo(memory)
        api.pointee.ReleaseSession(session)
        api.pointee.ReleaseEnv(env)
    }

    /// Checks the model against what the caller will feed and read; the error names the file and
    /// every input or output that does not match.
    public func expect(inputs expectedInputs: [TensorSpec], outputs expectedOutputs: [TensorSpec]) throws {
        var problems: [String] = []
        func compare(_ kind: String, _ actual: [TensorSpec], _ expected: [TensorSpec]) {
            for wanted in expected {
                guard let found = actual.first(where: { $0.name == wanted.name }) else {
                    problems.append("no \(kind) \(wanted.name) (the model's \(kind)s: \(actual.map(\.description).joined(separator: "; ")))")
                    continue
                }
                if !found.fits(wanted) { problems.append("\(kind) \(found) where \(wanted) is expected") }
            }
        }
        compare("input", inputs, expectedInputs)
        compare("output", outputs, expectedOutputs)
        for extra in inputs where !expectedInputs.contains(where: { $0.name == extra.name }) {
            problems.append("input \(extra) would not be fed")
        }
        guard problems.isEmpty else { throw OnnxError("\(path.path) does not have the expected signature: \(problems.joined(separator: "; "))") }
    }

    /// Runs the model on float inputs by name and returns the named float outputs.
    public func run(_ feeds: [String: FloatTensor], outputs names: [String]) throws -> [String: FloatTensor] {
        let file = path.lastPathComponent
        for name in feeds.keys where !inputs.contains(where: { $0.name == name }) {
            throw OnnxError("\(file) has no input \(name)")
        }
        for name in names where !outputs.contains(where: { $0.name == name }) {
            throw OnnxError("\(file) has no output \(name)")
        }
        let ordered = feeds.sorted { $0.key < $1.key }
        // The values must stay where they are while the run reads them: copy them into buffers
        // that live until the end of this call.
        var buffers: [UnsafeMutableBufferPointer<Float>] = []
        var values: [OpaquePointer?] = []
        defer {
            for value in values { api.pointee.ReleaseValue(value) }
            for buffer in buffers { buffer.deallocate() }
        }
        for (name, tensor) in ordered {
            let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(1, tensor.values.count))
            _ = buffer.initialize(from: tensor.values)
            buffers.append(buffer)
            let shape = tensor.shape.map(Int64.init)
            var value: OpaquePointer?
            try Self.check(api, api.pointee.CreateTensorWithDataAsOrtValue(
                memory, buffer.baseAddress, tensor.values.count * MemoryLayout<Float>.stride, shape, shape.count,
                Int32(ATTUNE_ORT_FLOAT), &value), "\(file): input \(name) of shape \(tensor.shape)")
            values.append(value)
        }
        var results = [OpaquePointer?](repeating: nil, count: names.count)
        defer { for result in results { api.pointee.ReleaseValue(result) } }
        try withCStrings(ordered.map(\.key)) { inputNames in
            try withCStrings(names) { outputNames in
                try Self.check(api, api.pointee.Run(
                    session, nil, inputNames, values, ordered.count, outputNames, names.count, &results), "\(file): run")
            }
        }
        var outputs: [String: FloatTensor] = [:]
        for (name, result) in zip(names, results) {
            guard let result else { throw OnnxError("\(file): output \(name) is missing") }
            var info: OpaquePointer?
            try Self.check(api, api.pointee.GetTensorTypeAndShape(result, &info), "\(file): output \(name)")
            defer { api.pointee.ReleaseTensorTypeAndShapeInfo(info) }
            var element: Int32 = 0
            try Self.check(api, api.pointee.GetTensorElementType(info, &element), "\(file): output \(name)")
            guard element == Int32(ATTUNE_ORT_FLOAT) else { throw OnnxError("\(file): output \(name) is not float (element type \(element))") }
            let shape = try Self.dimensions(api, info, file: file)
            var count = 0
            try Self.check(api, api.pointee.GetTensorShapeElementCount(info, &count), "\(file): output \(name)")
            var data: UnsafeMutableRawPointer?
            try Self.check(api, api.pointee.GetTensorMutableData(result, &data), "\(file): output \(name)")
            let floats = data.map { Array(UnsafeBufferPointer(start: $0.assumingMemoryBound(to: Float.self), count: count)) } ?? []
            outputs[name] = FloatTensor(shape: shape.map { $0 ?? 0 }, values: floats)
        }
        return outputs
    }

    // MARK: - C API helpers

    private static func check(_ api: UnsafePointer<AttuneOrtApi>, _ status: OpaquePointer?, _ what: @autoclosure () -> String) throws {
        guard let status else { return }
        let message = api.pointee.GetErrorMessage(status).map { String(cString: $0) } ?? "unknown error"
        api.pointee.ReleaseStatus(status)
        throw OnnxError("\(what()): \(message)")
    }

    private static func dimensions(_ api: UnsafePointer<AttuneOrtApi>, _ info: OpaquePointer?, file: String) throws -> [Int?] {
        var rank = 0
        try check(api, api.pointee.GetDimensionsCount(info, &rank), "\(file): rank")
        var dimensions = [Int64](repeating: 0, count: rank)
        try check(api, api.pointee.GetDimensions(info, &dimensions, rank), "\(file): dimensions")
        return dimensions.map { $0 < 0 ? nil : Int($0) }
    }

    private typealias CountFunction = @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>?) -> OpaquePointer?
    private typealias TypeInfoFunction = @convention(c) (OpaquePointer?, Int, UnsafeMutablePointer<OpaquePointer?>?) -> OpaquePointer?
    private typealias NameFunction = @convention(c) (OpaquePointer?, Int, OpaquePointer?, UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> OpaquePointer?

    private static func specs(
        _ api: UnsafePointer<AttuneOrtApi>, _ session: OpaquePointer, count: CountFunction, typeInfo: TypeInfoFunction,
        name: NameFunction, file: String
    ) throws -> [TensorSpec] {
        var allocator: OpaquePointer?
        try check(api, api.pointee.GetAllocatorWithDefaultOptions(&allocator), "\(file): allocator")
        var total = 0
        try check(api, count(session, &total), "\(file): counting inputs and outputs")
        return try (0..<total).map { index in
            var cName: UnsafeMutablePointer<CChar>?
            try check(api, name(session, index, allocator, &cName), "\(file): name \(index)")
            let tensorName = cName.map { String(cString: $0) } ?? ""
            _ = api.pointee.AllocatorFree(allocator, cName)
            var info: OpaquePointer?
            try check(api, typeInfo(session, index, &info), "\(file): type of \(tensorName)")
            defer { api.pointee.ReleaseTypeInfo(info) }
            var tensorInfo: OpaquePointer?
            try check(api, api.pointee.CastTypeInfoToTensorInfo(info, &tensorInfo), "\(file): \(tensorName)")
            guard let tensorInfo else { return TensorSpec(tensorName, .other(-1), shape: []) }  // not a tensor (a map or sequence)
            var element: Int32 = 0
            try check(api, api.pointee.GetTensorElementType(tensorInfo, &element), "\(file): element type of \(tensorName)")
            let kind: TensorSpec.Element = element == Int32(ATTUNE_ORT_FLOAT) ? .float : element == Int32(ATTUNE_ORT_INT64) ? .int64 : .other(element)
            return TensorSpec(tensorName, kind, shape: try dimensions(api, tensorInfo, file: file))
        }
    }
}

/// Calls `body` with a C array of C strings that live until it returns.
private func withCStrings<Result>(_ strings: [String], _ body: ([UnsafePointer<CChar>?]) throws -> Result) throws -> Result {
    let copies = strings.map { strdup($0) }
    defer { copies.forEach { free($0) } }
    return try body(copies.map { UnsafePointer($0) })
}
