import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A blocking TCP socket to 127.0.0.1, for requests written by hand (headers a client library
/// would not send, requests in pieces, WebSocket clients that never read).
final class RawSocket {
    private let socket: Int32

    init(port: Int) throws {
        socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            close(socket)
            throw POSIXError(.ECONNREFUSED)
        }
        setReceiveTimeout(seconds: 20)
    }

    private func setReceiveTimeout(seconds: Int) {
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, 0) }
            guard written > 0 else { throw POSIXError(.EPIPE) }
            offset += written
        }
    }

    /// The response's status line and headers.
    func receiveHead() -> String {
        var received = [UInt8]()
        var byte: UInt8 = 0
        while !received.suffix(4).elementsEqual([13, 10, 13, 10]), recv(socket, &byte, 1, 0) == 1 { received.append(byte) }
        return String(decoding: received, as: UTF8.self)
    }

    /// Reads until the server closes the connection or stops sending for a few seconds.
    func receiveAll() throws -> String {
        setReceiveTimeout(seconds: 5)
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
        setReceiveTimeout(seconds: 1)
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
        guard receiveHead().hasPrefix("HTTP/1.1 101") else { throw POSIXError(.EPROTO) }
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

    deinit { close(socket) }
}
