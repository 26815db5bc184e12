import AttuneCore
import Foundation

/// Where a room sends its messages for one participant.
///
/// `deliver` must not wait: it hands the message to a bounded buffer, and a subscriber that
/// cannot keep up disconnects itself, so a slow client never slows its room.
public protocol RoomSubscriber: Sendable {
    func deliver(_ message: RoomServerMessage)
}

/// A participant's fused emotion after a new reading.
public struct FusedReport: Sendable {
    public let estimate: EmotionEstimate
    /// Whether it differs materially from the last state that did (`fusion.change_threshold`).
    public let isMaterialChange: Bool
}

/// How much the rooms of one server may hold.
public struct RoomLimits: Sendable, Equatable {
    public var maxRooms = 100
    public var maxParticipantsPerRoom = 16
    public var maxTracksPerParticipant = 4

    public init() {}
}

/// One room: its participants, their audio tracks and their fused emotion. Every message is
/// broadcast to the room's own participants only. Where several instances of the server share
/// rooms, the room also shows the participants connected to the others (``apply(_:)``).
public actor Room {
    public nonisolated let id: RoomID
    private let limits: RoomLimits
    private let fusion: FusionSettings
    private let recorder: RoomRecorder?
    private var participants: [ParticipantID: Participant] = [:]
    /// Participants connected to other instances, as their changes describe them.
    private var remote: [ParticipantID: ParticipantSnapshot] = [:]
    /// Remote participants a change has already described, whom a late ``seed(_:)`` must not undo.
    private var described: Set<ParticipantID> = []
    /// Set when the last participant left; a closed room takes nobody (the directory opens a
    /// new one under the same id).
    private(set) var isClosed = false

    private struct Participant {
        let info: JSONValue?
        let joinedAt: Date
        var tracks: Set<TrackID> = []
        var fusion: EmotionFusion
        var latest: EmotionUpdate?
        let subscriber: any RoomSubscriber
    }

    /// A room outside any ``RoomDirectory`` (the companion's room of one) has no recorder.
    public init(id: RoomID, limits: RoomLimits, fusion: FusionSettings, recorder: RoomRecorder? = nil) {
        self.id = id
        self.limits = limits
        self.fusion = fusion
        self.recorder = recorder
    }

    /// Adds a participant: they get `room_joined` with everyone present, the others get
    /// `participant_joined`.
    public func join(_ user: ParticipantID, info: JSONValue?, subscriber: any RoomSubscriber, at date: Date = .now) throws(RoomError) {
        guard !isClosed else { throw RoomError(.unavailable, "room \(id) is closing") }
        guard participants[user] == nil else {
            throw RoomError(.nameTaken, "\(user) is already in room \(id); choose another user_id")
        }
        guard participants.count < limits.maxParticipantsPerRoom else {
            throw RoomError(.roomFull, "room \(id) has \(limits.maxParticipantsPerRoom) participants, the most it takes (setting rooms.max_participants)")
        }
        // Someone of the same name on another instance has moved here (their leave is on its way).
        remote[user] = nil
        participants[user] = Participant(
            info: info, joinedAt: date, fusion: EmotionFusion(subject: user.rawValue, settings: fusion), subscriber: subscriber)
        recorder?.record(.joined(id, user, info, date))
        subscriber.deliver(.roomJoined(room: id, user: user, participants: snapshot()))
        broadcast(.participantJoined(room: id, participant: snapshot(of: user)!), except: user)
    }

    /// Removes a participant and tells the others; returns true when the room is now empty
    /// (and closed).
    @discardableResult
    public func leave(_ user: ParticipantID) -> Bool {
        guard participants.removeValue(forKey: user) != nil else { return participants.isEmpty }
        recorder?.record(.left(id, user, .now))
        broadcast(.participantLeft(room: id, user: user))
        if participants.isEmpty { isClosed = true }
        return isClosed
    }

    public func addTrack(_ track: TrackID, for user: ParticipantID) throws(RoomError) {
        guard var participant = participants[user] else { throw RoomError(.notJoined, "\(user) is not in room \(id)") }
        guard !participant.tracks.contains(track) else { return }
        guard participant.tracks.count < limits.maxTracksPerParticipant else {
            throw RoomError(.tooManyTracks, "at most \(limits.maxTracksPerParticipant) audio tracks per participant (setting rooms.max_tracks)")
        }
        participant.tracks.insert(track)
        participants[user] = participant
    }

    public func removeTrack(_ track: TrackID, for user: ParticipantID) throws(RoomError) {
        guard participants[user]?.tracks.remove(track) != nil else {
            throw RoomError(.unknownTrack, "\(user) has no audio track \(track)")
        }
    }

    public func hasTrack(_ track: TrackID, for user: ParticipantID) -> Bool {
        participants[user]?.tracks.contains(track) ?? false
    }

    /// Folds a new estimate of one channel into the participant's fused emotion and broadcasts
    /// the new state to everyone in the room, the speaker included.
    /// - Parameter source: what the estimate was read from (its chunk or utterance of a track).
    /// - Returns: the new fused state, and whether it changed materially (`fusion.change_threshold`)
    ///   since the last one that did; nil for an unknown participant or a `fused` estimate.
    @discardableResult
    public func report(_ estimate: EmotionEstimate, from user: ParticipantID, source: EmotionSource? = nil) -> FusedReport? {
        guard var participant = participants[user], let fused = participant.fusion.fuse(estimate) else { return nil }
        let material = participant.fusion.markReported(fused)
        let update = EmotionUpdate(room: id, participant: user, estimate: fused, source: source)
        participant.latest = update
        participants[user] = participant
        recorder?.record(.emotion(update))
        broadcast(.emotionUpdate(update))
        return FusedReport(estimate: fused, isMaterialChange: material)
    }

    /// A participant's fused emotion at `time` (seconds since 1970), or nil before any evidence.
    public func emotion(of user: ParticipantID, at time: Double) -> EmotionEstimate? {
        participants[user]?.fusion.current(at: time)
    }

    /// What a participant's fused emotion would be at `time` after `estimates`, without
    /// reporting them (a speculative reply reads ahead); nil for an unknown participant.
    public func emotion(of user: ParticipantID, after estimates: [EmotionEstimate], at time: Double) -> EmotionEstimate? {
        guard var fusion = participants[user]?.fusion else { return nil }
        for estimate in estimates { _ = fusion.fuse(estimate) }
        return fusion.current(at: time)
    }

    /// Shows a change another instance made: the participant joins, leaves or feels as it says,
    /// for everyone here.
    public func apply(_ change: RoomChange) {
        switch change {
        case let .joined(_, user, info, date):
            guard participants[user] == nil else { return }
            described.insert(user)
            let snapshot = ParticipantSnapshot(userID: user, userInfo: info, joinedAt: roomsTimestamp(date), tracks: [], emotion: nil)
            remote[user] = snapshot
            broadcast(.participantJoined(room: id, participant: snapshot))
        case let .left(_, user):
            described.insert(user)
            guard remote.removeValue(forKey: user) != nil else { return }
            broadcast(.participantLeft(room: id, user: user))
        case .emotion(let update):
            guard let known = remote[update.userID] else { return }
            remote[update.userID] = ParticipantSnapshot(
                userID: known.userID, userInfo: known.userInfo, joinedAt: known.joinedAt, tracks: known.tracks, emotion: update)
            broadcast(.emotionUpdate(update))
        }
    }

    /// Adds who is on other instances when the room opened here; a participant a change has
    /// described since (or one connected here) is left as it is.
    public func seed(_ others: [ParticipantSnapshot]) {
        for snapshot in others where participants[snapshot.userID] == nil && !described.contains(snapshot.userID) {
            remote[snapshot.userID] = snapshot
        }
    }

    /// Sends a message to everyone in the room.
    public func broadcast(_ message: RoomServerMessage, except excluded: ParticipantID? = nil) {
        for (user, participant) in participants where user != excluded {
            participant.subscriber.deliver(message)
        }
    }

    /// Everyone present, here and on other instances, in the order of their ids.
    public func snapshot() -> [ParticipantSnapshot] {
        Set(participants.keys).union(remote.keys).sorted().compactMap(snapshot(of:))
    }

    /// Whether nobody is connected here (participants on other instances do not count).
    public var isEmpty: Bool { participants.isEmpty }

    private func snapshot(of user: ParticipantID) -> ParticipantSnapshot? {
        if let other = remote[user] { return other }
        return participants[user].map {
            ParticipantSnapshot(
                userID: user, userInfo: $0.info, joinedAt: roomsTimestamp($0.joinedAt), tracks: $0.tracks.sorted(), emotion: $0.latest)
        }
    }
}

