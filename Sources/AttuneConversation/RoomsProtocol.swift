import AttuneCore
import Foundation

// MARK: - Errors

/// Why a rooms message was refused; sent to the client as `{"type":"error","data":{"code","message"}}`.
public struct RoomError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable, Codable, CaseIterable {
        case badMessage = "bad_message"
        case unknownMessage = "unknown_message"
        case notJoined = "not_joined"
        case alreadyJoined = "already_joined"
        case roomFull = "room_full"
        case tooManyRooms = "too_many_rooms"
        case tooManyTracks = "too_many_tracks"
        case unknownTrack = "unknown_track"
        case nameTaken = "name_taken"
        case unsupportedSampleRate = "unsupported_sample_rate"
        case emptyFrame = "empty_frame"
        case oddFrame = "odd_frame"
        case frameTooLarge = "frame_too_large"
        case unauthorized
        case rateLimited = "rate_limited"
        case busy
        case transcriptionFailed = "transcription_failed"
        case unavailable
        /// A camera frame that is not a JPEG or PNG, over a limit, or undecodable.
        case badFrame = "bad_frame"
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}

// MARK: - Client to server

/// A message from a rooms client (`/ws/rooms`), decoded strictly: unknown types, missing or
/// mistyped fields and invalid names are refused with their reason.
public enum RoomClientMessage: Sendable, Equatable {
    case joinRoom(room: RoomID, user: ParticipantID, info: JSONValue?, token: String?)
    case audioTrackAdded(TrackID)
    case audioTrackRemoved(TrackID)
    /// PCM16 little-endian mono samples of one track.
    case audioData(track: TrackID, bytes: [UInt8], sampleRate: Int)
    /// A camera frame: a `data:image/jpeg;base64,` (or PNG) URL or bare base64, and the client's time.
    case videoFrame(frame: String, timestamp: Double?)
    case getRoomStatus
    case leaveRoom
    case ping

    /// Sample rates accepted for `audio_data`.
    public static let sampleRates = 8_000...48_000
    /// Sample rate of binary audio frames.
    public static let binarySampleRate = 16_000
    /// Largest `user_info`, as JSON.
    public static let maxUserInfoBytes = 4_096

    /// Decodes a text frame.
    public init(json text: String) throws(RoomError) {
        let data = Data(text.utf8)
        let type: String
        do {
            type = try JSONDecoder().decode(Envelope.self, from: data).type
        } catch {
            throw RoomError(.badMessage, "a message is a JSON object with a string \"type\"")
        }
        switch type {
        case "join_room":
            let body: JoinBody = try Self.decode(data, type)
            if let info = body.user_info {
                let size = (try? JSONEncoder().encode(info).count) ?? Int.max
                guard size <= Self.maxUserInfoBytes else {
                    throw RoomError(.badMessage, "user_info is \(size) bytes of JSON; at most \(Self.maxUserInfoBytes)")
                }
            }
            self = .joinRoom(room: body.room_id, user: body.user_id, info: body.user_info, token: body.token)
        case "audio_track_added":
            self = .audioTrackAdded((try Self.decode(data, type) as TrackBody).track_id)
        case "audio_track_removed":
            self = .audioTrackRemoved((try Self.decode(data, type) as TrackBody).track_id)
        case "audio_data":
            let body: AudioBody = try Self.decode(data, type)
            guard Self.sampleRates.contains(body.sample_rate) else {
                throw RoomError(.unsupportedSampleRate, "sample_rate \(body.sample_rate) Hz is outside 8000-48000 Hz")
            }
            guard let bytes = Data(base64Encoded: body.audio_data) else {
                throw RoomError(.badMessage, "audio_data is not valid base64")
            }
            self = .audioData(track: body.track_id, bytes: Array(bytes), sampleRate: body.sample_rate)
        case "video_frame":
            let body: VideoFrameBody = try Self.decode(data, type)
            guard !body.frame.isEmpty, body.timestamp?.isFinite ?? true else {
                throw RoomError(.badMessage, "video_frame needs \(VideoFrameBody.expected)")
            }
            self = .videoFrame(frame: body.frame, timestamp: body.timestamp)
        case "get_room_status": self = .getRoomStatus
        case "leave_room": self = .leaveRoom
        case "ping": self = .ping
        default:
            throw RoomError(.unknownMessage, "unknown message type \"\(String(type.prefix(40)))\"")
        }
    }

