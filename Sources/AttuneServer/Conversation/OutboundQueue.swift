import AttuneCore
import HummingbirdWebSocket
import Logging
import NIOCore
import Synchronization

/// What the session sends: JSON events, and binary frames of reply audio (each right after the
/// `reply_audio` event that describes it).
enum Outbound: Sendable {
    case event(ServerEvent)
    case audio([UInt8])
    /// A message already encoded as JSON (the rooms protocol).
    case json(String)
}

/// Where a reply's events and audio go: a client's socket queue, or a collector that answers
/// one HTTP request (`POST /api/converse`).
protocol OutboundSink: Sendable {
    func yield(_ outbound: Outbound)
}

/// A frame ready for the socket.
enum OutboundFrame: Sendable {
    case text(String)
    case binary([UInt8])

    var byteCount: Int {
        switch self {
        case .text(let text): text.utf8.count
        case .binary(let bytes): bytes.count
        }
    }
}

/// The frames waiting to be written to one client, bounded in number and bytes.
///
/// The writer awaits each send, so a client that does not read holds frames here. Once more
/// than `maxMessages` or `maxBytes` wait, the queue stops accepting (``overflowed``) and the
/// session disconnects the client instead of letting memory grow.
final class OutboundQueue: OutboundSink {
    let maxMessages: Int
    let maxBytes: Int
    let frames: AsyncStream<OutboundFrame>
    private let continuation: AsyncStream<OutboundFrame>.Continuation
    private let state = Mutex((messages: 0, bytes: 0, overflowed: false))

    init(maxMessages: Int, maxBytes: Int) {
        self.maxMessages = maxMessages
        self.maxBytes = maxBytes
        (frames, continuation) = AsyncStream.makeStream(of: OutboundFrame.self, bufferingPolicy: .unbounded)
    }

    func yield(_ outbound: Outbound) {
        let frame: OutboundFrame
        switch outbound {
        case .event(let event): frame = .text(event.json)
        case .audio(let bytes): frame = .binary(bytes)
        case .json(let text): frame = .text(text)
        }
        let size = frame.byteCount
        let accepted = state.withLock { state in
            guard !state.overflowed else { return false }
            guard state.messages < maxMessages, state.bytes + size <= maxBytes else {
                state.overflowed = true
                return false
            }
            state.messages += 1
            state.bytes += size
            return true
        }
        if accepted {
            continuation.yield(frame)
        } else {
            continuation.finish()
        }
    }

    func yield(_ event: ServerEvent) { yield(.event(event)) }

    /// The writer has sent `frame`.
    func sent(_ frame: OutboundFrame) {
        state.withLock {
            $0.messages -= 1
            $0.bytes -= frame.byteCount
        }
    }

    /// True once the client fell too far behind; nothing more is queued.
    var overflowed: Bool { state.withLock { $0.overflowed } }

    /// What the close frame says to a client that fell behind.
    var overflowReason: String {
        "client is not reading: more than \(maxMessages) events or \(maxBytes) bytes waiting (settings stream.max_outbound_messages, stream.max_outbound_bytes)"
    }

    func finish() { continuation.finish() }

    /// Sends the frames in order until the queue finishes or the connection fails.
    func write(to outbound: WebSocketOutboundWriter, logger: Logger) async {
        do {
            for await frame in frames {
                switch frame {
                case .text(let text): try await outbound.write(.text(text))
                case .binary(let bytes): try await outbound.write(.binary(ByteBuffer(bytes: bytes)))
                }
                sent(frame)
            }
        } catch {
            logger.debug("writer stopped: \(error)")
        }
    }
}

/// The error events a session may be sent: 10 a second, bursts of 20. A client sending garbage
/// gets a few errors a second, not one per frame.
final class ErrorBudget: Sendable {
    private let budget = Mutex(RateBudget(rate: 10, burst: 20))
    func take() -> Bool { budget.withLock { $0.take() } }
}

/// A token bucket: `rate` events per second on average, `burst` at once.
struct RateBudget {
    let rate: Double
    let burst: Double
    private var tokens: Double
    private var updated = ContinuousClock.now

    init(rate: Double, burst: Double) {
        self.rate = rate
        self.burst = burst
        self.tokens = burst
    }

    /// Takes one token if there is one.
    mutating func take(at now: ContinuousClock.Instant = .now) -> Bool {
        tokens = min(burst, tokens + (now - updated).milliseconds / 1_000 * rate)
        updated = now
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}
