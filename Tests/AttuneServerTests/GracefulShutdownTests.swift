import AttuneTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Runs the real `attune` binary and stops it with a signal while a request is in flight.
@Suite(.serialized) struct GracefulShutdownTests {
    @Test func sigtermFinishesTheRequestInFlightThenExitsZero() async throws {
        let server = try RunningServer.start()
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

        let status = try await server.waitForExit(timeout: .seconds(10))
        #expect(status == 0)
    }

    @Test func sigintOnAnIdleServerExitsZero() async throws {
        let server = try RunningServer.start()
        server.signal(SIGINT)
        #expect(try await server.waitForExit(timeout: .seconds(10)) == 0)
    }
}

/// The `attune serve` process, on a free port with a private data folder.
private final class RunningServer: @unchecked Sendable {
    let process = Process()
    let port: Int

    static func start() throws -> RunningServer {
        try RunningServer()
    }

    private init() throws {
        // The test bundle is built next to the executable.
        let products = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            .deletingLastPathComponent()
        process.executableURL = products.appendingPathComponent("attune")
        process.arguments = ["serve", "--port", "0", "--data-dir", TestData.temporaryDirectory(), "--log-level", "info"]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()

        // Read the log until the server says where it listens.
        var log = ""
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let chunk = errors.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            log += String(decoding: chunk, as: UTF8.self)
            if let range = log.range(of: #"listening on http://127\.0\.0\.1:(\d+)"#, options: .regularExpression) {
                let port = Int(log[range].split(separator: ":").last!)!
                self.port = port
                // Keep draining the log so the server never blocks on a full pipe.
                errors.fileHandleForReading.readabilityHandler = { _ = $0.availableData }
                return
            }
        }
        process.terminate()
        throw ServerStartError(log: log)
    }

    var isRunning: Bool { process.isRunning }

    func signal(_ signal: Int32) {
        kill(process.processIdentifier, signal)
    }

    func waitForExit(timeout: Duration) async throws -> Int32? {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while process.isRunning, clock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        guard !process.isRunning else {
            process.terminate()
            return nil
        }
        return process.terminationReason == .exit ? process.terminationStatus : -process.terminationStatus
    }

    deinit {
        if process.isRunning { process.terminate() }
    }
}

private struct ServerStartError: Error, CustomStringConvertible {
    let log: String
    var description: String { "attune serve did not report its port; log:\n\(log)" }
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

    deinit {
        close(socket)
    }
}
