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
/// Each audio track the participant adds gets its own turn detector (Silero VAD on the listening
/// threads). A finished utterance goes to this connection's transcription task, which decodes it
/// with Whisper (reusing the decode started in the pause that ended it, as the companion does),
/// broadcasts the transcript (when `rooms.transcribe` is on), reads its emotion
/// with the text sensor and reports it to the room, which fuses it per participant and
/// broadcasts `emotion_update` to everyone present. The room delivers into this connection's
/// bounded outbound queue and never waits for it; the watcher disconnects a client that
/// stops reading.
struct RoomSession: Sendable {
    let components: ServerComponents
    let connection: SessionConnection
    let logger: Logger

    func run(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async {
        let stream = components.stream
        let queue = OutboundQueue(maxMessages: stream.maxOutboundMessages, maxBytes: stream.maxOutboundBytes)
        let sink = RoomSink(queue: queue)
        let activity = SessionActivity()
        let pending = PendingUtterances(limit: stream.maxPendingTurns)
        let (jobs, enqueue) = AsyncStream.makeStream(of: UtteranceJob.self)
        logger.info("rooms connection opened")

        await withTaskGroup(of: Void.self) { group in
            group.addTask { await queue.write(to: outbound, logger: logger) }
            group.addTask {
                await transcribe(jobs, pending: pending, sink: sink)
                queue.finish()
            }
            group.addTask {
                await SessionWatcher(connection: connection, idleTimeout: stream.idleTimeout, logger: logger)
                    .run(activity: activity, queue: queue)
            }
            var state = Membership.none
            await read(inbound, state: &state, activity: activity, sink: sink, pending: pending, enqueue: enqueue)
            if case .joined(let room, let user, _) = state {
                await components.rooms.leave(room, as: user)
            }
            activity.end()
            enqueue.finish()
        }
        logger.info("rooms connection closed")
    }

    // MARK: - Reading

    private enum Membership {
        case none
        case joined(room: Room, user: ParticipantID, tracks: [TrackID: TrackListener])
    }

    /// A track's turn detector and where its timeline started.
    private struct TrackListener {
        let listener: Listener
        var pace: StreamPace
    }

    private func read(
        _ inbound: WebSocketInboundStream, state: inout Membership, activity: SessionActivity, sink: RoomSink,
        pending: PendingUtterances, enqueue: AsyncStream<UtteranceJob>.Continuation
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
                    try await handle(message, state: &state, sink: sink, pending: pending, enqueue: enqueue)
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

    private func handle(
        _ message: RoomClientMessage, state: inout Membership, sink: RoomSink, pending: PendingUtterances,
        enqueue: AsyncStream<UtteranceJob>.Continuation
    ) async throws {
        switch (message, state) {
        case (.ping, _):
            sink.deliver(.pong(timestamp: roomsTimestamp(.now)))

        case let (.joinRoom(roomID, user, info, token), .none):
            try await components.roomAccess?.authorize(token: token, room: roomID, user: user)
            let room = try await components.rooms.join(roomID, as: user, info: info, subscriber: sink)
            state = .joined(room: room, user: user, tracks: [:])
            logger.info("joined room \(roomID) as \(user)")
        case (.joinRoom, .joined(let room, let user, _)):
            throw RoomError(.alreadyJoined, "already in room \(room.id) as \(user); send leave_room first")

        case (_, .none):
            throw RoomError(.notJoined, "send join_room first")

        case let (.audioTrackAdded(track), .joined(room, user, tracks)):
            guard tracks[track] == nil else { return }
            try await room.addTrack(track, for: user)
            let listener = try await makeListener()
            var updated = tracks
            updated[track] = TrackListener(listener: listener, pace: StreamPace(maxRealtimeFactor: components.stream.maxRealtimeFactor))
            state = .joined(room: room, user: user, tracks: updated)

        case let (.audioTrackRemoved(track), .joined(room, user, tracks)):
            try await room.removeTrack(track, for: user)
            if let ending = tracks[track] {
                // What the participant said last on this track still counts.
                let events = try await components.listenPool.run { ending.listener.endTurn() }
                submit(events, room: room, user: user, track: track, sink: sink, pending: pending, enqueue: enqueue)
            }
            var updated = tracks
            updated[track] = nil
            state = .joined(room: room, user: user, tracks: updated)

        case let (.audioData(track, bytes, sampleRate), .joined(room, user, tracks)):
            guard var entry = tracks[track] else {
                throw RoomError(.unknownTrack, "no audio track \(track); send audio_track_added first")
            }
            let input = ListenerInput(bytes: bytes, sampleRate: sampleRate, encoding: .pcm16)
            if let refusal = entry.pace.admit(seconds: input.seconds) { throw RoomError(.rateLimited, refusal) }
            var updated = tracks
            updated[track] = entry
            state = .joined(room: room, user: user, tracks: updated)
            let maxBytes = components.stream.maxFrameBytes
            let listener = entry.listener
            let outcome = try await components.listenPool.run { () -> Result<[ListenerEvent], AudioFrameError> in
                Result { () throws(AudioFrameError) in try listener.accept(input, maxBytes: maxBytes) }
            }
            switch outcome {
            case .failure(let error):
                throw RoomError(RoomError.Code(rawValue: error.code.rawValue) ?? .badMessage, error.description)
            case .success(let events):
                submit(events, room: room, user: user, track: track, sink: sink, pending: pending, enqueue: enqueue)
            }

        case (.getRoomStatus, .joined(let room, _, _)):
            sink.deliver(.roomStatus(room: room.id, participants: await room.snapshot()))

        case (.leaveRoom, .joined(let room, let user, _)):
            await components.rooms.leave(room, as: user)
            state = .none
            sink.deliver(.participantLeft(room: room.id, user: user))
            logger.info("left room \(room.id)")
        }
    }

    /// Queues utterances for transcription: a finished one (refused with `busy` when too many
    /// wait), and a pause's audio as a guess that its final reuses when the pause ends the turn
    /// (skipped silently when too many wait).
    private func submit(
        _ events: [ListenerEvent], room: Room, user: ParticipantID, track: TrackID, sink: RoomSink,
        pending: PendingUtterances, enqueue: AsyncStream<UtteranceJob>.Continuation
    ) {
        guard components.roomSettings.transcribe else { return }
        for event in events {
            switch event {
            case let .paused(utterance, audio):
                guard pending.claim() else { continue }
                enqueue.yield(UtteranceJob(room: room, user: user, track: track, utterance: utterance, audio: audio, span: nil))
            case let .ended(utterance, start, end, audio, _):
                guard pending.claim() else {
                    sink.error(RoomError(.busy, "\(pending.limit) utterances are already waiting for transcription (setting stream.max_pending_turns); this one is skipped"))
                    continue
                }
                enqueue.yield(UtteranceJob(room: room, user: user, track: track, utterance: utterance, audio: audio, span: (start, end)))
            case .started:
                continue
            }
        }
    }

    private func makeListener() async throws -> Listener {
        let components = self.components
        return try await components.listenPool.run { try Listener(components: components) }
    }

    // MARK: - Transcribing

    private func transcribe(_ jobs: AsyncStream<UtteranceJob>, pending: PendingUtterances, sink: RoomSink) async {
        let sensor = components.textSensor
        // Per track, the latest guess decoded in a pause; the final with the same audio reuses it.
        var guesses: [TrackID: (utterance: Int, audio: [Float], transcript: Transcript)] = [:]
        for await job in jobs {
            defer { pending.release() }
            guard let transcriber = components.transcriber else {
                if job.span != nil { sink.error(RoomError(.unavailable, "speech recognition is unavailable: the Whisper model did not load")) }
                continue
            }
            guard let (start, end) = job.span else {
                guesses[job.track] = (try? await transcriber.transcribe(job.audio, pass: .final)).map { (job.utterance, job.audio, $0) }
                continue
            }
            do {
                let transcript: Transcript
                if let guess = guesses.removeValue(forKey: job.track), guess.utterance == job.utterance, guess.audio == job.audio {
                    transcript = guess.transcript
                } else {
                    transcript = try await transcriber.transcribe(job.audio, pass: .final)
                }
                guard !transcript.text.isEmpty else { continue }
                await job.room.broadcast(.transcript(
                    room: job.room.id, user: job.user, track: job.track, text: transcript.text, start: start, end: end))
                if let estimate = try await sensor?.estimate(.text(transcript.text), subject: job.user.rawValue, time: Date().timeIntervalSince1970) {
                    await job.room.report(estimate, from: job.user)
                }
            } catch let error as InferencePoolBusyError {
                sink.error(RoomError(.busy, error.description))
            } catch {
                sink.error(RoomError(.transcriptionFailed, "could not transcribe an utterance of track \(job.track): \(error)"))
            }
        }
    }
}

/// An utterance of one track, waiting for Whisper: finished, or a guess made in a pause.
struct UtteranceJob: Sendable {
    let room: Room
    let user: ParticipantID
    let track: TrackID
    /// The utterance's number on its track.
    let utterance: Int
    let audio: [Float]
    /// Seconds since the track's first audio, for a finished utterance; nil for a guess.
    let span: (start: Double, end: Double)?
}

/// Utterances waiting for transcription on one connection, at most `limit`.
final class PendingUtterances: Sendable {
    let limit: Int
    private let count = Mutex(0)

    init(limit: Int) { self.limit = limit }

    func claim() -> Bool {
        count.withLock { count in
            guard count < limit else { return false }
            count += 1
            return true
        }
    }

    func release() { count.withLock { $0 -= 1 } }
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