    /// Decodes a binary frame: one byte N, a track id of N ASCII bytes, then PCM16 little-endian
    /// mono samples at 16 kHz.
    public init(binary frame: [UInt8]) throws(RoomError) {
        guard let length = frame.first, length > 0, frame.count > Int(length) else {
            throw RoomError(.badMessage, "a binary frame starts with the track id's length (1 byte) and the track id")
        }
        let name = String(decoding: frame[1...Int(length)], as: UTF8.self)
        guard let track = TrackID(name) else {
            throw RoomError(.badMessage, "the binary frame's track id is not a valid name (1-64 letters, digits or -_.:@)")
        }
        self = .audioData(track: track, bytes: Array(frame[(Int(length) + 1)...]), sampleRate: Self.binarySampleRate)
    }

    private static func decode<Body: Decodable & Expectation>(_ data: Data, _ type: String) throws(RoomError) -> Body {
        do {
            return try JSONDecoder().decode(Body.self, from: data)
        } catch {
            throw RoomError(.badMessage, "\(type) needs \(Body.expected)")
        }
    }

    private struct Envelope: Decodable { let type: String }

    private protocol Expectation { static var expected: String { get } }

    private struct JoinBody: Decodable, Expectation {
        let room_id: RoomID
        let user_id: ParticipantID
        let user_info: JSONValue?
        let token: String?
        static let expected = "room_id and user_id (1-64 letters, digits or -_.:@), optional user_info (object) and token"
    }

    private struct TrackBody: Decodable, Expectation {
        let track_id: TrackID
        static let expected = "track_id (1-64 letters, digits or -_.:@)"
    }

    private struct VideoFrameBody: Decodable, Expectation {
        let frame: String
        let timestamp: Double?
        static let expected = "frame (a data:image/jpeg;base64 URL or base64 of a JPEG or PNG) and optional timestamp (a number)"
    }

    private struct AudioBody: Decodable, Expectation {
        let track_id: TrackID
        let audio_data: String
        let sample_rate: Int
        static let expected = "track_id, audio_data (base64 PCM16) and sample_rate (whole number, 8000-48000)"
    }
}

// MARK: - Server to client

/// What the rooms protocol calls the seven classes: `happiness` for Attune's `joy`.
public func roomsEmotionName(_ label: EmotionLabel) -> String {
    label == .joy ? "happiness" : label.rawValue
}

/// Time as the rooms protocol writes it: ISO-8601 in UTC with milliseconds.
public func roomsTimestamp(_ date: Date) -> String {
    date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
}

/// One participant's emotion as broadcast to the room (`emotion_update`'s `data`).
/// What an emotion update was read from: a channel's reading of a chunk of a track or of a
/// whole utterance, with its span in seconds since the track's first audio.
public struct EmotionSource: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        case chunk, utterance, frame
    }

    public let channel: String
    public let kind: Kind
    /// The audio track and span (seconds since its first audio) of a chunk or utterance.
    public let trackID: TrackID?
    public let start: Double?
    public let end: Double?
    /// The client's time of a camera frame.
    public let timestamp: Double?

    public init(channel: EmotionChannel, kind: Kind, track: TrackID, start: Double, end: Double) {
        self.channel = channel.rawValue
        self.kind = kind
        trackID = track
        self.start = start.rounded(to: 3)
        self.end = end.rounded(to: 3)
        timestamp = nil
    }

    /// The face in a camera frame sent at `timestamp`.
    public init(frameAt timestamp: Double) {
        channel = EmotionChannel.face.rawValue
        kind = .frame
        trackID = nil
        start = nil
        end = nil
        self.timestamp = timestamp.rounded(to: 3)
    }

    enum CodingKeys: String, CodingKey {
        case channel, kind, start, end, timestamp
        case trackID = "track_id"
    }
}

public struct EmotionUpdate: Codable, Sendable, Equatable {
    public let userID: ParticipantID
    public let roomID: RoomID
    public let timestamp: String
    public let emotion: String
    public let confidence: Double
    public let emotionScores: [String: Double]
    public let channel: String
    public let valence: Double
    public let arousal: Double
    /// The reading that produced this update, when it came from a participant's audio.
    public let source: EmotionSource?

