import AttuneAudio
import AttuneConversation
import AttuneCore
import Foundation
import HummingbirdWebSocket
import Logging
import NIOCore
import Synchronization

/// What a rooms connection works with: the open rooms, who may join them, and the engines of
/// each participant's pipeline. Built once from the ``ServerComponents``.
struct RoomServices: Sendable {
    let directory: RoomDirectory
    /// Checks join tokens when `rooms.token_secret` is set.
    let access: (any RoomAccess)?
    let listening: ParticipantEngines
    let listeningSettings: ParticipantSettings
    let stream: StreamSettings
    /// Camera frames (`video_frame`); nil when the face models did not load.
    let face: FaceChannel?
}

/// One connection of the rooms protocol (`/ws/rooms`): a participant in one room at a time.
///
/// The session parses frames and keeps the membership; the participant's audio goes through a
/// ``ParticipantPipeline`` of the conversation core (a listener per track, transcription, the
/// text and voice sensors), whose results go to the room (``RoomOutput``), which fuses them per
/// participant. The room delivers into this connection's bounded outbound queue and never
/// waits for it; the watcher disconnects a client that stops reading.
struct RoomSession: Sendable {
    let services: RoomServices
    let connection: SessionConnection
    let logger: Logger

    func run(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async {
        let stream = services.stream
        let queue = OutboundQueue(maxMessages: stream.maxOutboundMessages, maxBytes: stream.maxOutboundBytes)
        let sink = RoomSink(queue: queue)
        let activity = SessionActivity()
        let pipeline = ParticipantPipeline(engines: services.listening, settings: services.listeningSettings)
        let frames = FaceFrames<RoomOutput>(maxFramesPerSecond: services.face?.maxFramesPerSecond ?? 1)
        logger.info("rooms connection opened")

        await withTaskGroup(of: Void.self) { group in
            group.addTask { await queue.write(to: outbound, logger: logger) }
            group.addTask {
                await pipeline.run()
                queue.finish()
            }
            group.addTask {
                await SessionWatcher(connection: connection, idleTimeout: stream.idleTimeout, logger: logger)
                    .run(activity: activity, queue: queue)
            }
            if let face = services.face {
                // A participant's camera: the largest face is their face channel, fused and broadcast.
                group.addTask {
                    await frames.run(channel: face) { reading, frame in
                        if let estimate = reading.estimate(subject: frame.target.subject) {
                            await frame.target.estimate(estimate, utterance: nil, source: EmotionSource(frameAt: frame.timestamp))
                        }
                    } fail: { code, message, target in
                        target.error(RoomError(RoomError.Code(rawValue: code) ?? .unavailable, message))
                    }
                }
            }
            var state = Membership.none
            await read(inbound, state: &state, activity: activity, sink: sink, pipeline: pipeline, frames: frames)
            if case .joined(let room, let user) = state {
                await services.directory.leave(room, as: user)
            }
            activity.end()
            frames.finish()
            pipeline.finish()
        }
        logger.info("rooms connection closed")
    }

    // MARK: - Reading

    private enum Membership {
        case none
        case joined(room: Room, user: ParticipantID)
    }

    private func read(
        _ inbound: WebSocketInboundStream, state: inout Membership, activity: SessionActivity, sink: RoomSink,
        pipeline: ParticipantPipeline, frames: FaceFrames<RoomOutput>
    ) async {
        let stream = services.stream
        var messages = RateBudget(rate: stream.maxMessagesPerSecond, burst: stream.maxMessagesPerSecond * 2)
        do {
            for try await frame in inbound.messages(maxSize: ConversationController.transportFrameLimit(stream)) {
                activity.touch()
                do {
                    let message: RoomClientMessage
                    switch frame {
                    case .text(let text): message = try RoomClientMessage(json: text)
                    case .binary(let buffer): message = try RoomClientMessage(binary: Array(buffer.readableBytesView))
                    }
                    switch message {
                    case .audioData, .videoFrame:
                        break  // audio is paced by its duration per track, frames by face.max_fps
                    default:
                        guard messages.take() else {
                            throw RoomError(.rateLimited, String(
                                format: "more than %.0f messages per second (setting stream.max_messages_per_s); message ignored",
                                stream.maxMessagesPerSecond))
                        }
                    }
                    try await handle(message, state: &state, sink: sink, pipeline: pipeline, frames: frames)
                } catch let error as RoomError {
                    sink.error(error)
                } catch let error as ListenerError {
                    sink.error(RoomError(RoomError.Code(rawValue: error.code) ?? .badMessage, error.description))
                } catch let error as InferencePoolBusyError {
                    sink.error(RoomError(.busy, error.description))
                } catch {
                    sink.error(RoomError(.unavailable, "\(error)"))
                }
            }
        } catch {
            logger.debug("reader stopped: \(error)")
        }
    }

    private func handle(
        _ message: RoomClientMessage, state: inout Membership, sink: RoomSink, pipeline: ParticipantPipeline, frames: FaceFrames<RoomOutput>
    ) async throws {
        switch (message, state) {
        case (.ping, _):
            sink.deliver(.pong(timestamp: roomsTimestamp(.now)))

        case let (.joinRoom(roomID, user, info, token), .none):
            try await services.access?.authorize(token: token, room: roomID, user: user)
            let room = try await services.directory.join(roomID, as: user, info: info, subscriber: sink)
            state = .joined(room: room, user: user)
            logger.info("joined room \(roomID) as \(user)")
        case (.joinRoom, .joined(let room, let user)):
            throw RoomError(.alreadyJoined, "already in room \(room.id) as \(user); send leave_room first")

        case (_, .none):
            throw RoomError(.notJoined, "send join_room first")

        case let (.audioTrackAdded(track), .joined(room, user)):
            try await room.addTrack(track, for: user)
            do {
                try await pipeline.addTrack(track, output: RoomOutput(room: room, user: user, sink: sink))
            } catch {
                try? await room.removeTrack(track, for: user)
                throw error
            }
        case let (.audioTrackRemoved(track), .joined(room, user)):
            try await room.removeTrack(track, for: user)
            try await pipeline.removeTrack(track)
        case let (.audioData(track, bytes, sampleRate), .joined(_, _)):
            try await pipeline.accept(AudioInput(bytes: bytes, sampleRate: sampleRate, encoding: .pcm16), track: track)

        case let (.videoFrame(frame, timestamp), .joined(room, user)):
            guard services.face != nil else { throw RoomError(.unavailable, "face emotion is unavailable: the face models did not load") }
            frames.submit(frame, timestamp: timestamp, to: RoomOutput(room: room, user: user, sink: sink))

        case (.getRoomStatus, .joined(let room, _)):
            sink.deliver(.roomStatus(room: room.id, participants: await room.snapshot()))

        case (.leaveRoom, .joined(let room, let user)):
            await services.directory.leave(room, as: user)
            pipeline.removeAllTracks()
            state = .none
            sink.deliver(.participantLeft(room: room.id, user: user))
            logger.info("left room \(room.id)")
        }
    }
}

/// Where a participant's pipeline results go in a room: transcripts are broadcast to the room,
/// every reading (chunk or utterance, voice or text) is fused into the participant's emotion
/// and broadcast; errors go to the participant alone.
struct RoomOutput: ParticipantOutput {
    let room: Room
    let user: ParticipantID
    let sink: RoomSink

    var subject: String { user.rawValue }

    func finalTranscript(track: TrackID, utterance: Int, start: Double, end: Double, transcript: Transcript, latency: Duration) async {
        guard !transcript.text.isEmpty else { return }
        await room.broadcast(.transcript(room: room.id, user: user, track: track, text: transcript.text, start: start, end: end))
    }

    func estimate(_ estimate: EmotionEstimate, utterance: Int?, source: EmotionSource?) async {
        await room.report(estimate, from: user, source: source)
    }

    func error(_ error: RoomError) { sink.error(error) }
}

/// Delivers a room's messages into one connection's bounded outbound queue.
struct RoomSink: RoomSubscriber {
    let queue: OutboundQueue
    private let errors = ErrorBudget()

    init(queue: OutboundQueue) { self.queue = queue }

    func deliver(_ message: RoomServerMessage) { queue.yield(.json(message.json)) }

    /// Sends an error event, at most 10 a second.
    func error(_ error: RoomError) {
        guard errors.take() else { return }
        deliver(.error(error))
    }
}
