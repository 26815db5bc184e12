import AttuneBench
import AttuneTestSupport
import Foundation
import Logging
import Testing

@testable import AttuneServer

/// The API contract: `/openapi.json` lists exactly the routes the server has, schemathesis finds
/// no 5xx and no response that breaks the document, and the fuzzer finds no crash, hang or leak.
@Suite(.serialized) struct ContractTests {
    @Test func theOpenAPIDocumentListsEveryRouteAndNoOther() throws {
        let configuration = TestSupport.configuration()
        let components = ServerComponents.load(configuration: configuration, logger: Logger(label: "test"))
        let routes = RouteCatalog()
        _ = buildRouter(
            configuration: configuration, components: components,
            socketIO: SocketIOHub(components: components, settings: configuration.socketIO), routes: routes)
        let served = Set(routes.routes.map { "\($0.method.rawValue.lowercased()) \($0.path)" })

        let data = try Data(contentsOf: TestData.packageRoot.appendingPathComponent("Sources/AttuneServer/Public/openapi.json"))
        let document = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(document["openapi"] as? String == "3.1.0")
        let paths = try #require(document["paths"] as? [String: [String: Any]])
        let methods: Set<String> = ["get", "post", "put", "delete", "patch", "head", "options"]
        let documented = Set(paths.flatMap { path, item in item.keys.filter(methods.contains).map { "\($0) \(path)" } })
        #expect(served == documented, "served only: \(served.subtracting(documented).sorted()); documented only: \(documented.subtracting(served).sorted())")
    }

    /// schemathesis (the pinned setup group) against a live server: a bounded number of generated
    /// requests per operation; no 5xx, and every response matches the document.
    @Test func schemathesisFindsNoServerErrorAndNoBrokenResponse() async throws {
        let cache = ProcessInfo.processInfo.environment["ATTUNE_CACHE"] ?? NSHomeDirectory() + "/.cache/attune"
        let site = cache + "/schemathesis"
        try #require(FileManager.default.fileExists(atPath: site), "schemathesis is not installed (make test installs the setup group schemathesis)")
        let server = try AttuneServerProcess(arguments: ["--set", "llm.embedded=false"])
        defer { server.kill() }
        try await waitUntilHealthy(port: server.port)
        let (status, output) = try TestData.runTool(
            ["python3", "-m", "schemathesis.cli", "run", "http://127.0.0.1:\(server.port)/openapi.json",
             "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
             "--max-examples", "25", "--seed", "1", "--workers", "1", "--request-timeout", "60", "--no-color"],
            environment: ["PYTHONPATH": site])
        #expect(status == 0, "schemathesis failed:\n\(output.suffix(6_000))")
        #expect(server.isRunning)
    }

    /// scripts/fuzz.py for about a minute (`ATTUNE_FUZZ_SECONDS` sets how long).
    @Test func fuzzingLeavesTheServerUpAndBounded() throws {
        let seconds = ProcessInfo.processInfo.environment["ATTUNE_FUZZ_SECONDS"] ?? "60"
        let binary = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            .deletingLastPathComponent().appendingPathComponent("attune").path
        let report = TestData.packageRoot.appendingPathComponent(".build/artifacts/fuzz.json").path
        try FileManager.default.createDirectory(atPath: (report as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let (status, output) = try TestData.runTool(
            ["python3", TestData.packageRoot.appendingPathComponent("scripts/fuzz.py").path, "--binary", binary, "--seconds", seconds,
             "--report", report])
        print(output)
        #expect(status == 0, "the fuzzer found problems:\n\(output.suffix(6_000))")
    }
}
