import AttuneConversation
import AttuneCore
import Foundation
import Synchronization
import Testing

/// Collects what a room sends to one participant.
final class Inbox: RoomSubscriber {
    private let messages = Mutex<[RoomServerMessage]>([])
    func deliver(_ message: RoomServerMessage) { messages.withLock { $0.append(message) } }
    var all: [RoomServerMessage] { messages.withLock { $0 } }
    var types: [String] { all.map(\.type) }
}

@Suite struct RoomsProtocolTests {
    @Test func clientMessagesDecodeWithTheirFields() throws {
        #expect(
            try RoomClientMessage(json: #"{"type":"join_room","room_id":"r1","user_id":"ann","user_info":{"name":"Ann","age":7}}"#)
                == .joinRoom(room: RoomID("r1")!, user: ParticipantID("ann")!, info: .object(["name": .string("Ann"), "age": .number(7)]), token: nil))
        #expect(try RoomClientMessage(json: #"{"type":"audio_track_added","track_id":"mic"}"#) == .audioTrackAdded(TrackID("mic")!))
        #expect(try RoomClientMessage(json: #"{"type":"audio_track_removed","track_id":"mic"}"#) == .audioTrackRemoved(TrackID("mic")!))
        #expect(
            try RoomClientMessage(json: #"{"type":"audio_data","track_id":"mic","audio_data":"AQACAA==","sample_rate":8000}"#)
                == .audioData(track: TrackID("mic")!, bytes: [1, 0, 2, 0], sampleRate: 8_000))
        #expect(try RoomClientMessage(json: #"{"type":"get_room_status"}"#) == .getRoomStatus)
        #expect(try RoomClientMessage(json: #"{"type":"leave_room"}"#) == .leaveRoom)
        #expect(try RoomClientMessage(json: #"{"type":"ping"}"#) == .ping)
        #expect(try RoomClientMessage(binary: [3] + Array("mic".utf8) + [1, 0]) == .audioData(track: TrackID("mic")!, bytes: [1, 0], sampleRate: 16_000))
    }

