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
        /// `ok` while the store of conversations and rooms answers, else `unavailable` (its
        /// component says why); the routes that do not need it go on working.
        let storage: String
        /// This instance's name among those sharing a PostgreSQL store (new at every start);
        /// absent on SQLite. Behind a load balancer it tells which instance answered.
        let instance: String?
        let components: [ComponentStatus]

        enum CodingKeys: String, CodingKey {
            case status, version, components, cpu, storage, instance
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
                storage: statuses.first { $0.name == "storage" }?.loaded == true ? "ok" : "unavailable",
                instance: components.storage?.postgres?.instanceID,
                components: statuses
            )
            return EditedResponse(status: healthy ? .ok : .serviceUnavailable, response: report)
        }
    }
}
