import AttuneStorage
import Foundation
import Hummingbird

/// The conversation history: `GET /api/sessions`, `GET /api/sessions/{id}`, and
/// `DELETE /api/sessions/{id}` (erasing a session and every turn in it).
struct HistoryController: Sendable {
    let components: ServerComponents

    struct Sessions: ResponseEncodable {
        let sessions: [SessionSummary]
    }

    struct Session: ResponseEncodable {
        let record: SessionRecord
        func encode(to encoder: any Encoder) throws { try record.encode(to: encoder) }
    }

    func addRoutes(to router: Router<some RequestContext>, catalog: RouteCatalog) {
        router.on("/api/sessions", method: .get, catalog: catalog) { request, _ in
            let limit = request.uri.queryParameters.get("limit", as: Int.self) ?? 100
            guard (1...1_000).contains(limit) else { throw HTTPError(.badRequest, message: "limit must be 1-1000") }
            return Sessions(sessions: try await requireHistory().sessions(limit: limit))
        }
        router.on("/api/sessions/{id}", method: .get, catalog: catalog) { _, context in
            let id = try context.parameters.require("id")
            guard let record = try await requireHistory().session(id: id) else {
                throw HTTPError(.notFound, message: "no session \(id)")
            }
            return Session(record: record)
        }
        router.on("/api/sessions/{id}", method: .delete, catalog: catalog) { _, context in
            let id = try context.parameters.require("id")
            guard try await requireHistory().deleteSession(id: id) else {
                throw HTTPError(.notFound, message: "no session \(id)")
            }
            return Response(status: .noContent)
        }
    }

    private func requireHistory() throws -> HistoryStore {
        guard let history = components.history else {
            let reason = components.statuses.first { $0.name == "storage" }?.error ?? "not loaded"
            throw HTTPError(.serviceUnavailable, message: "history is unavailable: \(reason)")
        }
        return history
    }
}