/// The open rooms of a server. A room opens with its first participant and closes when its
/// last one leaves.
public actor RoomDirectory {
    public let limits: RoomLimits
    private let fusion: FusionSettings
    private let recorder: RoomRecorder?
    private let peers: (any RoomPeers)?
    private var rooms: [RoomID: Room] = [:]

    /// - Parameters:
    ///   - recorder: where joins, leaves and emotions are stored, if anywhere.
    ///   - peers: the other instances sharing the rooms, if any: a room that opens here shows
    ///     who is in it there.
    public init(limits: RoomLimits = .init(), fusion: FusionSettings = .init(), recorder: RoomRecorder? = nil, peers: (any RoomPeers)? = nil) {
        self.limits = limits
        self.fusion = fusion
        self.recorder = recorder
        self.peers = peers
    }

    /// Puts `user` into room `id`, opening it if needed, and returns the room.
    public func join(
        _ id: RoomID, as user: ParticipantID, info: JSONValue?, subscriber: any RoomSubscriber, at date: Date = .now
    ) async throws(RoomError) -> Room {
        // A room found here may close while we wait for it (its last participant left); then
        // open a fresh one. Two tries suffice: a room opened here is not closed before we join it.
        for _ in 0..<2 {
            let opened = rooms[id] == nil
            let room = try open(id)
            if opened, let peers {
                // Unreachable peers leave the room showing only this instance's participants.
                await room.seed((try? await peers.participants(in: id)) ?? [])
            }
            do {
                try await room.join(user, info: info, subscriber: subscriber, at: date)
                return room
            } catch where error.code == .unavailable {
                if rooms[id] === room { rooms[id] = nil }
            }
        }
        throw RoomError(.busy, "room \(id) is changing too fast; try again")
    }

    /// Takes `user` out of room `room`; the room closes when it is empty.
    public func leave(_ room: Room, as user: ParticipantID) async {
        if await room.leave(user), rooms[room.id] === room {
            rooms[room.id] = nil
        }
    }

    /// The ids of the open rooms.
    public var roomIDs: [RoomID] { rooms.keys.sorted() }

    public func room(_ id: RoomID) -> Room? { rooms[id] }

    private func open(_ id: RoomID) throws(RoomError) -> Room {
        if let room = rooms[id] { return room }
        guard rooms.count < limits.maxRooms else {
            throw RoomError(.tooManyRooms, "\(limits.maxRooms) rooms are open, the most this server takes (setting rooms.max_rooms)")
        }
        let room = Room(id: id, limits: limits, fusion: fusion, recorder: recorder)
        rooms[id] = room
        return room
    }
}
