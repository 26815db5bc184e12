import AttuneAudio
import Foundation
import HTTPTypes
import HummingbirdWSClient
import Logging
import NIOCore

/// An event as a client received it, with the time it arrived.
public struct ReceivedEvent: Sendable {
    public let type: String
    public let fields: [String: String]
    public let arrival: ContinuousClock.Instant
    /// For binary frames (type `audio_frame`): their bytes, PCM16 reply audio.
    public var audio: [UInt8] = []

    public subscript(_ key: String) -> String? { fields[key] }
    public func number(_ key: String) -> Double? { fields[key].flatMap(Double.init) }
    /// A field that holds a JSON array of strings (`reply_done`'s `rejected`); empty when absent.
    public func strings(_ key: String) -> [String] {
        (try? JSONSerialization.jsonObject(with: Data((fields[key] ?? "[]").utf8))) as? [String] ?? []
    }
}

/// Drives one `/ws/conversation` session the way the browser does: PCM16 frames at 16 kHz,
/// paced like a live microphone.
public struct ConversationClient: Sendable {
    public let port: Int
    /// Length of each binary frame, in seconds (the browser sends 20 ms).
    public var frameSeconds = 0.02
    /// 1 streams in real time; 0 as fast as the server reads.
    public var pace = 1.0
    /// Silence sent after the audio, so the server can hear the turn end.
    public var trailingSilence = 1.2
    /// How long to wait for the events after the audio is sent.
    public var settleTimeout: Duration = .seconds(15)
    /// Appended to the URL, e.g. `?token=...`.
    public var query = ""
    /// Sent with the upgrade request, e.g. `Origin`.
    public var headers: [String: String] = [:]
    /// Each stops sending at its `sample` of the audio until its `until` holds for the events
    /// received so far, then goes on at the same pace: for audio that must wait for what the
    /// server said (a pause's transcript, the reply to the turn before). A gate not opened within
    /// `settleTimeout` ends the stream. When one opens, a `client_audio_resumed` event (with its
    /// `sample`) marks the instant, so later stream times can be turned into instants.
    public var gates: [Gate] = []

    public struct Gate: Sendable {
        public var sample: Int
        public var until: @Sendable ([ReceivedEvent]) -> Bool

        public init(sample: Int, until: @escaping @Sendable ([ReceivedEvent]) -> Bool) {
            self.sample = sample
            self.until = until
        }
    }

    public init(port: Int) {
        self.port = port
    }

    /// A message to send on its own, before or between audio frames.
    public enum Extra: Sendable {
        case text(String)
        case binary([UInt8])
    }

