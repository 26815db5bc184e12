import AttuneAudio
import AttuneCore
import AttuneConversation
import AttuneEmotion
import AttuneSpeech
import Foundation
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket
import ServiceLifecycle
import Synchronization

/// One person's live session: audio frames in; speech, turn and transcript events out.
///
/// Four tasks share the work, as in a WebSocket chat: this one reads frames and runs voice
/// activity detection (on the listening threads), a transcription task decodes utterances (on
/// the Whisper threads), the ``Responder`` answers turns one at a time, and a writer task sends
/// events in order. A fifth watches the connection: it closes a session that has gone idle,
/// whose client stopped reading, or that outlives a server shutdown. Audio reads wait for
/// detection, which paces a fast client; transcription runs beside them so a long decode never
/// delays hearing the next turn.
struct ConversationSession: Sendable {
    /// Allowed end-of-turn silence in a `configure` message, in milliseconds.
    static let silenceRange = 100...5_000
    let components: ServerComponents
    let connection: SessionConnection
    let logger: Logger
    let id = UUID().uuidString.lowercased()

    /// Chunks of speech in progress for the voice channel's streaming estimates; when the voice
    /// falls behind, the oldest waiting chunk is dropped.
    private let voiceChunks: AsyncStream<VoiceChunk>
    private let enqueueVoice: AsyncStream<VoiceChunk>.Continuation

    init(components: ServerComponents, connection: SessionConnection, logger: Logger) {
        (voiceChunks, enqueueVoice) = AsyncStream.makeStream(of: VoiceChunk.self, bufferingPolicy: .bufferingNewest(2))
        self.components = components
        self.connection = connection
        var logger = logger
        logger[metadataKey: "session.id"] = .string(id)
        self.logger = logger
    }

