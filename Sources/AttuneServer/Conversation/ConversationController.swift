import Hummingbird
import HummingbirdWebSocket
import Logging

/// `/ws/conversation`: the companion session over a WebSocket.
struct ConversationController: Sendable {
    let components: ServerComponents

    func addRoutes(to router: Router<BasicWebSocketRequestContext>) {
        router.ws("/ws/conversation") { inbound, outbound, context in
            let session = ConversationSession(components: components, logger: context.logger)
            await session.run(inbound: inbound, outbound: outbound)
        }
    }

    /// The transport's own frame limit sits above the application's, so that an oversized audio
    /// frame gets a clear `frame_too_large` event instead of a dropped connection. Base64 in
    /// `audio_data` grows a frame by a third, hence the factor.
    static func transportFrameLimit(_ stream: StreamSettings) -> Int {
        max(1 << 16, stream.maxFrameBytes * 4 + 4_096)
    }
}