    /// Streams `samples` (16 kHz mono) and returns every event received, stopping once
    /// `until` is satisfied by the events so far or the settle timeout passes. `react` may answer
    /// an arriving event with messages to send (a playback report, the next typed turn).
    public func stream(
        _ samples: [Float], before extras: [Extra] = [], after trailing: [Extra] = [],
        until done: @escaping @Sendable ([ReceivedEvent]) -> Bool = ConversationClient.allFinalsArrived,
        react: @escaping @Sendable (ReceivedEvent, [ReceivedEvent]) -> [Extra] = { _, _ in [] }
    ) async throws -> [ReceivedEvent] {
        let frame = Int(frameSeconds * 16_000)
        let audio = samples + [Float](repeating: 0, count: Int(trailingSilence * 16_000))
        let collected = EventLog()
        var logger = Logger(label: "attune-bench-client")
        logger.logLevel = .warning
        let pace = self.pace
        let frameSeconds = self.frameSeconds
        let settleTimeout = self.settleTimeout
        let gates = self.gates.sorted { $0.sample < $1.sample }
        var additionalHeaders = HTTPFields()
        for (name, value) in headers {
            if let field = HTTPField.Name(name) { additionalHeaders[field] = value }
        }
        try await WebSocketClient.connect(
            url: "ws://127.0.0.1:\(port)/ws/conversation\(query)",
            configuration: .init(maxFrameSize: 1 << 22, additionalHeaders: additionalHeaders), logger: logger
        ) { inbound, outbound, _ in
            await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for try await message in inbound.messages(maxSize: 1 << 22) {
                        var event: ReceivedEvent
                        switch message {
                        case .text(let text):
                            event = Self.parse(text)
                        case .binary(let buffer):
                            event = ReceivedEvent(type: "audio_frame", fields: ["bytes": String(buffer.readableBytes)], arrival: .now)
                            event.audio = Array(buffer.readableBytesView)
                        }
                        await collected.append(event)
                        let events = await collected.events
                        for reply in react(event, events) {
                            switch reply {
                            case .text(let text): try await outbound.write(.text(text))
                            case .binary(let bytes): try await outbound.write(.binary(ByteBuffer(bytes: bytes)))
                            }
                        }
                        if done(events) { return }
                    }
                }
                group.addTask {
                    func send(_ extras: [Extra]) async throws {
                        for extra in extras {
                            switch extra {
                            case .text(let text): try await outbound.write(.text(text))
                            case .binary(let bytes): try await outbound.write(.binary(ByteBuffer(bytes: bytes)))
                            }
                        }
                    }
                    try await send(extras)
                    let clock = ContinuousClock()
                    var start = clock.now
                    // Marks the instant the audio began, so stream times become instants.
                    await collected.append(ReceivedEvent(type: "client_audio_started", fields: [:], arrival: start))
                    var nextGate = 0
                    for (index, offset) in stride(from: 0, to: audio.count, by: frame).enumerated() {
                        while nextGate < gates.count, offset >= gates[nextGate].sample {
                            let gate = gates[nextGate]
                            nextGate += 1
                            let waitStarted = clock.now
                            while !gate.until(await collected.events) {
                                guard clock.now - waitStarted < settleTimeout else { throw CancellationError() }
                                try await Task.sleep(for: .milliseconds(10))
                            }
                            start = start + (clock.now - waitStarted)
                            await collected.append(ReceivedEvent(type: "client_audio_resumed", fields: ["sample": String(offset)], arrival: clock.now))
                        }
                        let chunk = Array(audio[offset..<min(offset + frame, audio.count)])
                        try await outbound.write(.binary(ByteBuffer(bytes: PCM.int16LittleEndian(from: chunk))))
                        if pace > 0 {
                            try await Task.sleep(until: start + .seconds(Double(index + 1) * frameSeconds / pace), clock: clock)
                        }
                    }
                    try await send(trailing)
                    try await Task.sleep(for: settleTimeout)
                    throw CancellationError()
                }
                // Whichever finishes first ends the session: the reader (done) or the writer (timed out).
                _ = try? await group.next()
                group.cancelAll()
            }
            try? await outbound.close(.normalClosure, reason: nil)
        }
        return await collected.events
    }

    /// The JSON of a typed turn (`user_text`).
    public static func userText(_ text: String) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: ["type": "user_text", "text": text])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    /// Done when every utterance that ended has its final transcript (or an error said why not).
    public static let allFinalsArrived: @Sendable ([ReceivedEvent]) -> Bool = { events in
        let ended = events.filter { $0.type == "speech_ended" }.count
        let finals = events.filter { $0.type == "transcript_final" }.count
        let failures: Set<String> = ["busy", "transcription_failed", "unavailable"]
        let errors = events.filter { $0.type == "error" && failures.contains($0["code"] ?? "") }.count
        return ended > 0 && finals + errors >= ended
    }

    static func parse(_ text: String) -> ReceivedEvent {
        let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
        var fields: [String: String] = [:]
        for (key, value) in object {
            switch value {
            case let string as String: fields[key] = string
            case let number as NSNumber: fields[key] = number.stringValue
            default:
                if let data = try? JSONSerialization.data(withJSONObject: value) {
                    fields[key] = String(decoding: data, as: UTF8.self)
                }
            }
        }
        return ReceivedEvent(type: fields["type"] ?? "", fields: fields, arrival: .now)
    }
}

private actor EventLog {
    var events: [ReceivedEvent] = []

    func append(_ event: ReceivedEvent) {
        events.append(event)
    }
}
