import Foundation
import Synchronization

/// Settings of the Socket.IO endpoint (`/socket.io/`).
public struct SocketIOSettings: Sendable, Equatable {
    /// How often the server pings a client, and how long it waits for the pong (Engine.IO's own
    /// defaults: 25 s and 20 s).
    public var pingInterval = 25.0
    public var pingTimeout = 20.0
    /// Largest payload one message or one polling request may carry, in bytes.
    public var maxPayload = 1_000_000
    /// Packets waiting for a client before it is disconnected as too slow.
    public var maxQueuedPackets = 64
    /// Socket.IO sessions at once.
    public var maxSessions = 100

    public init() {}
}

/// One Engine.IO v4 session: the packets waiting for its client, delivered by long-polling GETs
/// or, after an upgrade, by its WebSocket, and its ping clock. At most one consumer waits at a
/// time; packets are text, as Engine.IO v4 frames them (a type digit, then the data).
final class EngineSession: Sendable {
    enum Transport: Sendable { case polling, websocket }

    let sid: String
    private let limit: Int
    private let state: Mutex<State>

    private struct State {
        var queue: [String] = []
        var waiter: CheckedContinuation<[String]?, Never>?
        var waiterID: UUID?
        var closed = false
        var transport: Transport
        var lastPing: ContinuousClock.Instant?
        var lastPingSent = ContinuousClock.now
        /// Whether the client has connected to the Socket.IO namespace `/`.
        var connected = false
    }

    init(sid: String, transport: Transport, limit: Int) {
        self.sid = sid
        self.limit = limit
        state = Mutex(State(transport: transport))
    }

    var isClosed: Bool { state.withLock { $0.closed } }
    var isConnected: Bool { state.withLock { $0.connected && !$0.closed } }
    var transport: Transport { state.withLock { $0.transport } }

    func markConnected() { state.withLock { $0.connected = true } }

    /// Queues a packet for the client; a client that lets `limit` packets pile up is closed.
    func send(_ packet: String) {
        let delivery = state.withLock { state -> (CheckedContinuation<[String]?, Never>, [String]?)? in
            guard !state.closed else { return nil }
            state.queue.append(packet)
            if state.queue.count > limit {
                state.closed = true
                state.queue = []
            }
            guard let waiter = state.waiter else { return nil }
            state.waiter = nil
            state.waiterID = nil
            if state.closed { return (waiter, nil) }
            defer { state.queue = [] }
            return (waiter, state.queue)
        }
        if let (waiter, packets) = delivery { waiter.resume(returning: packets) }
    }

    /// The queued packets, waiting for at least one; nil once the session is closed. A waiting
    /// consumer whose task is cancelled gets an empty list.
    func next() async -> [String]? {
        let id = UUID()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<[String]?, Never>) in
                let ready = state.withLock { state -> [String]?? in
                    if state.closed { return .some(nil) }
                    if !state.queue.isEmpty {
                        defer { state.queue = [] }
                        return .some(state.queue)
                    }
                    if Task.isCancelled { return .some([]) }
                    // A newer consumer replaces an older one (a second GET, or the WebSocket
                    // after an upgrade): the older gets a noop packet and returns.
                    state.waiter?.resume(returning: ["6"])
                    state.waiter = continuation
                    state.waiterID = id
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<[String]?, Never>? in
                guard state.waiterID == id else { return nil }
                defer { state.waiter = nil; state.waiterID = nil }
                return state.waiter
            }
            waiter?.resume(returning: [])
        }
    }

    /// Switches delivery to the WebSocket: a long-poll still waiting returns a noop.
    func upgrade() {
        let waiter = state.withLock { state -> CheckedContinuation<[String]?, Never>? in
            state.transport = .websocket
            defer { state.waiter = nil; state.waiterID = nil }
            return state.waiter
        }
        waiter?.resume(returning: ["6"])
    }

    func pong() { state.withLock { $0.lastPing = nil } }

    /// Called by the clock: sends a ping when one is due; closes the session when a ping went
    /// unanswered for `timeout`. Returns false once the session is closed.
    func tick(now: ContinuousClock.Instant, interval: Duration, timeout: Duration) -> Bool {
        let (due, expired) = state.withLock { state -> (Bool, Bool) in
            if state.closed { return (false, true) }
            if let ping = state.lastPing, now - ping > timeout { return (false, true) }
            if state.lastPing == nil, now - state.lastPingSent >= interval {
                state.lastPing = now
                state.lastPingSent = now
                return (true, false)
            }
            return (false, false)
        }
        if expired {
            close()
            return false
        }
        if due { send("2") }
        return true
    }

    func close() {
        let waiter = state.withLock { state -> CheckedContinuation<[String]?, Never>? in
            state.closed = true
            state.queue = []
            defer { state.waiter = nil; state.waiterID = nil }
            return state.waiter
        }
        waiter?.resume(returning: nil)
    }
}

/// Splits and joins Engine.IO v4 long-polling payloads (packets separated by the record
/// separator, 0x1E).
enum EnginePayload {
    static let separator: Character = "\u{1E}"

    static func split(_ body: String) -> [String] {
        body.split(separator: separator, omittingEmptySubsequences: true).map(String.init)
    }

    static func join(_ packets: [String]) -> String {
        packets.joined(separator: String(separator))
    }
}
