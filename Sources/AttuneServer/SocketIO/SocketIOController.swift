import AttuneCore
import AttuneFace
import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// The Socket.IO video API of the design Attune's face channel comes from, so that its
/// socket.io-client 4.x frontend works unchanged: Engine.IO v4 at `/socket.io/` (long-polling
/// handshake, then an upgrade to WebSocket; or WebSocket from the start) carrying Socket.IO v5
/// packets on the namespace `/`. Events: `video_frame` in (`{"frame": data URL, "timestamp"}`
/// or the data URL alone); `emotion_processed` (the frame's full reading, to the sender),
/// `emotion_update` (`{emotion, confidence, face_detected, timestamp}`, to every connected
/// client) and `emotion_error` (`{"error": message}`) out. Binary attachments and other
/// namespaces are not offered.
final class SocketIOHub: Sendable {
    static let paths: Set<String> = ["/socket.io", "/socket.io/"]
    let settings: SocketIOSettings
    private let components: ServerComponents
    private let sessions = Mutex<[String: Entry]>([:])

    private struct Entry: Sendable {
        let session: EngineSession
        let frames: FrameBudget
    }

    init(components: ServerComponents, settings: SocketIOSettings) {
        self.components = components
        self.settings = settings
    }

    // MARK: - Sessions

    /// A new session, or nil when `socketio.max_sessions` are open.
    func open(_ transport: EngineSession.Transport) -> EngineSession? {
        let session = EngineSession(sid: Self.identifier(), transport: transport, limit: settings.maxQueuedPackets)
        let frames = FrameBudget(maxFramesPerSecond: components.faceSettings.maxFramesPerSecond)
        let opened = sessions.withLock { sessions -> Bool in
            guard sessions.count < settings.maxSessions else { return false }
            sessions[session.sid] = Entry(session: session, frames: frames)
            return true
        }
        return opened ? session : nil
    }

    func session(_ sid: String) -> EngineSession? { sessions.withLock { $0[sid]?.session } }

    func close(_ session: EngineSession) {
        session.close()
        sessions.withLock { _ = $0.removeValue(forKey: session.sid) }
    }

    /// Engine.IO's open packet.
    func handshake(_ session: EngineSession) -> String {
        let object: [String: Any] = [
            "sid": session.sid, "upgrades": session.transport == .polling ? ["websocket"] : [],
            "pingInterval": Int(settings.pingInterval * 1_000), "pingTimeout": Int(settings.pingTimeout * 1_000),
            "maxPayload": settings.maxPayload,
        ]
        return "0" + Self.json(object)
    }

    /// Pings every session when due and drops those whose client went away; runs until cancelled.
    func runClock() async {
        let interval = Duration.milliseconds(Int64(settings.pingInterval * 1_000))
        let timeout = Duration.milliseconds(Int64(settings.pingTimeout * 1_000))
        while !Task.isCancelled {
            let now = ContinuousClock.now
            let entries = sessions.withLock { Array($0.values) }
            for entry in entries where !entry.session.tick(now: now, interval: interval, timeout: timeout) {
                sessions.withLock { _ = $0.removeValue(forKey: entry.session.sid) }
            }
            try? await Task.sleep(for: .milliseconds(250))
        }
        for entry in sessions.withLock({ Array($0.values) }) { entry.session.close() }
    }

    // MARK: - Packets

    /// Handles one Engine.IO packet from the client (`5` and `2probe` are the WebSocket's own).
    func receive(_ packet: String, from session: EngineSession) async {
        guard let type = packet.first else { return }
        switch type {
        case "3": session.pong()
        case "1": close(session)
        case "4": await message(String(packet.dropFirst()), from: session)
        default: break  // 6 (noop), and anything Engine.IO v4 does not define
        }
    }

    /// A Socket.IO packet: `0` connect, `1` disconnect, `2` event (`2["name", …]`, optionally
    /// with an acknowledgement id before the array).
    private func message(_ text: String, from session: EngineSession) async {
        guard let type = text.first else { return }
        var rest = text.dropFirst()
        if rest.hasPrefix("/") {
            // Only the main namespace is served.
            let namespace = rest.prefix { $0 != "," }
            session.send("44\(namespace)," + Self.json(["message": "Invalid namespace"]))
            return
        }
        switch type {
        case "0":
            session.markConnected()
            session.send("40" + Self.json(["sid": Self.identifier()]))
        case "1":
            close(session)
        case "2":
            let ack = rest.prefix { $0.isNumber }
            rest = rest.dropFirst(ack.count)
            guard session.isConnected, let event = try? JSONDecoder().decode(SocketIOEvent.self, from: Data(rest.utf8)) else { return }
            if let answer = await handle(event, from: session), !ack.isEmpty { session.send("43\(ack)[\(answer)]") }
        default:
            break
        }
    }

