import AttuneAudio
import AttuneConversation
import AttuneCore
import Foundation
import HummingbirdWebSocket
import Logging
import NIOCore
import Synchronization

/// One connection of the rooms protocol (`/ws/rooms`): a participant in one room at a time.
///
/// The session parses frames and keeps the membership; the participant's audio goes through a
/// ``ParticipantPipeline`` of the conversation core (a listener per track, transcription, the
/// text sensor, fusion in the room). The room delivers into this connection's bounded outbound
/// queue and never waits for it; the watcher disconnects a client that stops reading.
struct RoomSession: Sendable {
    let components: ServerComponents
    let connection: SessionConnection
    let logger: Logger

    func run(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async {
        let stream = components.stream
        let queue = OutboundQueue(maxMessages: stream.maxOutboundMessages, maxBytes: stream.maxOutboundBytes)
        let sink = RoomSink(queue: queue)
        let activity = SessionActivity()
        let pipeline = ParticipantPipeline(engines: components.participantEngines, settings: components.participantSettings) { sink.error($0) }
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
            var state = Membership.none
            await read(inbound, state: &state, activity: activity, sink: sink, pipeline: pipeline)
            if case .joined(let room, let user) = state {
                await components.rooms.leave(room, as: user)
            }
            activity.end()
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
        pipeline: ParticipantPipeline
    ) async {
        let stream = components.stream
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
                    if case .audioData = message {
                        // Audio is paced by its duration per track, not counted as a message.
                    } else if !messages.take() {
                        throw RoomError(.rateLimited, String(
                            format: "more than %.0f messages per second (setting stream.max_messages_per_s); message ignored",
                            stream.maxMessagesPerSecond))
                    }
                    try await handle(message, state: &state, sink: sink, pipeline: pipeline)
                } catch let error as RoomError {
                    sink.error(error)
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

    private func handle(_ message: RoomClientMessage, state: inout Membership, sink: RoomSink, pipeline: ParticipantPipeline) async throws {
        switch (message, state) {
        case (.ping, _):
            sink.deliver(.pong(timestamp: roomsTimestamp(.now)))

        case let (.joinRoom(roomID, user, info, token), .none):
            try await components.roomAccess?.authorize(token: token, room: roomID, user: user)
            let room = try await components.rooms.join(roomID, as: user, info: info, subscriber: sink)
            state = .joined(room: room, user: user)
            logger.info("joined room \(roomID) as \(user)")
        case (.joinRoom, .joined(let room, let user)):
            throw RoomError(.alreadyJoined, "already in room \(room.id) as \(user); send leave_room first")

        case (_, .none):
            throw RoomError(.notJoined, "send join_room first")

        case let (.audioTrackAdded(track), .joined(room, user)):
            try await pipeline.addTrack(track, in: room, as: user)
        case let (.audioTrackRemoved(track), .joined(room, user)):
            try await pipeline.removeTrack(track, in: room, as: user)
        case let (.audioData(track, bytes, sampleRate), .joined(room, user)):
            try await pipeline.accept(AudioInput(bytes: bytes, sampleRate: sampleRate, encoding: .pcm16), track: track, in: room, as: user)

        case (.getRoomStatus, .joined(let room, _)):
            sink.deliver(.roomStatus(room: room.id, participants: await room.snapshot()))

        case (.leaveRoom, .joined(let room, let user)):
            await components.rooms.leave(room, as: user)
            pipeline.removeAllTracks()
            state = .none
            sink.deliver(.participantLeft(room: room.id, user: user))
            logger.info("left room \(room.id)")
        }
    }
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
