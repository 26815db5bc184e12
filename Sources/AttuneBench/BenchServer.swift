import AsyncHTTPClient
import AttuneServer
import Foundation
import Logging
import ServiceLifecycle

/// Runs an in-process Attune server for a benchmark: on a free port, with a private data
/// folder (removed once the server has stopped), and (when it has one) its embedded language
/// model ready before `body` starts.
func withBenchServer<Result: Sendable>(
    _ configuration: AttuneConfiguration, waitForLLM: Bool = false,
    _ body: @escaping @Sendable (Int) async throws -> Result
) async throws -> Result {
    var configuration = configuration
    configuration.port = 0
    configuration.logLevel = .warning
    let dataDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("attune-bench-\(UUID().uuidString)").path
    configuration.dataDirectory = dataDirectory
    // Runs after the task group below, which has awaited the server's end in every outcome.
    defer { try? FileManager.default.removeItem(atPath: dataDirectory) }
    let (ports, portSink) = AsyncStream.makeStream(of: Int.self)
    var logger = Logger(label: "attune-bench")
    logger.logLevel = .warning
    let app = try await buildApplication(configuration: configuration, logger: logger) { port in portSink.yield(port) }
    let server = ServiceGroup(configuration: .init(services: [app], logger: logger))
    return try await withThrowingTaskGroup(of: Result?.self) { group in
        group.addTask {
            try await server.run()
            return nil
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw BenchmarkError("the server did not start") }
        let result: Result
        do {
            if waitForLLM { try await waitUntilHealthy(port: port) }
            result = try await body(port)
        } catch {
            await server.triggerGracefulShutdown()
            throw error
        }
        await server.triggerGracefulShutdown()
        try await group.waitForAll()
        return result
    }
}

/// Runs `count` in-process servers at once (as ``withBenchServer``), for benchmarks of several
/// instances on one shared storage; `body` gets their ports.
func withBenchServers<Result: Sendable>(
    _ configuration: AttuneConfiguration, count: Int, _ body: @escaping @Sendable ([Int]) async throws -> Result
) async throws -> Result {
    guard count > 1 else { return try await withBenchServer(configuration) { try await body([$0]) } }
    return try await withBenchServer(configuration) { port in
        try await withBenchServers(configuration, count: count - 1) { others in try await body([port] + others) }
    }
}

/// Polls `/api/health` until every component is up (the language model loads after start-up).
/// - Parameter token: the server's `server.api_token`, if it has one.
public func waitUntilHealthy(port: Int, token: String? = nil, timeout: Duration = .seconds(180)) async throws {
    let deadline = ContinuousClock.now + timeout
    var last = ""
    var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/api/health")
    if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
    while ContinuousClock.now < deadline {
        if let response = try? await HTTPClient.shared.execute(request, timeout: .seconds(5)) {
            if response.status == .ok { return }
            last = String(buffer: try await response.body.collect(upTo: 1 << 20))
        }
        try await Task.sleep(for: .milliseconds(250))
    }
    throw BenchmarkError("the server did not become healthy within \(timeout): \(last)")
}
