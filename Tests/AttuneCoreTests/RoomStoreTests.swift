import AttuneConversation
import AttuneCore
import AttuneStorage
import AttuneTestSupport
import Foundation
import Testing

/// The rooms' repository on a real SQLite file.
@Suite struct RoomStoreTests {
    let room = RoomID("r1")!, ann = ParticipantID("ann")!, bob = ParticipantID("bob")!

    func update(_ label: EmotionLabel, at time: Double, user: ParticipantID) -> EmotionUpdate {
        EmotionUpdate(room: room, participant: user, estimate: EmotionEstimate(scores: [label: 1], channel: .fused, subject: user.rawValue, time: time))
    }

    @Test(arguments: StorageBackend.allCases)
    func membershipsAndTheNewestEmotionsSurviveReopening(_ backend: StorageBackend) async throws {
        try await backend.withPlace { place in
            try await place.withStore { store in
                try await store.participantJoined(room: room, user: ann, info: .object(["name": .string("Ann")]), at: Date(timeIntervalSince1970: 1_000))
                try await store.participantJoined(room: room, user: bob, info: nil, at: Date(timeIntervalSince1970: 1_001))
                for index in 0..<105 {
                    try await store.record(update(index == 104 ? .anger : .joy, at: 2_000 + Double(index), user: ann), keep: 100)
                }
                try await store.participantLeft(room: room, user: bob, at: Date(timeIntervalSince1970: 3_000))
            }
            try await place.withStore { store in
                let emotions = try await store.emotions(room: room, user: ann, limit: 1_000)
                #expect(emotions.count == 100)
                #expect(emotions.first?.emotion == "anger")
                #expect(emotions.last?.timestamp == roomsTimestamp(Date(timeIntervalSince1970: 2_005)))
                #expect(try await store.emotions(room: room, user: ann, limit: 3).count == 3)

                let record = try #require(try await store.room(room))
                #expect(record.members.map(\.userID) == [bob, ann])
                #expect(record.members.first?.leftAt == roomsTimestamp(Date(timeIntervalSince1970: 3_000)))
                #expect(record.members.last?.leftAt == nil)
                #expect(record.members.last?.userInfo == .object(["name": .string("Ann")]))
                #expect(record.members.last?.lastEmotion?.emotion == "anger")
                #expect(try await store.room(RoomID("nowhere")!) == nil)

                let rooms = try await store.rooms(limit: 10)
                #expect(rooms == [RoomSummary(roomID: room, present: 1, members: 2, lastActivity: roomsTimestamp(Date(timeIntervalSince1970: 3_000)))])
            }
        }
    }

    @Test(arguments: StorageBackend.allCases)
    func rejoiningReopensTheMembershipAndRoomsComeNewestFirst(_ backend: StorageBackend) async throws {
        try await backend.withPlace { place in
            try await place.withStore { store in
                let other = RoomID("r2")!
                try await store.participantJoined(room: room, user: ann, info: nil, at: Date(timeIntervalSince1970: 1_000))
                try await store.participantLeft(room: room, user: ann, at: Date(timeIntervalSince1970: 1_100))
                try await store.participantJoined(room: other, user: bob, info: nil, at: Date(timeIntervalSince1970: 1_200))
                try await store.participantJoined(room: room, user: ann, info: .string("back"), at: Date(timeIntervalSince1970: 1_300))
                let record = try #require(try await store.room(room))
                #expect(record.members.count == 1)
                #expect(record.members[0].leftAt == nil && record.members[0].userInfo == .string("back"))
                #expect(try await store.rooms(limit: 10).map(\.roomID) == [room, other])
                #expect(try await store.rooms(limit: 1).count == 1)
            }
        }
    }
}