    /// Runs an event; returns what an acknowledgement carries, as JSON.
    private func handle(_ event: SocketIOEvent, from session: EngineSession) async -> String? {
        guard event.name == "video_frame" else { return nil }
        guard let request = event.frame else {
            return emitError("video_frame needs {\"frame\": \"data:image/jpeg;base64,...\"}", to: session)
        }
        guard let channel = components.faceChannel else {
            return emitError("face emotion is unavailable: the face models did not load", to: session)
        }
        guard sessions.withLock({ $0[session.sid]?.frames.take() }) == true else {
            return nil  // over face.max_fps: dropped and counted
        }
        do {
            let result = FrameResult(try await channel.read(request.frame), timestamp: request.timestamp ?? Date().timeIntervalSince1970)
            let processed = Self.encoded(result)
            session.send(Self.event("emotion_processed", processed))
            broadcast(Self.event("emotion_update", Self.encoded(FrameUpdate(result))))
            return processed
        } catch {
            return emitError(FaceChannel.failure(error).message, to: session)
        }
    }

    private func emitError(_ message: String, to session: EngineSession) -> String {
        let body = Self.encoded(["error": message])
        session.send(Self.event("emotion_error", body))
        return body
    }

    private func broadcast(_ packet: String) {
        for entry in sessions.withLock({ Array($0.values) }) where entry.session.isConnected {
            entry.session.send(packet)
        }
    }

    // MARK: - Helpers

    static func identifier() -> String {
        Data((0..<15).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
    }

    static func json(_ value: Any) -> String {
        String(decoding: (try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys])) ?? Data("{}".utf8), as: UTF8.self)
    }

    /// A value as sorted JSON.
    static func encoded(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: (try? encoder.encode(value)) ?? Data("{}".utf8), as: UTF8.self)
    }

    /// A Socket.IO event packet carrying one JSON argument.
    static func event(_ name: String, _ payload: String) -> String {
        "42[" + encoded(name) + "," + payload + "]"
    }
}

/// A Socket.IO event from the client: its name, and for `video_frame` the frame (an object
/// `{frame, timestamp}` or the data URL alone) when the first argument is one.
struct SocketIOEvent: Decodable {
    let name: String
    let frame: FrameRequest?

    init(from decoder: any Decoder) throws {
        var arguments = try decoder.unkeyedContainer()
        name = try arguments.decode(String.self)
        frame = arguments.isAtEnd ? nil : try? arguments.decode(FrameRequest.self)
    }
}

/// What `emotion_update` broadcasts: the frame's result without its faces.
struct FrameUpdate: Encodable {
    let emotion: String?
    let confidence: Double
    let faceDetected: Bool
    let timestamp: Double

    init(_ result: FrameResult) {
        (emotion, confidence, faceDetected, timestamp) = (result.emotion, result.confidence, result.faceDetected, result.timestamp)
    }

    enum CodingKeys: String, CodingKey {
        case emotion, confidence, timestamp
        case faceDetected = "face_detected"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(emotion, forKey: .emotion)  // null, not absent, without a face
        try container.encode(confidence, forKey: .confidence)
        try container.encode(faceDetected, forKey: .faceDetected)
        try container.encode(timestamp, forKey: .timestamp)
    }
}

/// The hub's ping clock, run by the service group.
struct SocketIOClock: Service {
    let hub: SocketIOHub

    func run() async throws {
        await cancelWhenGracefulShutdown { await hub.runClock() }
    }
}

/// The routes of `/socket.io/`: long-polling on the HTTP router, WebSocket on the upgrade router.
struct SocketIOController: Sendable {
    let hub: SocketIOHub

    /// Engine.IO's error body (`code`, `message`, which Socket.IO clients read), with Attune's
    /// own `error` object beside it, as every other route answers.
    private struct EngineError: Encodable {
        struct Detail: Encodable {
            let status: Int
            let reason: String
            let message: String
        }