    @Test(arguments: [
        ("", RoomError.Code.badMessage), ("[]", .badMessage), (#"{"type":7}"#, .badMessage), (#"{"type":"dance"}"#, .unknownMessage),
        (#"{"type":"join_room","room_id":"r1"}"#, .badMessage), (#"{"type":"join_room","room_id":"a b","user_id":"u"}"#, .badMessage),
        (#"{"type":"join_room","room_id":"r","user_id":"\#(String(repeating: "u", count: 65))"}"#, .badMessage),
        (#"{"type":"join_room","room_id":"r","user_id":"u","user_info":{"x":"\#(String(repeating: "x", count: 5000))"}}"#, .badMessage),
        (#"{"type":"audio_data","track_id":"mic","audio_data":"%%","sample_rate":16000}"#, .badMessage),
        (#"{"type":"audio_data","track_id":"mic","audio_data":"AAAA","sample_rate":1e300}"#, .badMessage),
        (#"{"type":"audio_data","track_id":"mic","audio_data":"AAAA","sample_rate":96000}"#, .unsupportedSampleRate),
        (#"{"type":"audio_track_added"}"#, .badMessage),
    ])
    func badMessagesAreRefusedWithTheirCode(json: String, code: RoomError.Code) {
        #expect { try RoomClientMessage(json: json) } throws: { ($0 as? RoomError)?.code == code }
    }

    @Test func badBinaryFramesAreRefused() {
        for frame: [UInt8] in [[], [0, 1, 2], [9, 65], [2, 0x20, 0x20, 1, 0]] {
            #expect(throws: RoomError.self) { try RoomClientMessage(binary: frame) }
        }
    }

    @Test func emotionUpdatesUseTheRoomsVocabulary() throws {
        let estimate = EmotionEstimate(scores: [.joy: 3, .sadness: 1], channel: .fused, subject: "ann", time: 1_700_000_000.25)
        let json = RoomServerMessage.emotionUpdate(EmotionUpdate(room: RoomID("r1")!, participant: ParticipantID("ann")!, estimate: estimate)).json
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(object["type"] as? String == "emotion_update")
        let data = try #require(object["data"] as? [String: Any])
        #expect(data["user_id"] as? String == "ann")
        #expect(data["room_id"] as? String == "r1")
        #expect(data["emotion"] as? String == "happiness")
        #expect(data["timestamp"] as? String == "2023-11-14T22:13:20.250Z")
        let scores = try #require(data["emotion_scores"] as? [String: Double])
        #expect(Set(scores.keys) == ["anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"])
        #expect(abs(scores["happiness"]! - 0.75) < 1e-9)
        #expect(data["channel"] as? String == "fused")
        #expect(data["valence"] is Double && data["arousal"] is Double && data["confidence"] is Double)
    }
}

@Suite struct RoomTests {
    let ann = ParticipantID("ann")!, bob = ParticipantID("bob")!, cy = ParticipantID("cy")!

    @Test func joiningTellsTheNewcomerAndTheOthers() async throws {
        let directory = RoomDirectory()
        let (annBox, bobBox) = (Inbox(), Inbox())
        let room = try await directory.join(RoomID("r1")!, as: ann, info: .object(["name": .string("Ann")]), subscriber: annBox)
        _ = try await directory.join(RoomID("r1")!, as: bob, info: nil, subscriber: bobBox)
        #expect(annBox.types == ["room_joined", "participant_joined"])
        guard case let .roomJoined(_, user, participants) = bobBox.all.first else { Issue.record("\(bobBox.all)"); return }
        #expect(user == bob)
        #expect(participants.map(\.userID) == [ann, bob])
        #expect(participants.first?.userInfo == .object(["name": .string("Ann")]))
        #expect(await room.snapshot().count == 2)
    }

    @Test func emotionIsBroadcastToTheWholeRoomAndNoOther() async throws {
        let directory = RoomDirectory()
        let (annBox, bobBox, cyBox) = (Inbox(), Inbox(), Inbox())
        let room = try await directory.join(RoomID("r1")!, as: ann, info: nil, subscriber: annBox)
        _ = try await directory.join(RoomID("r1")!, as: bob, info: nil, subscriber: bobBox)
        _ = try await directory.join(RoomID("r2")!, as: cy, info: nil, subscriber: cyBox)
        await room.report(EmotionEstimate(scores: [.anger: 1], channel: .text, subject: "ann", time: 100), from: ann)
        for box in [annBox, bobBox] {
            guard case .emotionUpdate(let update) = box.all.last else { Issue.record("\(box.types)"); continue }
            #expect(update.userID == ann && update.emotion == "anger" && update.channel == "fused")
        }
        #expect(cyBox.types == ["room_joined"])
        // The room's status carries the latest emotion.
        #expect(await room.snapshot().first { $0.userID == ann }?.emotion?.emotion == "anger")
        // Every estimate is broadcast, even one that changes nothing.
        let before = bobBox.types.count
        await room.report(EmotionEstimate(scores: [.anger: 1], channel: .text, subject: "ann", time: 101), from: ann)
        #expect(bobBox.types.dropFirst(before) == ["emotion_update"])
    }

    @Test func leavingTellsTheRoomAndAnEmptyRoomCloses() async throws {
        let directory = RoomDirectory()
        let (annBox, bobBox) = (Inbox(), Inbox())
        let room = try await directory.join(RoomID("r1")!, as: ann, info: nil, subscriber: annBox)
        _ = try await directory.join(RoomID("r1")!, as: bob, info: nil, subscriber: bobBox)
        await directory.leave(room, as: bob)
        #expect(annBox.types.last == "participant_left")
        #expect(await directory.roomIDs == [RoomID("r1")!])
        await directory.leave(room, as: ann)
        #expect(await directory.roomIDs.isEmpty)
        // The id can be used again: a new room opens.
        let again = try await directory.join(RoomID("r1")!, as: bob, info: nil, subscriber: bobBox)
        #expect(again !== room)
    }

    @Test func limitsAreEnforcedWithTheirSettingNames() async throws {
        var limits = RoomLimits()
        limits.maxRooms = 1
        limits.maxParticipantsPerRoom = 2
        limits.maxTracksPerParticipant = 1
        let directory = RoomDirectory(limits: limits)
        let room = try await directory.join(RoomID("r1")!, as: ann, info: nil, subscriber: Inbox())
        _ = try await directory.join(RoomID("r1")!, as: bob, info: nil, subscriber: Inbox())
        await #expect { try await directory.join(RoomID("r1")!, as: cy, info: nil, subscriber: Inbox()) } throws: {
            ($0 as? RoomError)?.code == .roomFull && "\($0)".contains("rooms.max_participants")
        }
        await #expect { try await directory.join(RoomID("r2")!, as: cy, info: nil, subscriber: Inbox()) } throws: {
            ($0 as? RoomError)?.code == .tooManyRooms && "\($0)".contains("rooms.max_rooms")
        }
        await #expect { try await directory.join(RoomID("r1")!, as: ann, info: nil, subscriber: Inbox()) } throws: {
            ($0 as? RoomError)?.code == .nameTaken
        }
        try await room.addTrack(TrackID("mic")!, for: ann)
        try await room.addTrack(TrackID("mic")!, for: ann)  // again: no change
        await #expect { try await room.addTrack(TrackID("mic2")!, for: ann) } throws: {
            ($0 as? RoomError)?.code == .tooManyTracks && "\($0)".contains("rooms.max_tracks")
        }
        try await room.removeTrack(TrackID("mic")!, for: ann)
        await #expect { try await room.removeTrack(TrackID("mic")!, for: ann) } throws: { ($0 as? RoomError)?.code == .unknownTrack }
    }

    /// Joins and leaves racing on one room id never leave anyone in a room the directory lost.
    @Test func racingJoinsAndLeavesKeepEveryoneFindable() async throws {
        var limits = RoomLimits()
        limits.maxParticipantsPerRoom = 40
        let directory = RoomDirectory(limits: limits)
        let id = RoomID("busy")!
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<40 {
                group.addTask {
                    let user = ParticipantID("u\(index)")!
                    let room = try await directory.join(id, as: user, info: nil, subscriber: Inbox())
                    if index % 2 == 0 { await directory.leave(room, as: user) }
                }
            }
            try await group.waitForAll()
        }
        let room = try #require(await directory.room(id))
        #expect(await room.snapshot().count == 20)
    }
}

/// Other instances' participants, as their changes reach a room here.
@Suite struct RemoteParticipantTests {
    let id = RoomID("r1")!, ann = ParticipantID("ann")!, zoe = ParticipantID("zoe")!, max = ParticipantID("max")!

    /// Peers that know of `present` and hand over `changes` when followed.
    struct FixedPeers: RoomPeers {
        let present: [ParticipantSnapshot]
        func participants(in room: RoomID) async throws -> [ParticipantSnapshot] { present }
        func follow(_ deliver: @escaping @Sendable (RoomChange) async -> Void) async throws {}
    }

    @Test func remoteChangesReachTheLocalParticipantsAndTheStatus() async throws {
        let there = ParticipantSnapshot(userID: max, userInfo: .string("Max"), joinedAt: roomsTimestamp(Date(timeIntervalSince1970: 10)), tracks: [], emotion: nil)
        let directory = RoomDirectory(peers: FixedPeers(present: [there]))
        let inbox = Inbox()
        let room = try await directory.join(id, as: ann, info: nil, subscriber: inbox)
        // Someone already on another instance is in the room that just opened here.
        guard case .roomJoined(_, _, let participants) = inbox.all.first else { Issue.record("no room_joined"); return }
        #expect(participants.map(\.userID) == [ann, max])

        await room.apply(.joined(room: id, user: zoe, info: .string("Zoe"), at: Date(timeIntervalSince1970: 20)))
        let estimate = EmotionEstimate(scores: [.sadness: 1], channel: .fused, subject: "zoe", time: 30)
        await room.apply(.emotion(EmotionUpdate(room: id, participant: zoe, estimate: estimate)))
        #expect(inbox.types == ["room_joined", "participant_joined", "emotion_update"])
        let status = await room.snapshot()
        #expect(status.map(\.userID) == [ann, max, zoe])
        #expect(status.last?.emotion?.emotion == "sadness")

        await room.apply(.left(room: id, user: zoe))
        await room.apply(.left(room: id, user: zoe))  // once only
        #expect(inbox.types == ["room_joined", "participant_joined", "emotion_update", "participant_left"])
        // An emotion of someone unknown here, or a change about a local participant, is ignored.
        await room.apply(.emotion(EmotionUpdate(room: id, participant: zoe, estimate: estimate)))
        await room.apply(.joined(room: id, user: ann, info: nil, at: .now))
        #expect(inbox.all.count == 4)
        // Remote participants do not keep a room open here.
        await directory.leave(room, as: ann)
        #expect(await directory.roomIDs.isEmpty)
    }

    @Test func aLateSeedDoesNotUndoAChangeAndALocalJoinReplacesARemoteName() async throws {
        let room = Room(id: id, limits: .init(), fusion: .init())
        await room.apply(.left(room: id, user: max))
        await room.seed([ParticipantSnapshot(userID: max, userInfo: nil, joinedAt: "t", tracks: [], emotion: nil)])
        #expect(await room.snapshot().isEmpty)
        await room.apply(.joined(room: id, user: zoe, info: nil, at: .now))
        try await room.join(zoe, info: .string("here now"), subscriber: Inbox())
        #expect(await room.snapshot().map(\.userInfo) == [.string("here now")])
    }
}
