import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOHTTP1
import NIOWebSocket

/// The request context of WebSocket upgrades: the usual one, plus the channel, so that a session
/// can drop a connection whose client stopped reading.
struct AttuneWebSocketContext: RequestContext, WebSocketRequestContext {
    var coreContext: CoreRequestContextStorage
    let webSocket: WebSocketHandlerReference<Self>
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        webSocket = .init()
        channel = source.channel
    }
}

/// The live WebSocket sessions: `/ws/conversation` (the companion) and `/ws/rooms` (rooms of
/// several participants).
///
/// An upgrade is refused with 403, 401 or 503 and a JSON error (by ``UpgradeGuardHandler``)
/// when its `Host` or `Origin` is not allowed, its token is missing or wrong, or
/// `stream.max_sessions` sessions are already live.
struct ConversationController: Sendable {
    static let path = "/ws/conversation"
    static let roomsPath = "/ws/rooms"
    static let paths: Set<String> = [path, roomsPath]
    let components: ServerComponents
    let access: AccessPolicy

    /// Why an upgrade request is refused (403, 401, 503), or nil; checked by the
    /// ``UpgradeGuardHandler`` before Hummingbird sees the request.
    func refusal(path: String, head: HTTPRequestHead) -> HTTPError? {
        let query = head.uri.split(separator: "?", maxSplits: 1).dropFirst().first.map(String.init) ?? ""
        let token = query.split(separator: "&").first { $0.hasPrefix("token=") }.map { String($0.dropFirst(6)).removingPercentEncoding ?? "" }
        if let refusal = access.refusal(
            path: path, queryToken: token, authority: head.headers["host"].first, origin: head.headers["origin"].first,
            authorization: head.headers["authorization"].first)
        {
            return refusal
        }
        let sessions = components.sessions
        guard sessions.current < sessions.limit else {
            return HTTPError(
                .serviceUnavailable, headers: [.retryAfter: "5"],
                message: "\(sessions.limit) sessions are live, the most this server takes (setting stream.max_sessions)")
        }
        return nil
    }

    func addRoutes(to router: Router<AttuneWebSocketContext>) {
        let (companion, rooms) = (components.companion, components.roomServices)
        serve(Self.path, on: router) { connection, inbound, outbound, logger in
            await ConversationSession(services: companion, connection: connection, logger: logger).run(inbound: inbound, outbound: outbound)
        }
        serve(Self.roomsPath, on: router) { connection, inbound, outbound, logger in
            await RoomSession(services: rooms, connection: connection, logger: logger).run(inbound: inbound, outbound: outbound)
        }
    }

    /// Runs `session` for each upgrade on `path`, within `stream.max_sessions`.
    private func serve(
        _ path: String, on router: Router<AttuneWebSocketContext>,
        session: @escaping @Sendable (SessionConnection, WebSocketInboundStream, WebSocketOutboundWriter, Logger) async -> Void
    ) {
        let sessions = components.sessions
        router.ws(RouterPath(path)) { inbound, outbound, context in
            let channel = context.requestContext.channel
            let connection = SessionConnection { code, reason in
                await Self.close(outbound: outbound, channel: channel, code: code, reason: reason)
            }
            // Upgrades race for the last places: the loser is closed at once.
            guard sessions.claim() else {
                await connection.close(.unknown(1013), "too many sessions (setting stream.max_sessions); try again later")
                return
            }
            defer { sessions.release() }
            await session(connection, inbound, outbound, context.logger)
        }
    }

    /// Plain HTTP requests to the WebSocket paths.
    func addFallbackRoutes(to router: Router<some RequestContext>, catalog: RouteCatalog) {
        for path in Self.paths.sorted() {
            router.on(path, method: .get, catalog: catalog) { _, _ -> Response in
                throw HTTPError(.upgradeRequired, headers: [.upgrade: "websocket"], message: "this path takes WebSocket upgrades only")
            }
        }
    }

    /// Sends the close frame and drops the connection if the client has not completed the
    /// closing handshake within three seconds (a client that does not read never does, and its
    /// full socket blocks the close frame itself until then).
    private static func close(outbound: WebSocketOutboundWriter, channel: any Channel, code: WebSocketErrorCode, reason: String) async {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                try? await outbound.close(code, reason: String(reason.prefix(120)))
                return false
            }
            group.addTask {
                try? await channel.closeFuture.get()
                return true
            }
            group.addTask {
                do {
                    try await Task.sleep(for: .seconds(3))
                    try await channel.close()
                } catch {}
                return false
            }
            while let closed = await group.next() {
                if closed { group.cancelAll() }
            }
        }
    }

    /// The transport's own frame limit sits above the application's, so that an oversized audio
    /// frame gets a clear `frame_too_large` event instead of a dropped connection. Base64 in
    /// `audio_data` grows a frame by a third, hence the factor.
    static func transportFrameLimit(_ stream: StreamSettings) -> Int {
        max(1 << 16, stream.maxFrameBytes * 4 + 4_096)
    }
}
