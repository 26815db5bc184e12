import Hummingbird
import NIOCore
import Prometheus

/// `GET /metrics`: every metric in Prometheus' text exposition format.
struct MetricsController: Sendable {
    let registry: PrometheusCollectorRegistry

    func addRoutes(to router: Router<some RequestContext>, catalog: RouteCatalog) {
        router.on("/metrics", method: .get, catalog: catalog) { _, _ in
            var buffer = [UInt8]()
            registry.emit(into: &buffer)
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: buffer))
            )
        }
    }
}
