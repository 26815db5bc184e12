import AttuneCore
import Foundation
import Hummingbird

/// `GET /api/health`: overall status and, per component, whether it loaded, its version and
/// how long loading took. Answers 503 while any component is missing, so a load balancer or
/// `make run`'s wait loop can tell a degraded server from a healthy one.
struct HealthController: Sendable {
    let components: ServerComponents
    let started = Date()

    struct Report: ResponseEncodable {
        let status: String
        let version: String
        let uptimeSeconds: Double
        /// The CPU, its model and the vector extensions that decide Attune's speed.
        let cpu: CPUInfo
        let components: [ComponentStatus]

        enum CodingKeys: String, CodingKey {
            case status, version, components, cpu
            case uptimeSeconds = "uptime_s"
        }
    }

    func addRoutes(to router: Router<some RequestContext>, catalog: RouteCatalog) {
        router.on("/api/health", method: .get, catalog: catalog) { _, _ in
            let statuses = components.liveStatuses
            let healthy = statuses.allSatisfy(\.loaded)
            let report = Report(
                status: healthy ? "ok" : "degraded",
                version: AttuneVersion.current,
                uptimeSeconds: Date().timeIntervalSince(started),
                cpu: .current,
                components: statuses
            )
            return EditedResponse(status: healthy ? .ok : .serviceUnavailable, response: report)
        }
    }
}
