import AttuneCore
import AttuneSpeech
import AttuneStorage
import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import Synchronization

/// Builds the Attune server from its configuration: loads the native components, wires the
/// routes and hands back an application ready to `runService()`.
/// - Parameter components: already loaded components (tests share them to reach the pools);
///   nil loads them from the configuration.
public func buildApplication(
    configuration: AttuneConfiguration,
    components: ServerComponents? = nil,
    logger: Logger = Logger(label: "attune"),
    onServerRunning: @escaping @Sendable (_ port: Int) async -> Void = { _ in }
) async throws -> some ApplicationProtocol {
    let logger = {
        var logger = logger
        logger.logLevel = configuration.logLevel
        return logger
    }()
    let components = components ?? ServerComponents.load(configuration: configuration, logger: logger)
    let socketIO = SocketIOHub(components: components, settings: configuration.socketIO)
    let router = buildRouter(configuration: configuration, components: components, socketIO: socketIO, routes: RouteCatalog())
    let webSocketRouter = Router(context: AttuneWebSocketContext.self)
    let conversations = ConversationController(
        components: components, access: AccessPolicy(settings: configuration.server, boundHost: configuration.host))
    conversations.addRoutes(to: webSocketRouter)
    SocketIOController(hub: socketIO).addWebSocketRoutes(to: webSocketRouter)
    let host = configuration.host
    return Application(
        router: router,
        server: GuardedWebSocketChannel.builder(
            webSocketRouter: webSocketRouter,
            configuration: .init(maxFrameSize: ConversationController.transportFrameLimit(configuration.stream)),
            paths: ConversationController.paths.union(SocketIOHub.paths), refusal: conversations.refusal
        ),
        configuration: .init(address: .hostname(host, port: configuration.port), serverName: "attune"),
        services: components.services + [SocketIOClock(hub: socketIO)],
        onServerRunning: { channel in
            let port = channel.localAddress?.port ?? configuration.port
            logger.notice("Attune is listening on http://\(host):\(port)")
            await onServerRunning(port)
        },
        logger: logger
    )
}

/// The routes and middleware of the server.
public func buildRouter(
    configuration: AttuneConfiguration,
    components: ServerComponents
) -> Router<BasicRequestContext> {
    buildRouter(
        configuration: configuration, components: components,
        socketIO: SocketIOHub(components: components, settings: configuration.socketIO), routes: RouteCatalog())
}

func buildRouter(
    configuration: AttuneConfiguration,
    components: ServerComponents,
    socketIO: SocketIOHub,
    routes: RouteCatalog
) -> Router<BasicRequestContext> {
    let router = Router(context: BasicRequestContext.self)
    let access = AccessPolicy(settings: configuration.server, boundHost: configuration.host)

    router.addMiddleware {
        RequestMetricsMiddleware()
        JSONErrorMiddleware(catalog: routes)
        AccessMiddleware(policy: access)
        LogRequestsMiddleware(.debug)
        BodyLimitMiddleware(maxBytes: configuration.maxRequestBodyBytes)
        FolderRedirectMiddleware(folders: ["/rooms"])
        FileMiddleware(
            configuration.publicDirectory ?? ServerResources.publicDirectory,
            searchForIndexHtml: true
        )
    }

    HealthController(components: components).addRoutes(to: router, catalog: routes)
    MetricsController(registry: Telemetry.registry).addRoutes(to: router, catalog: routes)
    VoiceActivityController(components: components, maxBodyBytes: configuration.maxRequestBodyBytes)
        .addRoutes(to: router, catalog: routes)
    TranscribeController(components: components, maxBodyBytes: configuration.maxRequestBodyBytes)
        .addRoutes(to: router, catalog: routes)
    EmotionController(components: components, maxBodyBytes: configuration.maxRequestBodyBytes)
        .addRoutes(to: router, catalog: routes)
    FaceController(components: components, maxBodyBytes: configuration.maxRequestBodyBytes)
        .addRoutes(to: router, catalog: routes)
    SpeechController(components: components, maxBodyBytes: configuration.maxRequestBodyBytes)
        .addRoutes(to: router, catalog: routes)
    HistoryController(components: components).addRoutes(to: router, catalog: routes)
    ConverseController(
        components: components, settings: configuration.converse, maxBodyBytes: configuration.maxRequestBodyBytes,
        audioStore: ReplyAudioStore(settings: configuration.converse), logger: Logger(label: "attune.converse")
    ).addRoutes(to: router, catalog: routes)
    RoomsController(
        repository: components.roomRecorder?.repository, directory: components.rooms, maxPage: components.historyMaxPage,
        keptEmotions: components.roomSettings.keepEmotions
    ).addRoutes(to: router, catalog: routes)
    ConversationController(components: components, access: access).addFallbackRoutes(to: router, catalog: routes)
    SocketIOController(hub: socketIO).addRoutes(to: router, catalog: routes)
    OpenAPIController().addRoutes(to: router, catalog: routes)
    return router
}

/// Runs the application until SIGTERM or SIGINT, then shuts it down within
/// `server.shutdown_timeout_s`: requests in flight get most of that time to finish, then
/// everything still running is cancelled, and if even that hangs (a native call that never
/// returns) the process exits anyway. Child processes die with it (``TiedChildProcess``).
public func runUntilStopped(_ app: some ApplicationProtocol, configuration: AttuneConfiguration, logger: Logger) async throws {
    let timeout = configuration.server.shutdownTimeout
    var group = ServiceGroupConfiguration(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
    group.maximumGracefulShutdownDuration = .milliseconds(Int64(timeout * 700))
    let deadline = ShutdownDeadline(seconds: timeout, logger: logger)
    defer { deadline.cancel() }
    try await ServiceGroup(configuration: group).run()
}

/// Ends the process `seconds` after the first SIGTERM or SIGINT, whatever is still running.
///
/// `@unchecked Sendable`: the signal sources are set once in `init` and only cancelled after.
final class ShutdownDeadline: @unchecked Sendable {
    private let sources: [any DispatchSourceSignal]

    init(seconds: Double, logger: Logger) {
        let queue = DispatchQueue(label: "attune.shutdown-deadline")
        // A signal source needs the default action (termination) turned off; ServiceLifecycle
        // does the same for its own sources.
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        let armed = Mutex(false)
        sources = [SIGTERM, SIGINT].map { signal in
            let source = DispatchSource.makeSignalSource(signal: signal, queue: queue)
            source.setEventHandler {
                guard armed.withLock({ armed in defer { armed = true }; return !armed }) else { return }
                queue.asyncAfter(deadline: .now() + seconds) {
                    logger.warning("shutdown took longer than \(seconds) s (setting server.shutdown_timeout_s); exiting now")
                    fflush(nil)
                    _exit(0)
                }
            }
            source.resume()
            return source
        }
    }

    func cancel() { sources.forEach { $0.cancel() } }
}

/// Files shipped inside the server module.
enum ServerResources {
    static var publicDirectory: String {
        Bundle.module.resourceURL!.appendingPathComponent("Public").path
    }
}

/// The process-wide metrics registry. Swift Metrics can be bootstrapped once per process, so the
/// first use does it and every application built afterwards (tests build many) shares it.
public enum Telemetry {
    public static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }()
}
