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
            guard session.isConnected,
                let array = try? JSONSerialization.jsonObject(with: Data(rest.utf8)) as? [Any],
                let name = array.first as? String
            else { return }
            let answer = await event(name, arguments: Array(array.dropFirst()), from: session)
            if !ack.isEmpty, let answer { session.send("43\(ack)" + Self.json([answer])) }
        default:
            break
        }
    }

    /// Runs an event; returns what an acknowledgement carries.
    private func event(_ name: String, arguments: [Any], from session: EngineSession) async -> Any? {
        guard name == "video_frame" else { return nil }
        let body = arguments.first
        let frame = (body as? [String: Any])?["frame"] as? String ?? body as? String
        let timestamp = Self.number((body as? [String: Any])?["timestamp"])
        guard let frame else {
            return emitError("video_frame needs {\"frame\": \"data:image/jpeg;base64,...\"}", to: session)
        }
        guard let face = components.face else {
            return emitError("face emotion is unavailable: the face models did not load", to: session)
        }
        guard sessions.withLock({ $0[session.sid]?.frames.take() }) == true else {
            return nil  // over face.max_fps: dropped and counted
        }
        do {
            let bytes = try face.decoder.frameBytes(frame)
            let reading = try await components.readFrame(bytes, analyzer: face)
            let result = FrameResult(reading, timestamp: timestamp ?? Date().timeIntervalSince1970)
            let object = Self.object(result)
            session.send("42" + Self.json(["emotion_processed", object]))
            let update: [String: Any] = [
                "emotion": object["emotion"] ?? NSNull(), "confidence": object["confidence"] ?? 0,
                "face_detected": object["face_detected"] ?? false, "timestamp": object["timestamp"] ?? 0,
            ]
            broadcast("42" + Self.json(["emotion_update", update]))
            return object
        } catch let error as ImageError {
            return emitError("frame refused: \(error)", to: session)
        } catch {
            return emitError("\(error)", to: session)
        }
    }

    private func emitError(_ message: String, to session: EngineSession) -> Any {
        let body = ["error": message]
        session.send("42" + Self.json(["emotion_error", body]))
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

    static func object(_ result: FrameResult) -> [String: Any] {
        let data = (try? JSONEncoder().encode(result)) ?? Data("{}".utf8)
        return (try? JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
    }

    static func number(_ value: Any?) -> Double? {
        switch value {
        case let number as NSNumber: number.doubleValue
        case let string as String: Double(string)
        default: nil
        }
    }
}

/// Frames a Socket.IO session may have analysed, `face.max_fps` a second; the rest are counted.
final class FrameBudget: Sendable {
    private let state: Mutex<(budget: RateBudget, dropped: Int)>

    init(maxFramesPerSecond: Double) {
        state = Mutex((RateBudget(rate: maxFramesPerSecond, burst: max(1, maxFramesPerSecond)), 0))
    }

    func take() -> Bool {
        state.withLock { state in
            if state.budget.take() { return true }
            state.dropped += 1
            return false
        }
    }

    var dropped: Int { state.withLock { $0.dropped } }
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
