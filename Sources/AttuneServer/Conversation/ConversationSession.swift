import AttuneAudio
import AttuneCore
import AttuneConversation
import AttuneEmotion
import AttuneFace
import AttuneSpeech
import Foundation
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket
import ServiceLifecycle
import Synchronization

/// What a companion session works with: the engines of its pipeline and of its replies, and
/// their settings. Built once from the ``ServerComponents``.
struct CompanionServices: Sendable {
    let listening: ParticipantEngines
    let listeningSettings: ParticipantSettings
    let replies: ResponderEngines
    let replySettings: ResponderSettings
    let stream: StreamSettings
    let fusion: FusionSettings
    /// Camera frames (`video_frame`); nil when the face models did not load.
    let face: FaceChannel?
}

/// One person's live session with the companion: a room of one person, whose audio goes
/// through a ``ParticipantPipeline`` of the conversation core (one track, `mic`), and the
/// ``Responder`` that answers each finished turn.
///
/// This task reads frames and control messages; the pipeline's tasks transcribe and read the
/// voice; the responder answers turns one at a time; a writer task sends events in order; a
/// watcher closes a session that has gone idle, whose client stopped reading, or that outlives
/// a server shutdown. Audio reads wait for voice activity detection, which paces a fast
/// client; transcription runs beside them so a long decode never delays hearing the next turn.
struct ConversationSession: Sendable {
    /// Allowed end-of-turn silence in a `configure` message, in milliseconds.
    static let silenceRange = 100...5_000
    /// The person's one audio track.
    static let track = TrackID("mic")!
    static let person = ParticipantID("person")!
    let services: CompanionServices
    let connection: SessionConnection
    let logger: Logger
    let id = UUID().uuidString.lowercased()

    init(services: CompanionServices, connection: SessionConnection, logger: Logger) {
        self.services = services
        self.connection = connection
        var logger = logger
        logger[metadataKey: "session.id"] = .string(id)
        self.logger = logger
    }

