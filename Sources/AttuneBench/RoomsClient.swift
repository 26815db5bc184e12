import AttuneAudio
import Foundation
import HummingbirdWSClient
import Logging
import NIOCore

/// One participant's connection to `/ws/rooms`, for tests and the rooms benchmark: send
/// messages and audio, and wait for what the room sends back.
public final class RoomsClient: Sendable {
    private enum Frame: Sendable {
        case text(String)
        case binary([UInt8])
    }

    private let outgoing: AsyncStream<Frame>.Continuation
    private let inbox: Inbox
    private let connection: Task<Void, any Error>

    /// Opens the connection; throws when the upgrade is refused or fails.
    public static func connect(port: Int, path: String = "/ws/rooms", timeout: Duration = .seconds(30)) async throws -> RoomsClient {
        let client = RoomsClient(port: port, path: path)
        let deadline = ContinuousClock.now + timeout
        while await !client.inbox.isOpen {
            if await client.inbox.isClosed || ContinuousClock.now > deadline {
                await client.close()
                throw BenchmarkError("could not open ws://127.0.0.1:\(port)\(path)")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        return client
    }

    private init(port: Int, path: String) {
        let (frames, outgoing) = AsyncStream.makeStream(of: Frame.self)
        let inbox = Inbox()
        self.outgoing = outgoing
        self.inbox = inbox
        var logger = Logger(label: "attune-rooms-client")
        logger.logLevel = .warning
        connection = Task {
            defer { Task { await inbox.markClosed() } }
            try await WebSocketClient.connect(
                url: "ws://127.0.0.1:\(port)\(path)", configuration: .init(maxFrameSize: 1 << 22), logger: logger
            ) { inbound, outbound, _ in
                await inbox.markOpen()
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for try await message in inbound.messages(maxSize: 1 << 22) {
                            if case .text(let text) = message { await inbox.append(text, at: .now) }
                        }
                    }
                    group.addTask {
                        for await frame in frames {
                            switch frame {
                            case .text(let text): try await outbound.write(.text(text))
                            case .binary(let bytes): try await outbound.write(.binary(ByteBuffer(bytes: bytes)))
                            }
                        }
                        try? await outbound.close(.normalClosure, reason: nil)
                    }
                    _ = try await group.next()
                    group.cancelAll()
                }
            }
        }
    }

    /// Sends a JSON object as a text frame.
    public func send(_ object: [String: Any]) {
        let data = (try? JSONSerialization.data(withJSONObject: object)) ?? Data()
        outgoing.yield(.text(String(decoding: data, as: UTF8.self)))
    }

    /// Sends a text frame as it is (for malformed messages).
    public func send(text: String) { outgoing.yield(.text(text)) }

    /// Sends 16 kHz samples of one track as binary frames (the track id header, then PCM16),
    /// `frameSeconds` at a time, paced in real time unless `realtime` is false.
    public func stream(_ samples: [Float], track: String, frameSeconds: Double = 0.02, realtime: Bool = true) async throws {
        let frame = Int(frameSeconds * 16_000)
        let header = [UInt8(track.utf8.count)] + Array(track.utf8)
        let clock = ContinuousClock()
        let start = clock.now
        for (index, offset) in stride(from: 0, to: samples.count, by: frame).enumerated() {
            let chunk = Array(samples[offset..<min(offset + frame, samples.count)])
            outgoing.yield(.binary(header + PCM.int16LittleEndian(from: chunk)))
            if realtime { try await Task.sleep(until: start + .seconds(Double(index + 1) * frameSeconds), clock: clock) }
        }
    }

    /// Sends one binary audio frame of 16 kHz samples for `track`.
    public func send(samples: [Float], track: String) {
        outgoing.yield(.binary([UInt8(track.utf8.count)] + Array(track.utf8) + PCM.int16LittleEndian(from: samples)))
    }

    /// Every message received so far, parsed, with the moment it arrived.
    public func timedMessages() async -> [(arrived: ContinuousClock.Instant, message: [String: Any])] {
        let (texts, arrivals) = await (inbox.texts, inbox.arrivals)
        return zip(arrivals, texts).compactMap { arrived, text in
            (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]).map { (arrived, $0) }
        }
    }

    /// Every message received so far, parsed.
    public func messages() async -> [[String: Any]] {
        await inbox.texts.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// Waits for the first message (after the first `skip`) that satisfies `matches`.
    @discardableResult
    public func waitFor(
        _ what: String, timeout: Duration = .seconds(60), skip: Int = 0, _ matches: @escaping ([String: Any]) -> Bool
    ) async throws -> [String: Any] {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let found = await messages().dropFirst(skip).first(where: matches) { return found }
            if await inbox.isClosed { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw BenchmarkError("no \(what) within \(timeout); received: \(await inbox.texts.suffix(5))")
    }

    /// Waits for a message of `type`.
    @discardableResult
    public func waitFor(type: String, timeout: Duration = .seconds(60), skip: Int = 0) async throws -> [String: Any] {
        try await waitFor(type, timeout: timeout, skip: skip) { $0["type"] as? String == type }
    }

    /// How many messages have arrived.
    public var messageCount: Int { get async { await inbox.texts.count } }

    /// True once the server closed the connection.
    public var isClosed: Bool { get async { await inbox.isClosed } }

    /// Closes the connection and waits for it to end.
    public func close() async {
        outgoing.finish()
        connection.cancel()
        _ = await connection.result
    }

    private actor Inbox {
        private(set) var texts: [String] = []
        private(set) var arrivals: [ContinuousClock.Instant] = []
        private(set) var isOpen = false
        private(set) var isClosed = false
        func append(_ text: String, at instant: ContinuousClock.Instant) {
            texts.append(text)
            arrivals.append(instant)
        }
        func markOpen() { isOpen = true }
        func markClosed() { isClosed = true }
    }
}
