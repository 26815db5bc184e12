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
        let connection = try RawConnection(port: server.port)
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
        let connection = try RawConnection(port: server.port)
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
        let unauthorised = try RawConnection(port: llamaPort)
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

/// A blocking TCP connection to 127.0.0.1, for writing a request in pieces.
private final class RawConnection {
    private let socket: Int32

    init(port: Int) throws {
        socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else { throw POSIXError(.ECONNREFUSED) }
    }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, 0) }
            guard written > 0 else { throw POSIXError(.EPIPE) }
            offset += written
        }
    }

    /// Reads until the server closes the connection or stops sending for a few seconds.
    func receiveAll() throws -> String {
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var received = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = recv(socket, &buffer, buffer.count, 0)
            if count <= 0 { break }
            received += buffer[..<count]
            let text = String(decoding: received, as: UTF8.self)
            if let split = text.range(of: "\r\n\r\n"),
                let lengthLine = text[..<split.lowerBound].split(separator: "\r\n").first(where: { $0.lowercased().hasPrefix("content-length:") }),
                let length = Int(lengthLine.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)),
                received.count >= text.utf8.distance(from: text.startIndex, to: split.upperBound) + length
            {
                break
            }
        }
        return String(decoding: received, as: UTF8.self)
    }

    /// Reads until the bytes received contain `marker`; false if the connection closed or
    /// `timeout` seconds passed first.
    func receive(until marker: String, timeout: Int) throws -> Bool {
        var wait = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        let deadline = ContinuousClock.now + .seconds(timeout)
        var received = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4_096)
        while ContinuousClock.now < deadline {
            let count = recv(socket, &buffer, buffer.count, 0)
            if count == 0 { return false }
            if count > 0 {
                received += buffer[..<count]
                if String(decoding: received, as: UTF8.self).contains(marker) { return true }
            }
        }
        return false
    }

    /// Sends a WebSocket upgrade request and reads the 101 response.
    func upgradeToWebSocket(path: String, headers: [String] = []) throws {
        let request = (["GET \(path) HTTP/1.1", "Host: 127.0.0.1", "Upgrade: websocket", "Connection: Upgrade",
                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"] + headers + ["", ""])
            .joined(separator: "\r\n")
        try send(Array(request.utf8))
        var received = [UInt8]()
        var byte: UInt8 = 0
        while !received.suffix(4).elementsEqual([13, 10, 13, 10]) {
            guard recv(socket, &byte, 1, 0) == 1 else { throw POSIXError(.ECONNRESET) }
            received.append(byte)
        }
        let head = String(decoding: received, as: UTF8.self)
        guard head.hasPrefix("HTTP/1.1 101") else { throw POSIXError(.EPROTO) }
    }

    /// Sends one masked text frame.
    func sendWebSocketText(_ text: String) throws {
        let payload = Array(text.utf8)
        var frame: [UInt8] = [0x81]
        if payload.count < 126 {
            frame.append(0x80 | UInt8(payload.count))
        } else {
            frame += [0x80 | 126, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        }
        let mask: [UInt8] = [1, 2, 3, 4]
        frame += mask
        frame += payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
        try send(frame)
    }

    deinit {
        close(socket)
    }
}