    func run(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async {
        let stream = services.stream
        let queue = OutboundQueue(maxMessages: stream.maxOutboundMessages, maxBytes: stream.maxOutboundBytes)
        let emit = EventSink(queue)
        let activity = SessionActivity()
        let responder = Responder(engines: services.replies, settings: services.replySettings, sessionID: id, emit: queue, logger: logger)
        let pipeline = ParticipantPipeline(engines: services.listening, settings: services.listeningSettings)
        let room = Room(id: RoomID(id)!, limits: .init(), fusion: services.fusion)
        try? await room.join(Self.person, info: nil, subscriber: NoSubscriber())
        let output = CompanionOutput(
            subject: id, room: room, person: Self.person, emit: emit, responder: responder,
            maxPendingTurns: services.replySettings.maxPendingTurns, speculates: services.replySettings.reply.speculativeStart)
        let frames = FaceFrames<Void>(maxFramesPerSecond: services.face?.maxFramesPerSecond ?? 1)
        logger.info("conversation started")

        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await queue.write(to: outbound, logger: logger)
            }
            group.addTask {
                await responder.run()
                queue.finish()
            }
            group.addTask {
                await pipeline.run()
                await responder.close()
            }
            group.addTask {
                await SessionWatcher(connection: connection, idleTimeout: stream.idleTimeout, logger: logger)
                    .run(activity: activity, queue: queue)
            }
            if let face = services.face {
                group.addTask {
                    await frames.run(channel: face) { reading, frame in
                        emit.yield(.faces(FrameFaces(reading, timestamp: frame.timestamp, droppedFrames: frames.dropped)))
                        if let estimate = reading.estimate(subject: output.subject) {
                            await output.estimate(estimate, utterance: nil, source: nil)
                        }
                    } fail: { code, message, _ in
                        emit.error(ServerEvent.ErrorCode(rawValue: code) ?? .unavailable, message)
                    }
                }
            }
            emit.yield(.sessionStarted(sessionID: id, sampleRate: 16_000, maxFrameBytes: stream.maxFrameBytes))
            await read(inbound, activity: activity, emit: emit, pipeline: pipeline, output: output, responder: responder, frames: frames)
            activity.end()
            frames.finish()
            pipeline.finish()
        }
        logger.info("conversation ended")
    }

    // MARK: - Reading

    private func read(
        _ inbound: WebSocketInboundStream, activity: SessionActivity, emit: EventSink, pipeline: ParticipantPipeline,
        output: CompanionOutput, responder: Responder, frames: FaceFrames<Void>
    ) async {
        do {
            // The session's VAD model loads on the listening threads, waiting up to 5 s while they are busy.
            try await pipeline.addTrack(Self.track, output: output, loadAttempts: 50)
        } catch let error as InferencePoolBusyError {
            emit.yield(.error(code: .busy, message: error.description))
            await connection.close(.unknown(1013), "the server is busy; try again later")
            return
        } catch {
            emit.yield(.error(code: .unavailable, message: "voice activity detection is unavailable: \(error)"))
            return
        }
        let stream = services.stream
        var messages = RateBudget(rate: stream.maxMessagesPerSecond, burst: stream.maxMessagesPerSecond * 2)
        do {
            for try await message in inbound.messages(maxSize: ConversationController.transportFrameLimit(stream)) {
                activity.touch()
                do {
                    let audio: AudioInput
                    switch message {
                    case .binary(let buffer):
                        audio = .init(bytes: Array(buffer.readableBytesView), sampleRate: 16_000, encoding: .pcm16)
                    case .text(let text):
                        guard let parsed = try await control(
                            text, budget: &messages, emit: emit, pipeline: pipeline, output: output, responder: responder, frames: frames)
                        else { continue }
                        audio = parsed
                    }
                    try await pipeline.accept(audio, track: Self.track)
                } catch let error as ListenerError {
                    // This frame is refused alone; the session goes on.
                    emit.error(ServerEvent.ErrorCode(rawValue: error.code) ?? .badMessage, error.description)
                } catch let error as RoomError {
                    output.error(error)
                } catch let error as InferencePoolBusyError {
                    emit.error(.busy, error.description)
                }
            }
        } catch {
            logger.debug("reader stopped: \(error)")
        }
    }

    /// Handles a text frame: control messages are answered here and give nil; `audio_data`
    /// gives its audio. Every text frame spends from the session's message budget.
    private func control(
        _ text: String, budget: inout RateBudget, emit: EventSink, pipeline: ParticipantPipeline, output: CompanionOutput,
        responder: Responder, frames: FaceFrames<Void>
    ) async throws -> AudioInput? {
        let parsed = Result { () throws(ClientMessage.ParseError) in
            try ClientMessage(json: text, maxTextBytes: services.stream.maxTextBytes)
        }
        switch parsed {
        case .success(.audioData), .success(.videoFrame):
            // Audio is paced by its duration and frames by face.max_fps, not counted as messages.
            break
        default:
            guard budget.take() else {
                emit.error(.rateLimited, String(
                    format: "more than %.0f messages per second (setting stream.max_messages_per_s); message ignored",
                    services.stream.maxMessagesPerSecond))
                return nil
            }
        }
        switch parsed {
        case .failure(let error):
            emit.error(error.code, error.message)
        case .success(.ping):
            emit.yield(.pong)
        case .success(.endTurn):
            try await pipeline.endTurn(track: Self.track)
        case let .success(.configure(persona, voice, rate, silence)):
            if let problem = await responder.configure(persona: persona, voice: voice, rate: rate) {
                emit.error(.badSetting, problem)
                return nil
            }
            if let silence, !Self.silenceRange.contains(silence) {
                emit.error(.badSetting, "silence_ms must be between \(Self.silenceRange.lowerBound) and \(Self.silenceRange.upperBound)")
                return nil
            }
            let current = try await pipeline.trailingSilence(track: Self.track, set: silence.map { Double($0) / 1000 })
            emit.yield(.configured(
                persona: await responder.persona.id, voice: await responder.voice, rate: await responder.rate,
                silenceMilliseconds: Int((current * 1000).rounded())))
        case let .success(.playback(reply, played)):
            await responder.playback(reply: reply, playedMilliseconds: played)
        case .success(.userText(let text)):
            // Typed turns are not utterances of the audio stream: they carry utterance 0.
            if !pipeline.submitText(text, output: output) { output.refuseTurn() }
        case let .success(.videoFrame(frame, timestamp)):
            guard services.face != nil else {
                emit.error(.unavailable, "face emotion is unavailable: the face models did not load")
                return nil
            }
            frames.submit(frame, timestamp: timestamp, to: ())
        case let .success(.audioData(bytes, rate, encoding)):
            return .init(bytes: bytes, sampleRate: rate, encoding: encoding)
        }
        return nil
    }
}

/// The companion's side of its room of one: turns what the pipeline finds into the
/// conversation protocol's events, fuses the person's emotion in the room, and hands each turn
/// to the responder (a new utterance interrupts a reply: barge-in).
struct CompanionOutput: ParticipantOutput {
    let subject: String
    let room: Room
    let person: ParticipantID
    let emit: EventSink
    let responder: Responder
    let maxPendingTurns: Int
    /// Whether replies start speculatively in pauses (`reply.speculative_start`).
    let speculates: Bool

    func speechStarted(track: TrackID, utterance: Int, start: Double) async {
        emit.yield(.speechStarted(utterance: utterance, start: start))
        await responder.dropSpeculation()
        // Barge-in: the person speaks over a reply.
        if await responder.isReplying { await responder.bargeIn() }
    }

