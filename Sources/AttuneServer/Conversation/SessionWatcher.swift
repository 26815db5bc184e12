import Logging
import ServiceLifecycle

/// Watches a live WebSocket session and closes its connection when the client has sent nothing
/// for `idleTimeout` seconds (1001), when it stopped reading and its outbound queue overflowed
/// (1008), or when the server shuts down (1001).
struct SessionWatcher: Sendable {
    let connection: SessionConnection
    /// Seconds of silence from the client before the session is closed (`stream.idle_timeout_s`).
    let idleTimeout: Double
    let logger: Logger

    /// Returns when the session's reader has ended, or after closing the connection.
    func run(activity: SessionActivity, queue: OutboundQueue) async {
        let idle = Duration.milliseconds(Int64(idleTimeout * 1_000))
        let tick = min(Duration.milliseconds(250), idle / 4)
        let shuttingDown = Flag()
        await withGracefulShutdownHandler {
            while !activity.hasEnded {
                if queue.overflowed {
                    logger.notice("closing a session whose client does not read")
                    await connection.close(.policyViolation, queue.overflowReason)
                    return
                }
                if shuttingDown.isSet {
                    await connection.close(.goingAway, "the server is shutting down")
                    return
                }
                if ContinuousClock.now - activity.lastMessage > idle {
                    logger.info("closing an idle session")
                    await connection.close(.goingAway, "idle for \(Int(idleTimeout)) s (setting stream.idle_timeout_s)")
                    return
                }
                try? await Task.sleep(for: tick)
            }
        } onGracefulShutdown: {
            shuttingDown.set()
        }
    }
}
