import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOHTTP1

/// The HTTP/1 server with WebSocket upgrades, plus a guard in front of the upgrade: a refused
/// upgrade (foreign `Host` or `Origin`, missing token, too many sessions) gets a real 403, 401 or
/// 503 with a JSON error, where Hummingbird alone can only answer an empty 400.
struct GuardedWebSocketChannel: ServerChildChannel {
    struct Value: ServerChildChannelValue {
        let base: HTTP1WebSocketUpgradeChannel.Value
        /// True once the connection's first request was refused; false once it was let through
        /// (or the connection closed first).
        let refused: EventLoopFuture<Bool>
        var channel: any Channel { base.channel }
    }

    let base: HTTP1WebSocketUpgradeChannel
    let paths: Set<String>
    let refusal: @Sendable (_ path: String, _ head: HTTPRequestHead) -> HTTPError?

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        base.setup(channel: channel, logger: logger).flatMapThrowing { value in
            // Between the request decoder and the upgrade handler, so it sees each request first.
            let decoder = try channel.pipeline.syncOperations.context(handlerType: ByteToMessageHandler<HTTPRequestDecoder>.self)
            let decided = channel.eventLoop.makePromise(of: Bool.self)
            try channel.pipeline.syncOperations.addHandler(
                UpgradeGuardHandler(paths: paths, refusal: refusal, decided: decided), position: .after(decoder.handler))
            return Value(base: value, refused: decided.futureResult)
        }
    }

    func handle(value: Value, logger: Logger) async {
        // A refused upgrade never reaches Hummingbird's upgrade handler, which then reports the
        // closed connection as an error: for a refusal that is expected, and strangers must not
        // be able to fill the log with errors.
        // Waiting for the guard's decision costs nothing: the upgrade handler waits for the same
        // first request.
        var quiet = logger
        quiet.logLevel = .critical
        let refused = (try? await value.refused.get()) ?? false
        await base.handle(value: value.base, logger: refused ? quiet : logger)
    }

    /// Builds the server: HTTP requests go to `responder`, upgrades on `paths` to `webSocketRouter`.
    static func builder(
        webSocketRouter: Router<AttuneWebSocketContext>, configuration: WebSocketServerConfiguration, paths: Set<String>,
        refusal: @escaping @Sendable (_ path: String, _ head: HTTPRequestHead) -> HTTPError?
    ) -> HTTPServerBuilder {
        let webSocketResponder = webSocketRouter.buildResponder()
        return HTTPServerBuilder { responder in
            GuardedWebSocketChannel(
                base: HTTP1WebSocketUpgradeChannel(
                    responder: responder, webSocketResponder: webSocketResponder, configuration: .init(ws: configuration)),
                paths: paths, refusal: refusal)
        }
    }
}

/// Answers a refused WebSocket upgrade itself and closes the connection; passes everything else on.
///
/// Only a connection's first request can be an upgrade (NIO's upgrade handler looks at that one
/// alone; Hummingbird redirects later ones to a new connection), so the guard removes itself
/// once it has let a first request through: after an upgrade the channel carries WebSocket
/// frames, not HTTP parts.
final class UpgradeGuardHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let paths: Set<String>
    let refusal: @Sendable (_ path: String, _ head: HTTPRequestHead) -> HTTPError?
    private let decided: EventLoopPromise<Bool>
    private var refused = false
    private var hasDecided = false

    init(
        paths: Set<String>, refusal: @escaping @Sendable (_ path: String, _ head: HTTPRequestHead) -> HTTPError?,
        decided: EventLoopPromise<Bool>
    ) {
        self.paths = paths
        self.refusal = refusal
        self.decided = decided
    }

    private func decide(refused: Bool) {
        guard !hasDecided else { return }
        hasDecided = true
        decided.succeed(refused)
    }

    /// Removed after letting the first request through, or when the connection closes.
    func handlerRemoved(context: ChannelHandlerContext) {
        decide(refused: refused)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if case .head(let head) = part, head.headers["upgrade"].first?.lowercased() == "websocket" {
            let path = String(head.uri.split(separator: "?", maxSplits: 1).first ?? "")
            if paths.contains(path), let error = refusal(path, head) {
                refused = true
                decide(refused: true)
                respond(error, context: context)
                return
            }
        }
        // Once refused, the rest of the request is dropped while the connection closes.
        guard !refused else { return }
        context.fireChannelRead(data)
        if case .head = part { context.pipeline.syncOperations.removeHandler(context: context, promise: nil) }
    }

    private func respond(_ error: HTTPError, context: ChannelHandlerContext) {
        let body = ErrorBody(error: .init(status: Int(error.status.code), reason: error.status.reasonPhrase, message: error.body ?? ""))
        let data = (try? JSONEncoder().encode(body)) ?? Data()
        var headers = HTTPHeaders([
            ("Content-Type", "application/json; charset=utf-8"), ("Content-Length", String(data.count)), ("Connection", "close"),
        ])
        for field in error.headers { headers.add(name: field.name.rawName, value: field.value) }
        let status = HTTPResponseStatus(statusCode: Int(error.status.code))
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(data: data)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
    }
}

