import AttuneConversation
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
        let maxPage = components.historyMaxPage
        router.on("/api/sessions", method: .get, catalog: catalog) { request, _ in
            let limit = try Self.integer("limit", in: request, default: min(100, maxPage), range: 1...maxPage)
            return Sessions(sessions: try await requireHistory().sessions(limit: limit))
        }
        router.on("/api/sessions/{id}", method: .get, catalog: catalog) { request, context in
            let id = try Self.sessionID(context)
            let offset = try Self.integer("offset", in: request, default: 0, range: 0...Int(Int32.max))
            let limit = try Self.integer("limit", in: request, default: maxPage, range: 1...maxPage)
            guard let record = try await requireHistory().session(id: id, offset: offset, limit: limit) else {
                throw HTTPError(.notFound, message: "no session \(id)")
            }
            return Session(record: record)
        }
        router.on("/api/sessions/{id}", method: .delete, catalog: catalog) { _, context in
            let id = try Self.sessionID(context)
            guard try await requireHistory().deleteSession(id: id) else {
                throw HTTPError(.notFound, message: "no session \(id)")
            }
            return Response(status: .noContent)
        }
    }

    /// A whole-number query parameter within `range`, or 400.
    static func integer(_ name: String, in request: Request, default value: Int, range: ClosedRange<Int>) throws -> Int {
        guard let text = request.uri.queryParameters.get(name) else { return value }
        guard let number = Int(text), range.contains(number) else {
            throw HTTPError(.badRequest, message: "\(name) must be a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return number
    }

    /// Session ids are the server's own lower-case UUIDs; anything else cannot exist.
    private static func sessionID(_ context: some RequestContext) throws -> String {
        let id = try context.parameters.require("id")
        guard id.count <= 64, id.allSatisfy({ $0.isASCII && ($0.isHexDigit || $0 == "-") }) else {
            throw HTTPError(.notFound, message: "no session \(AccessPolicy.echo(id))")
        }
        return id
    }

    private func requireHistory() throws -> any ConversationRepository {
        guard let history = components.history else {
            let reason = components.statuses.first { $0.name == "storage" }?.error ?? "not loaded"
            throw HTTPError(.serviceUnavailable, message: "history is unavailable: \(reason)")
        }
        return history
    }
}
