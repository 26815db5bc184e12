import AttuneCore
import AttuneSpeech
import AttuneStorage
import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import Metrics
import Prometheus

/// Builds the Attune server from its configuration: loads the native components, wires the
/// routes and hands back an application ready to `runService()`.
public func buildApplication(
    configuration: AttuneConfiguration,
    logger: Logger = Logger(label: "attune"),
    onServerRunning: @escaping @Sendable (_ port: Int) async -> Void = { _ in }
) async throws -> some ApplicationProtocol {
    let logger = {
        var logger = logger
        logger.logLevel = configuration.logLevel
        return logger
    }()
    let components = ServerComponents.load(configuration: configuration, logger: logger)
    let router = buildRouter(configuration: configuration, components: components)
    let webSocketRouter = Router(context: BasicWebSocketRequestContext.self)
    ConversationController(components: components).addRoutes(to: webSocketRouter)
    let host = configuration.host
    return Application(
        router: router,
        server: .http1WebSocketUpgrade(
            webSocketRouter: webSocketRouter,
            configuration: .init(ws: .init(maxFrameSize: ConversationController.transportFrameLimit(configuration.stream)))
        ),
        configuration: .init(address: .hostname(host, port: configuration.port), serverName: "attune"),
        services: components.services,
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
    let router = Router(context: BasicRequestContext.self)
    let routes = RouteCatalog()

    router.addMiddleware {
        MetricsMiddleware()
        JSONErrorMiddleware(catalog: routes)
        LogRequestsMiddleware(.debug)
        BodyLimitMiddleware(maxBytes: configuration.maxRequestBodyBytes)
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
    SpeechController(components: components, maxBodyBytes: configuration.maxRequestBodyBytes)
        .addRoutes(to: router, catalog: routes)
    HistoryController(components: components).addRoutes(to: router, catalog: routes)
    return router
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