        let code: Int
        let message: String
        let error: Detail
    }

    private func failure(_ code: Int, _ message: String, status: HTTPResponse.Status = .badRequest) -> Response {
        let detail = EngineError.Detail(status: status.code, reason: status.reasonPhrase, message: message)
        let body = (try? JSONEncoder().encode(EngineError(code: code, message: message, error: detail))) ?? Data()
        var headers: HTTPFields = [.contentType: "application/json"]
        if status == .serviceUnavailable { headers[.retryAfter] = "5" }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(data: body)))
    }

    private func text(_ body: String) -> Response {
        Response(status: .ok, headers: [.contentType: "text/plain; charset=UTF-8"], body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    func addRoutes(to router: Router<some RequestContext>, catalog: RouteCatalog) {
        router.on("/socket.io/", method: .get, catalog: catalog) { request, _ -> Response in
            let query = request.uri.queryParameters
            guard query["EIO"] == "4" else { return failure(5, "Unsupported protocol version") }
            guard query["transport"] == "polling" else { return failure(0, "Transport unknown") }
            guard let sid = query["sid"].map(String.init) else {
                guard let session = hub.open(.polling) else {
                    return failure(3, "Too many sessions (setting socketio.max_sessions)", status: .serviceUnavailable)
                }
                return text(hub.handshake(session))
            }
            guard let session = hub.session(sid) else { return failure(1, "Session ID unknown") }
            guard session.transport == .polling else { return failure(3, "Bad request: the session has moved to WebSocket") }
            guard let packets = await session.next() else { return text("1") }
            return text(EnginePayload.join(packets.isEmpty ? ["6"] : packets))
        }

        router.on("/socket.io/", method: .post, catalog: catalog) { request, _ -> Response in
            var request = request
            let query = request.uri.queryParameters
            guard query["EIO"] == "4" else { return failure(5, "Unsupported protocol version") }
            guard query["transport"] == "polling", let sid = query["sid"].map(String.init), let session = hub.session(sid) else {
                return failure(1, "Session ID unknown")
            }
            let body = try await request.collectBody(upTo: hub.settings.maxPayload)
            for packet in EnginePayload.split(String(buffer: body)) {
                await hub.receive(packet, from: session)
            }
            return text("ok")
        }
    }

    func addWebSocketRoutes(to router: Router<AttuneWebSocketContext>) {
        router.ws("/socket.io/") { inbound, outbound, context in
            let query = context.request.uri.queryParameters
            guard query["EIO"] == "4", query["transport"] == "websocket" else {
                try? await outbound.close(.unknown(1008), reason: "EIO=4&transport=websocket expected")
                return
            }
            let session: EngineSession
            var probing = false
            if let sid = query["sid"].map(String.init) {
                guard let existing = hub.session(sid), !existing.isClosed else {
                    try? await outbound.close(.unknown(1008), reason: "Session ID unknown")
                    return
                }
                session = existing
                probing = true
            } else {
                guard let opened = hub.open(.websocket) else {
                    try? await outbound.close(.unknown(1013), reason: "too many sessions (setting socketio.max_sessions)")
                    return
                }
                session = opened
                try? await outbound.write(.text(hub.handshake(session)))
            }
            await withTaskGroup(of: Void.self) { group in
                // The writer: packets in order, until the session closes.
                if !probing { group.addTask { await Self.write(session, to: outbound) } }
                do {
                    for try await message in inbound.messages(maxSize: hub.settings.maxPayload) {
                        guard case .text(let packet) = message else { continue }
                        if probing {
                            if packet == "2probe" {
                                try? await outbound.write(.text("3probe"))
                            } else if packet == "5" {
                                probing = false
                                session.upgrade()
                                group.addTask { await Self.write(session, to: outbound) }
                            }
                            continue
                        }
                        await hub.receive(packet, from: session)
                    }
                } catch {}
                hub.close(session)
                group.cancelAll()
            }
        }
    }

    private static func write(_ session: EngineSession, to outbound: WebSocketOutboundWriter) async {
        while !Task.isCancelled, let packets = await session.next() {
            for packet in packets where packet != "6" {
                do { try await outbound.write(.text(packet)) } catch { session.close(); return }
            }
        }
        try? await outbound.close(.normalClosure, reason: nil)
    }
}