    func speechResumed(track: TrackID, utterance: Int) async {
        await responder.dropSpeculation()
    }

    /// Starts the reply the turn would get if the pause ends it, with the emotion it would have.
    func speculate(_ turn: ParticipantTurn, readings: [EmotionEstimate]) async {
        await responder.speculate(on: await userTurn(turn, readings: readings))
    }

    /// A pause's guess as the turn it would be, with the emotion it would have.
    private func userTurn(_ turn: ParticipantTurn, readings: [EmotionEstimate]) async -> UserTurn {
        let fused = await room.emotion(of: person, after: readings, at: Date().timeIntervalSince1970)
        return UserTurn(
            utterance: turn.utterance, text: turn.text, textEmotion: turn.textEstimate, fused: fused,
            speechEndedAt: turn.speechEndedAt, transcribedAt: turn.transcribedAt, startedAt: turn.startedAt)
    }

    func speechEnded(track: TrackID, utterance: Int, start: Double, end: Double, reason: String) async {
        emit.yield(.speechEnded(utterance: utterance, start: start, end: end, reason: reason))
    }

    func partialTranscript(track: TrackID, utterance: Int, text: String) async {
        emit.yield(.transcriptPartial(utterance: utterance, text: text))
    }

    /// The speaker will most likely go on after these words: the model reads them meanwhile,
    /// after the feeling they would be answered with.
    func pauseHeld(_ turn: ParticipantTurn, readings: [EmotionEstimate]) async {
        await responder.readAhead(on: await userTurn(turn, readings: readings))
    }

    func finalTranscript(track: TrackID, utterance: Int, start: Double, end: Double, transcript: Transcript, latency: Duration) async {
        emit.yield(.transcriptFinal(utterance: utterance, start: start, end: end, transcript: transcript, latencyMilliseconds: latency.milliseconds))
    }

    /// Every reading goes out as `emotion`; readings of whole utterances and typed text are
    /// fused (a chunk's reading is a preview: its utterance's whole voice is fused when it ends),
    /// and a material change of the fused state goes out as `emotion_update`.
    func estimate(_ estimate: EmotionEstimate, utterance: Int?, source: EmotionSource?) async {
        emit.yield(.emotion(utterance: utterance, estimate: estimate))
        guard source?.kind != .chunk else { return }
        if let report = await room.report(estimate, from: person, source: source), report.isMaterialChange {
            emit.yield(.emotionUpdate(estimate: report.estimate))
        }
    }

    func turn(_ turn: ParticipantTurn) async {
        let fused = await room.emotion(of: person, at: Date().timeIntervalSince1970)
        let accepted = await responder.respond(to: UserTurn(
            utterance: turn.utterance, text: turn.text, textEmotion: turn.textEstimate, fused: fused,
            speechEndedAt: turn.speechEndedAt, transcribedAt: turn.transcribedAt, startedAt: turn.startedAt))
        if !accepted { refuseTurn() }
    }

    func refuseTurn() {
        emit.error(.busy, "\(maxPendingTurns) turns are already waiting for an answer (setting stream.max_pending_turns); this one is not answered")
    }

    func error(_ error: RoomError) {
        emit.error(ServerEvent.ErrorCode(rawValue: error.code.rawValue) ?? .unavailable, error.message)
    }
}

/// The companion's room has no other participant to tell anything.
private struct NoSubscriber: RoomSubscriber {
    func deliver(_ message: RoomServerMessage) {}
}

/// Sends JSON events into the session's outbound queue. Error events are rate limited (a
/// client sending garbage gets a few errors a second, not one per frame).
struct EventSink: Sendable {
    let queue: OutboundQueue
    private let errors = ErrorBudget()

    init(_ queue: OutboundQueue) {
        self.queue = queue
    }

    func yield(_ event: ServerEvent) { queue.yield(event) }

    func error(_ code: ServerEvent.ErrorCode, _ message: String) {
        guard errors.take() else { return }
        queue.yield(.error(code: code, message: message))
    }
}

/// When the client last sent anything, and whether the reader has ended.
final class SessionActivity: Sendable {
    private let state = Mutex((last: ContinuousClock.now, ended: false))

    func touch() { state.withLock { $0.last = .now } }
    func end() { state.withLock { $0.ended = true } }
    var lastMessage: ContinuousClock.Instant { state.withLock { $0.last } }
    var hasEnded: Bool { state.withLock { $0.ended } }
}

/// A flag set once (a graceful shutdown began, a model's stream ended) and read from anywhere.
final class Flag: Sendable {
    private let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
}

/// The transport under a session, so that the session can end the connection itself.
struct SessionConnection: Sendable {
    /// Sends a close frame with `code` and `reason`, and drops the connection if the client has
    /// not finished closing it shortly after.
    let close: @Sendable (_ code: WebSocketErrorCode, _ reason: String) async -> Void
}