    func run(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async {
        let stream = components.stream
        let queue = OutboundQueue(maxMessages: stream.maxOutboundMessages, maxBytes: stream.maxOutboundBytes)
        let emit = EventSink(queue)
        let (jobs, enqueue) = AsyncStream.makeStream(of: TranscriptionJob.self, bufferingPolicy: .unbounded)
        let progress = TranscriptionProgress()
        let activity = SessionActivity()
        let responder = Responder(components: components, sessionID: id, emit: queue, logger: logger)
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
                await transcribe(jobs, progress: progress, emit: emit, responder: responder)
                await responder.close()
            }
            group.addTask { await readVoice(emit: emit) }
            group.addTask {
                await SessionWatcher(connection: connection, idleTimeout: stream.idleTimeout, logger: logger)
                    .run(activity: activity, queue: queue)
            }
            emit.yield(.sessionStarted(sessionID: id, sampleRate: 16_000, maxFrameBytes: stream.maxFrameBytes))
            await read(inbound, progress: progress, activity: activity, emit: emit, enqueue: enqueue, responder: responder)
            activity.end()
            enqueue.finish()
            enqueueVoice.finish()
        }
        logger.info("conversation ended")
    }

    // MARK: - Reading

    private func read(
        _ inbound: WebSocketInboundStream, progress: TranscriptionProgress, activity: SessionActivity,
        emit: EventSink, enqueue: AsyncStream<TranscriptionJob>.Continuation, responder: Responder
    ) async {
        let listener: Listener
        do {
            listener = try await makeListener()
        } catch let error as InferencePoolBusyError {
            emit.yield(.error(code: .busy, message: error.description))
            await connection.close(.unknown(1013), "the server is busy; try again later")
            return
        } catch {
            emit.yield(.error(code: .unavailable, message: "voice activity detection is unavailable: \(error)"))
            return
        }
        let stream = components.stream
        var pace = StreamPace(maxRealtimeFactor: stream.maxRealtimeFactor)
        var messages = RateBudget(rate: stream.maxMessagesPerSecond, burst: stream.maxMessagesPerSecond * 2)
        var lastPartial = ContinuousClock.now
        let limit = ConversationController.transportFrameLimit(stream)
        do {
            for try await message in inbound.messages(maxSize: limit) {
                activity.touch()
                do {
                    let audio: AudioInput
                    switch message {
                    case .binary(let buffer):
                        audio = .init(bytes: Array(buffer.readableBytesView), sampleRate: 16_000, encoding: .pcm16)
                    case .text(let text):
                        guard let parsed = try await control(
                            text, budget: &messages, listener: listener, progress: progress, emit: emit, enqueue: enqueue,
                            responder: responder)
                        else { continue }
                        audio = parsed
                    }
                    if let refusal = pace.admit(seconds: audio.seconds) {
                        emit.error(.rateLimited, refusal)
                        continue
                    }
                    let maxBytes = stream.maxFrameBytes
                    let outcome = try await components.listenPool.run { () -> Result<[ListenerEvent], AudioFrameError> in
                        Result { () throws(AudioFrameError) in try listener.accept(audio, maxBytes: maxBytes) }
                    }
                    switch outcome {
                    case .failure(let error):
                        emit.error(error.code, error.description)
                    case .success(let events):
                        for event in events {
                            await handle(event, progress: progress, emit: emit, enqueue: enqueue, responder: responder)
                        }
                        // Re-decode the growing utterance now and then, one partial at a time.
                        if let utterance = listener.currentUtterance, ContinuousClock.now - lastPartial >= .seconds(stream.partialInterval),
                            listener.utteranceSamples.count >= 16_000, progress.claimPartialSlot()
                        {
                            lastPartial = .now
                            enqueue.yield(.partial(utterance: utterance, audio: listener.utteranceSamples))
                        }
                    }
                } catch let error as InferencePoolBusyError {
                    // This frame is refused alone; the session goes on.
                    emit.error(.busy, error.description)
                }
            }
        } catch {
            logger.debug("reader stopped: \(error)")
        }
    }

    /// Loads the session's VAD model on the listening threads, retrying for a few seconds while
    /// they are busy.
    private func makeListener() async throws -> Listener {
        let components = self.components
        for _ in 0..<50 {
            do {
                return try await components.listenPool.run { try Self.listener(components) }
            } catch is InferencePoolBusyError {
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        return try await components.listenPool.run { try Self.listener(components) }
    }

    /// A listener that also cuts `voice.stream_seconds` chunks for the voice channel, if there is one.
    private static func listener(_ components: ServerComponents) throws -> Listener {
        let listener = try Listener(components: components)
        if components.voiceEmotion != nil { listener.chunkSeconds = components.voiceStreamSeconds }
        return listener
    }

    /// Handles a text frame: control messages are answered here and give nil; `audio_data`
    /// gives its audio. Every text frame spends from the session's message budget.
    private func control(
        _ text: String, budget: inout RateBudget, listener: Listener, progress: TranscriptionProgress,
        emit: EventSink, enqueue: AsyncStream<TranscriptionJob>.Continuation, responder: Responder
    ) async throws -> AudioInput? {
        let parsed = Result { () throws(ClientMessage.ParseError) in
            try ClientMessage(json: text, maxTextBytes: components.stream.maxTextBytes)
        }
        if case .success(.audioData) = parsed {
            // Audio is paced by its duration, not counted as a message.
        } else if !budget.take() {
            emit.error(.rateLimited, String(
                format: "more than %.0f messages per second (setting stream.max_messages_per_s); message ignored",
                components.stream.maxMessagesPerSecond))
            return nil
        }
        switch parsed {
        case .failure(let error):
            emit.error(error.code, error.message)
        case .success(.ping):
            emit.yield(.pong)
        case .success(.endTurn):
            for event in try await components.listenPool.run({ listener.endTurn() }) {
                await handle(event, progress: progress, emit: emit, enqueue: enqueue, responder: responder)
            }
        case let .success(.configure(persona, voice, rate, silence)):
            if let problem = await responder.configure(persona: persona, voice: voice, rate: rate) {
                emit.error(.badSetting, problem)
                return nil
            }
            if let silence {
                guard Self.silenceRange.contains(silence) else {
                    emit.error(.badSetting, "silence_ms must be between \(Self.silenceRange.lowerBound) and \(Self.silenceRange.upperBound)")
                    return nil
                }
                _ = try await components.listenPool.run { listener.trailingSilence = Double(silence) / 1000 }
            }
            let current = try await components.listenPool.run { listener.trailingSilence }
            emit.yield(.configured(
                persona: await responder.persona.id, voice: await responder.voice, rate: await responder.rate,
                silenceMilliseconds: Int((current * 1000).rounded())))
        case let .success(.playback(reply, played)):
            await responder.playback(reply: reply, playedMilliseconds: played)
        case .success(.userText(let text)):
            enqueue.yield(.typed(text: text))
        case let .success(.audioData(bytes, rate, encoding)):
            return .init(bytes: bytes, sampleRate: rate, encoding: encoding)
        }
        return nil
    }

    private func handle(
        _ event: ListenerEvent, progress: TranscriptionProgress,
        emit: EventSink, enqueue: AsyncStream<TranscriptionJob>.Continuation, responder: Responder
    ) async {
        switch event {
        case let .started(utterance, start):
            emit.yield(.speechStarted(utterance: utterance, start: start))
            // Barge-in: the person speaks over a reply.
            if await responder.isReplying { await responder.bargeIn() }
        case let .paused(utterance, audio):
            enqueue.yield(.speculative(utterance: utterance, audio: audio))
        case let .ended(utterance, start, end, audio, reason):
            emit.yield(.speechEnded(utterance: utterance, start: start, end: end, reason: reason))
            progress.finalize(utterance)
            enqueue.yield(.final(utterance: utterance, start: start, end: end, audio: audio, endedAt: .now))
        case let .chunk(utterance, _, _, audio):
            enqueueVoice.yield(VoiceChunk(utterance: utterance, audio: audio))
        }
    }

    // MARK: - Transcribing

    private func transcribe(
        _ jobs: AsyncStream<TranscriptionJob>, progress: TranscriptionProgress, emit: EventSink, responder: Responder
    ) async {
        guard let transcriber = components.transcriber else {
            for await job in jobs {
                switch job {
                case .final:
                    emit.yield(.error(code: .unavailable, message: "speech recognition is unavailable: the Whisper model did not load"))
                case .typed(let text):
                    var fusion = EmotionFusion(subject: id, settings: components.fusion)
                    await answer(text, utterance: 0, start: Date().timeIntervalSince1970, endedAt: .now, fusion: &fusion, emit: emit, responder: responder)
                default:
                    continue
                }
            }
            return
        }
        var fusion = EmotionFusion(subject: id, settings: components.fusion)
        let sessionStart = Date().timeIntervalSince1970
        // The latest speculative decode; a final with the same audio reuses it.
        var speculation: (utterance: Int, audio: [Float], transcript: Transcript)?
        for await job in jobs {
            switch job {
            case let .partial(utterance, audio):
                defer { progress.releasePartialSlot() }
                guard !progress.isFinalized(utterance) else { continue }  // its final is already queued
                if let transcript = try? await transcriber.transcribe(audio, pass: .partial), !transcript.text.isEmpty,
                    !progress.isFinalized(utterance)
                {
                    emit.yield(.transcriptPartial(utterance: utterance, text: transcript.text))
                }
            case let .speculative(utterance, audio):
                guard let transcript = try? await transcriber.transcribe(audio, pass: .final) else { continue }
                speculation = (utterance, audio, transcript)
                if !transcript.text.isEmpty, !progress.isFinalized(utterance) {
                    emit.yield(.transcriptPartial(utterance: utterance, text: transcript.text))
                }
            case let .final(utterance, start, end, audio, endedAt):
                do {
                    let transcript: Transcript
                    if let speculation, speculation.utterance == utterance, speculation.audio == audio {
                        transcript = speculation.transcript
                    } else {
                        transcript = try await transcriber.transcribe(audio, pass: .final)
                    }
                    speculation = nil
                    let latency = (ContinuousClock.now - endedAt).milliseconds
                    emit.yield(.transcriptFinal(utterance: utterance, start: start, end: end, transcript: transcript, latencyMilliseconds: latency))
                    if !transcript.text.isEmpty {
                        await answer(
                            transcript.text, audio: audio, utterance: utterance, start: sessionStart + start, endedAt: endedAt,
                            fusion: &fusion, emit: emit, responder: responder)
                    }
                } catch let error as InferencePoolBusyError {
                    emit.error(.busy, error.description)
                } catch {
                    emit.error(.transcriptionFailed, "could not transcribe utterance \(utterance): \(error)")
                }
            case .typed(let text):
                // Typed turns are not utterances of the audio stream: they carry utterance 0.
                await answer(text, utterance: 0, start: Date().timeIntervalSince1970, endedAt: .now, fusion: &fusion, emit: emit, responder: responder)
            }
        }
    }

    /// Reads the emotion in a finished utterance (its voice, when there is audio, and its words),
    /// folds each reading into the fused state, and hands the turn to the responder.
    private func answer(
        _ text: String, audio: [Float]? = nil, utterance: Int, start: Double, endedAt: ContinuousClock.Instant,
        fusion: inout EmotionFusion, emit: EventSink, responder: Responder
    ) async {
        let transcribedAt = ContinuousClock.now
        async let voiceReading = voiceEmotion(of: audio)
        let estimate = await textEmotion(of: text)
        if let voice = await voiceReading {
            emit.yield(.emotion(utterance: utterance, estimate: voice))
            if let fused = fusion.update(voice) { emit.yield(.emotionUpdate(estimate: fused)) }
        }
        if let estimate {
            emit.yield(.emotion(utterance: utterance, estimate: estimate))
            if let fused = fusion.update(estimate) { emit.yield(.emotionUpdate(estimate: fused)) }
        }
        let turn = UserTurn(
            utterance: utterance, text: text, textEmotion: estimate, fused: fusion.current(at: Date().timeIntervalSince1970),
            speechEndedAt: endedAt, transcribedAt: transcribedAt, startedAt: start)
        if !(await responder.respond(to: turn)) {
            emit.error(.busy, "\(components.stream.maxPendingTurns) turns are already waiting for an answer (setting stream.max_pending_turns); this one is not answered")
        }
    }
}

/// A chunk of the utterance in progress, for the voice channel.
struct VoiceChunk: Sendable {
    let utterance: Int
    let audio: [Float]
}

extension ConversationSession {
    /// Sends the voice channel's estimate of each chunk of speech in progress as an `emotion`
    /// event; the utterance's whole voice is fused when it ends.
    fileprivate func readVoice(emit: EventSink) async {
        for await chunk in voiceChunks {
            if let estimate = await voiceEmotion(of: chunk.audio) {
                emit.yield(.emotion(utterance: chunk.utterance, estimate: estimate))
            }
        }
    }

    /// The voice channel's estimate of some speech, or nil without audio, model or enough speech.
    fileprivate func voiceEmotion(of audio: [Float]?) async -> EmotionEstimate? {
        guard let audio, let sensor = components.voiceSensor else { return nil }
        do {
            return try await sensor.estimate(.speech(audio), subject: id, time: Date().timeIntervalSince1970)
        } catch {
            logger.warning("voice emotion failed: \(error)")
            return nil
        }
    }

    /// The text channel's estimate for a final transcript, or nil when there is nothing to read.
    fileprivate func textEmotion(of text: String) async -> EmotionEstimate? {
        guard let model = components.textEmotion, !text.isEmpty else { return nil }
        let subject = id
        do {
            return try await components.emotionPool.run { try model.estimate(text, subject: subject) }
        } catch {
            logger.warning("text emotion failed: \(error)")
            return nil
        }
    }
}

/// Work for the transcription task.
enum TranscriptionJob: Sendable {
    case partial(utterance: Int, audio: [Float])
    /// A final-quality decode started in a pause, kept in case the pause ends the turn.
    case speculative(utterance: Int, audio: [Float])
    case final(utterance: Int, start: Double, end: Double, audio: [Float], endedAt: ContinuousClock.Instant)
    /// Text the client typed instead of speaking; answered like a final transcript.
    case typed(text: String)
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

/// Set once by a graceful-shutdown handler.
final class ShutdownFlag: Sendable {
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

/// Shared between the reader and the transcription task: which utterances are final, and
/// whether a partial decode is already waiting (at most one is).
final class TranscriptionProgress: Sendable {
    private let state = Mutex((finalized: 0, partialPending: false))

    func claimPartialSlot() -> Bool {
        state.withLock { state in
            guard !state.partialPending else { return false }
            state.partialPending = true
            return true
        }
    }

    func releasePartialSlot() { state.withLock { $0.partialPending = false } }
    func finalize(_ utterance: Int) { state.withLock { $0.finalized = max($0.finalized, utterance) } }
    func isFinalized(_ utterance: Int) -> Bool { state.withLock { utterance <= $0.finalized } }
}

