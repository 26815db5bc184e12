import AttuneConversation
import Hummingbird

/// The stored rooms: `GET /api/rooms`, `GET /api/rooms/{id}` and
/// `GET /api/rooms/{id}/emotions?user_id=...` (what the rooms' repository kept: memberships and
/// each participant's newest emotions).
struct RoomsController: Sendable {
    let repository: (any RoomRepository)?
    let directory: RoomDirectory
    let maxPage: Int
    let keptEmotions: Int

    struct RoomList: ResponseEncodable {
        struct Entry: Encodable {
            let summary: RoomSummary
            let open: Bool
            func encode(to encoder: any Encoder) throws {
                try summary.encode(to: encoder)
                var container = encoder.container(keyedBy: Key.self)
                try container.encode(open, forKey: .open)
            }
        }
        enum Key: String, CodingKey { case open }
        let rooms: [Entry]
    }

    struct RoomDetail: ResponseEncodable {
        let record: RoomRecord
        let open: Bool
        func encode(to encoder: any Encoder) throws {
            try record.encode(to: encoder)
            var container = encoder.container(keyedBy: RoomList.Key.self)
            try container.encode(open, forKey: .open)
        }
    }

    struct Emotions: ResponseEncodable {
        let room_id: RoomID
        let user_id: ParticipantID
        let emotions: [EmotionUpdate]
    }

    func addRoutes(to router: Router<some RequestContext>, catalog: RouteCatalog) {
        router.on("/api/rooms", method: .get, catalog: catalog) { request, _ in
            let limit = try HistoryController.integer("limit", in: request, default: min(100, maxPage), range: 1...maxPage)
            let open = Set(await directory.roomIDs)
            let rooms = try await requireRepository().rooms(limit: limit)
            return RoomList(rooms: rooms.map { .init(summary: $0, open: open.contains($0.roomID)) })
        }
        router.on("/api/rooms/{id}", method: .get, catalog: catalog) { _, context in
            let id = try Self.roomID(context)
            guard let record = try await requireRepository().room(id) else { throw HTTPError(.notFound, message: "no room \(id)") }
            return RoomDetail(record: record, open: await directory.room(id) != nil)
        }
        router.on("/api/rooms/{id}/emotions", method: .get, catalog: catalog) { request, context in
            let id = try Self.roomID(context)
            guard let text = request.uri.queryParameters.get("user_id"), let user = ParticipantID(String(text)) else {
                throw HTTPError(.badRequest, message: "user_id (1-64 letters, digits or -_.:@) is required")
            }
            let limit = try HistoryController.integer("limit", in: request, default: keptEmotions, range: 1...keptEmotions)
            let repository = try requireRepository()
            guard try await repository.room(id) != nil else { throw HTTPError(.notFound, message: "no room \(id)") }
            return Emotions(room_id: id, user_id: user, emotions: try await repository.emotions(room: id, user: user, limit: limit))
        }
    }

    private static func roomID(_ context: some RequestContext) throws -> RoomID {
        let text = try context.parameters.require("id")
        guard let id = RoomID(text) else { throw HTTPError(.notFound, message: "no room \(AccessPolicy.echo(text))") }
        return id
    }

    private func requireRepository() throws -> any RoomRepository {
        guard let repository else { throw HTTPError(.serviceUnavailable, message: "room storage is unavailable: the history database did not open") }
        return repository
    }
}
