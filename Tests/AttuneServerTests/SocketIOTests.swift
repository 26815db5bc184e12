import AttuneBench
import AttuneFace
import AttuneTestSupport
import Foundation
import Testing

/// `/socket.io/` with a real Socket.IO client (python-socketio 5, the setup group `socketio`):
/// the long-polling handshake and upgrade to WebSocket that socket.io-client does by default,
/// and WebSocket from the start.
@Suite struct SocketIOTests {
    static var site: String {
        (ProcessInfo.processInfo.environment["ATTUNE_CACHE"] ?? NSHomeDirectory() + "/.cache/attune") + "/socketio"
    }

    /// Runs the client script against `port`; its JSON report.
    static func client(port: Int, frame: URL, transport: String) throws -> [String: Any] {
        let (status, output) = try TestData.runTool(
            ["python3", TestData.packageRoot.appendingPathComponent("scripts/socketio_client.py").path,
             "--url", "http://127.0.0.1:\(port)", "--frame", frame.path, "--transport", transport, "--timeout", "60"],
            environment: ["PYTHONPATH": site])
        #expect(status == 0, "\(output.suffix(4_000))")
        let line = try #require(output.split(separator: "\n").last, "no output")
        return try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(output.suffix(4_000))")
    }

    @Test(arguments: ["default", "websocket"])
    func aSocketIOClientSendsFramesAndGetsEmotions(transport: String) async throws {
        try #require(FileManager.default.fileExists(atPath: Self.site), "python-socketio is not installed (make test installs the setup group socketio)")
        let frame = TestData.scratch.appendingPathComponent("attune-sio-\(UUID().uuidString).jpg")
        try Data(try FaceRouteTests.frame("happy")).write(to: frame)
        defer { try? FileManager.default.removeItem(at: frame) }
        // A server of its own: the client blocks this thread while it talks to it.
        let server = try AttuneServerProcess(arguments: ["--set", "llm.embedded=false"])
        defer { server.kill() }
        try await waitUntilHealthy(port: server.port)
        do {
            let report = try Self.client(port: server.port, frame: frame, transport: transport)
            // The default client starts with long-polling and upgrades.
            #expect(report["transport"] as? String == "websocket")
            let processed = try #require(report["processed"] as? [[String: Any]])
            #expect(processed.count == 2)
            let first = try #require(processed.first)
            #expect(first["face_detected"] as? Bool == true && first["timestamp"] as? Double == 1_700_000_000_123)
            #expect((first["faces"] as? [[String: Any]])?.first?["box"] != nil)
            let updates = try #require(report["updates"] as? [[String: Any]])
            #expect(updates.count == 2)
            for update in updates {
                #expect(Set(update.keys) == ["emotion", "confidence", "face_detected", "timestamp"])
            }
            #expect((report["errors"] as? [[String: Any]])?.first?["error"] as? String != nil)
            #expect((report["ack"] as? [String: Any])?["face_detected"] as? Bool == true)
        }
        #expect(server.isRunning)
    }
}
