import AttuneBench
import AttuneTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Runs the real `attune` binary and stops it with a signal while a request is in flight.
@Suite(.serialized) struct GracefulShutdownTests {
    @Test func sigtermFinishesTheRequestInFlightThenExitsZero() async throws {
        let server = try AttuneServerProcess(arguments: ["--set", "llm.embedded=false"])
        let wav = try [UInt8](Data(contentsOf: TestData.ravdess("03-01-01-01-01-01-01")))
        let connection = try RawSocket(port: server.port)
        let head = "POST /api/vad HTTP/1.1\r\nHost: localhost\r\nContent-Type: audio/wav\r\nContent-Length: \(wav.count)\r\n\r\n"
        try connection.send(Array(head.utf8) + wav[..<(wav.count / 2)])
        try await Task.sleep(for: .milliseconds(200))

        server.signal(SIGTERM)
        try await Task.sleep(for: .milliseconds(300))
        #expect(server.isRunning, "the server must wait for the request it is serving")

        try connection.send(Array(wav[(wav.count / 2)...]))
        let response = try connection.receiveAll()
        #expect(response.hasPrefix("HTTP/1.1 200"))
        #expect(response.contains("\"segments\""))

        let status = try await server.waitForExit(timeout: .seconds(20))
        #expect(status == 0)
    }

    @Test func sigintOnAnIdleServerExitsZero() async throws {
        let server = try AttuneServerProcess(arguments: ["--set", "llm.embedded=false"])
        server.signal(SIGINT)
        #expect(try await server.waitForExit(timeout: .seconds(20)) == 0)
    }

    /// A reply streaming from the language model to a client that never reads nor closes must
    /// not hold the server past `server.shutdown_timeout_s`.
    @Test func sigtermExitsWithinTheShutdownTimeoutDespiteAClientThatNeverCloses() async throws {
        let server = try AttuneServerProcess(arguments: ["--set", "server.shutdown_timeout_s=4"])
        try await waitUntilHealthy(port: server.port)
        let connection = try RawSocket(port: server.port)
        try connection.upgradeToWebSocket(path: "/ws/conversation")
        try connection.sendWebSocketText(ConversationClient.userText("Tell me a long story about a lighthouse keeper and the sea, with every detail."))
        // Read until the reply has started; from then on never read, never close.
        #expect(try connection.receive(until: "reply_started", timeout: 120), "no reply started")

        let signalled = ContinuousClock.now
        server.signal(SIGTERM)
        let status = try await server.waitForExit(timeout: .seconds(60))
        #expect(status != nil, "attune serve was still running 60 s after SIGTERM")
        let waited = ContinuousClock.now - signalled
        // Four seconds of shutdown, and generous room for a loaded machine.
        #expect(waited < .seconds(15), "exited \(waited) after SIGTERM")
    }

    /// `kill -9` gives Attune no chance to stop its llama-server: the kernel must.
    @Test func killingAttuneTakesItsLlamaServerAlong() async throws {
        let server = try AttuneServerProcess()
        try await waitUntilHealthy(port: server.port)
        let llama = try #require(
            ProcessTree.descendants(of: server.processIdentifier).first { ProcessTree.name(of: $0) == "llama-server" },
            "no llama-server below attune serve")
        // Its API needs the key Attune gave it.
        let arguments = ProcessTree.arguments(of: llama)
        let llamaPort = try #require(arguments.firstIndex(of: "--port").flatMap { Int(arguments[$0 + 1]) })
        let unauthorised = try RawSocket(port: llamaPort)
        try unauthorised.send(Array("GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8))
        #expect(try unauthorised.receiveAll().hasPrefix("HTTP/1.1 401"))
        #expect(!arguments.joined(separator: " ").contains("api-key"), "the key must not be on the command line")

        server.signal(SIGKILL)
        let deadline = ContinuousClock.now + .seconds(30)
        while ProcessTree.isAlive(llama), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
        let survived = ProcessTree.isAlive(llama)
        if survived { ProcessTree.kill(llama) }
        #expect(!survived, "llama-server \(llama) outlived attune serve")
    }
}