    public init(room: RoomID, participant: ParticipantID, estimate: EmotionEstimate, source: EmotionSource? = nil) {
        self.source = source
        userID = participant
        roomID = room
        timestamp = roomsTimestamp(Date(timeIntervalSince1970: estimate.time))
        emotion = roomsEmotionName(estimate.label)
        confidence = estimate.confidence
        emotionScores = Dictionary(uniqueKeysWithValues: estimate.probabilities.map { (roomsEmotionName($0.key), $0.value) })
        channel = estimate.channel.rawValue
        valence = estimate.valence
        arousal = estimate.arousal
    }

    enum CodingKeys: String, CodingKey {
        case userID = "user_id", roomID = "room_id", timestamp, emotion, confidence, emotionScores = "emotion_scores", channel,
            valence, arousal, source
    }
}

/// A participant as the room sees it.
public struct ParticipantSnapshot: Encodable, Sendable, Equatable {
    public let userID: ParticipantID
    public let userInfo: JSONValue?
    public let joinedAt: String
    public let tracks: [TrackID]
    /// The latest fused emotion, if any.
    public let emotion: EmotionUpdate?

    public init(userID: ParticipantID, userInfo: JSONValue?, joinedAt: String, tracks: [TrackID], emotion: EmotionUpdate?) {
        self.userID = userID
        self.userInfo = userInfo
        self.joinedAt = joinedAt
        self.tracks = tracks
        self.emotion = emotion
    }

    enum CodingKeys: String, CodingKey {
        case userID = "user_id", userInfo = "user_info", joinedAt = "joined_at", tracks, emotion
    }
}

/// A message to a rooms client: `{"type": ..., "data": {...}}`.
public enum RoomServerMessage: Sendable, Equatable {
    case roomJoined(room: RoomID, user: ParticipantID, participants: [ParticipantSnapshot])
    case participantJoined(room: RoomID, participant: ParticipantSnapshot)
    case participantLeft(room: RoomID, user: ParticipantID)
    case emotionUpdate(EmotionUpdate)
    case roomStatus(room: RoomID, participants: [ParticipantSnapshot])
    case transcript(room: RoomID, user: ParticipantID, track: TrackID, text: String, start: Double, end: Double)
    case pong(timestamp: String)
    case error(RoomError)

    public var type: String {
        switch self {
        case .roomJoined: "room_joined"
        case .participantJoined: "participant_joined"
        case .participantLeft: "participant_left"
        case .emotionUpdate: "emotion_update"
        case .roomStatus: "room_status"
        case .transcript: "transcript"
        case .pong: "pong"
        case .error: "error"
        }
    }

    /// The JSON text frame.
    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(Envelope(type: type, data: Payload(self)))) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    private struct Envelope: Encodable {
        let type: String
        let data: Payload
    }

    private struct Payload: Encodable {
        let message: RoomServerMessage
        init(_ message: RoomServerMessage) { self.message = message }

        private enum Key: String, CodingKey {
            case roomID = "room_id", userID = "user_id", participants, participant, trackID = "track_id", text, start, end,
                timestamp, code, message, participantCount = "participant_count"
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Key.self)
            switch message {
            case let .roomJoined(room, user, participants):
                try container.encode(room, forKey: .roomID)
                try container.encode(user, forKey: .userID)
                try container.encode(participants, forKey: .participants)
            case let .participantJoined(room, participant):
                try container.encode(room, forKey: .roomID)
                try container.encode(participant.userID, forKey: .userID)
                try container.encode(participant, forKey: .participant)
            case let .participantLeft(room, user):
                try container.encode(room, forKey: .roomID)
                try container.encode(user, forKey: .userID)
            case .emotionUpdate(let update):
                try update.encode(to: encoder)
            case let .roomStatus(room, participants):
                try container.encode(room, forKey: .roomID)
                try container.encode(participants.count, forKey: .participantCount)
                try container.encode(participants, forKey: .participants)
            case let .transcript(room, user, track, text, start, end):
                try container.encode(room, forKey: .roomID)
                try container.encode(user, forKey: .userID)
                try container.encode(track, forKey: .trackID)
                try container.encode(text, forKey: .text)
                try container.encode(start, forKey: .start)
                try container.encode(end, forKey: .end)
            case .pong(let timestamp):
                try container.encode(timestamp, forKey: .timestamp)
            case .error(let error):
                try container.encode(error.code.rawValue, forKey: .code)
                try container.encode(error.message, forKey: .message)
            }
        }
    }
}
