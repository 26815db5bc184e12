import AttuneAudio
import AttuneCore
import AttuneEmotion
import AttuneSpeech
import Foundation
import HummingbirdWebSocket
import Logging
import NIOCore
import Synchronization

/// One person's live session: audio frames in; speech, turn and transcript events out.
///
/// Three tasks share the work, as in a WebSocket chat: this one reads frames and runs voice
/// activity detection (on the speech threads), a transcription task decodes utterances (on the
/// Whisper threads), and a writer task sends events in order. Audio reads wait for detection,
/// which paces a fast client; transcription runs beside them so a long decode never delays
/// hearing the next turn.
struct ConversationSession: Sendable {
    /// Allowed end-of-turn silence in a `configure` message, in milliseconds.
    static let silenceRange = 100...5_000
    let components: ServerComponents
    let logger: Logger
    let id = UUID().uuidString.lowercased()

    init(components: ServerComponents, logger: Logger) {
        self.components = components
        var logger = logger
        logger[metadataKey: "session.id"] = .string(id)
        self.logger = logger
    }

    func run(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async {
        // Events are small and their number is bounded by the audio rate and the reply length;
        // the writer awaits each send, so a slow client holds them here rather than in the socket.
        let (messages, send) = AsyncStream.makeStream(of: Outbound.self, bufferingPolicy: .unbounded)
        let emit = EventSink(send)
        let (jobs, enqueue) = AsyncStream.makeStream(of: TranscriptionJob.self, bufferingPolicy: .unbounded)
        let progress = TranscriptionProgress()
        let responder = Responder(components: components, sessionID: id, emit: send, logger: logger)
        logger.info("conversation started")

        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                do {
                    for await message in messages {
                        switch message {
                        case .event(let event): try await outbound.write(.text(event.json))
                        case .audio(let bytes): try await outbound.write(.binary(ByteBuffer(bytes: bytes)))
                        }
                    }
                } catch {
                    logger.debug("writer stopped: \(error)")
                }
            }
            group.addTask {
                await transcribe(jobs, progress: progress, emit: emit, responder: responder)
                await responder.close()
                send.finish()
            }
            emit.yield(.sessionStarted(sessionID: id, sampleRate: 16_000, maxFrameBytes: components.stream.maxFrameBytes))
            await read(inbound, progress: progress, emit: emit, enqueue: enqueue, responder: responder)
            enqueue.finish()
        }
        logger.info("conversation ended")
    }

    // MARK: - Reading

    private func read(
        _ inbound: WebSocketInboundStream, progress: TranscriptionProgress,
        emit: EventSink, enqueue: AsyncStream<TranscriptionJob>.Continuation, responder: Responder
    ) async {
        let listener: Listener
        do {
            let components = self.components
            listener = try await components.speechPool.run { try Listener(components: components) }  // loads the VAD model
        } catch {
            emit.yield(.error(code: .unavailable, message: "voice activity detection is unavailable: \(error)"))
            return
        }
        var pace = StreamPace(maxRealtimeFactor: components.stream.maxRealtimeFactor)
        var lastPartial = ContinuousClock.now
        let limit = ConversationController.transportFrameLimit(components.stream)
        do {
            for try await message in inbound.messages(maxSize: limit) {
                let audio: ListenerInput
                switch message {
                case .binary(let buffer):
                    audio = .init(bytes: Array(buffer.readableBytesView), sampleRate: 16_000, encoding: .pcm16)
                case .text(let text):
                    switch Result(catching: { () throws(ClientMessage.ParseError) in try ClientMessage(json: text) }) {
                    case .failure(let error):
                        emit.yield(.error(code: error.code, message: error.message))
                        continue
                    case .success(.ping):
                        emit.yield(.pong)
                        continue
                    case .success(.endTurn):
                        for event in try await components.speechPool.run({ listener.endTurn() }) {
                            await handle(event, progress: progress, emit: emit, enqueue: enqueue, responder: responder)
                        }
                        continue
                    case let .success(.configure(persona, voice, rate, silence)):
                        if let problem = await responder.configure(persona: persona, voice: voice, rate: rate) {
                            emit.yield(.error(code: .badSetting, message: problem))
                            continue
                        }
                        if let silence {
                            guard (Self.silenceRange).contains(silence) else {
                                emit.yield(.error(code: .badSetting, message: "silence_ms must be between \(Self.silenceRange.lowerBound) and \(Self.silenceRange.upperBound)"))
                                continue
                            }
                            _ = try await components.speechPool.run { listener.trailingSilence = Double(silence) / 1000 }
                        }
                        let current = try await components.speechPool.run { listener.trailingSilence }
                        emit.yield(.configured(
                            persona: await responder.persona.id, voice: await responder.voice, rate: await responder.rate,
                            silenceMilliseconds: Int((current * 1000).rounded())))
                        continue
                    case let .success(.playback(reply, played)):
                        await responder.playback(reply: reply, playedMilliseconds: played)
                        continue
                    case .success(.userText(let text)):
                        enqueue.yield(.typed(text: text))
                        continue
                    case .success(.audioData(let bytes, let rate, let encoding)):
                        audio = .init(bytes: bytes, sampleRate: rate, encoding: encoding)
                    }
                }
                if let refusal = pace.admit(seconds: audio.seconds) {
                    emit.yield(.error(code: .rateLimited, message: refusal))
                    continue
                }
                let maxBytes = components.stream.maxFrameBytes
                let outcome = try await components.speechPool.run { () -> Result<[ListenerEvent], AudioFrameError> in
                    Result { () throws(AudioFrameError) in try listener.accept(audio, maxBytes: maxBytes) }
                }
                switch outcome {
                case .failure(let error):
                    emit.yield(.error(code: error.code, message: error.description))
                case .success(let events):
                    for event in events {
                        await handle(event, progress: progress, emit: emit, enqueue: enqueue, responder: responder)
                    }
                    // Re-decode the growing utterance now and then, one partial at a time.
                    if let utterance = listener.currentUtterance, ContinuousClock.now - lastPartial >= .seconds(components.stream.partialInterval),
                        listener.utteranceSamples.count >= 16_000, progress.claimPartialSlot()
                    {
                        lastPartial = .now
                        enqueue.yield(.partial(utterance: utterance, audio: listener.utteranceSamples))
                    }
                }
            }
        } catch let error as InferencePoolBusyError {
            emit.yield(.error(code: .busy, message: error.description))
        } catch {
            logger.debug("reader stopped: \(error)")
        }
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
            emit.yield(.speechEnded(utterance: utterance, start: start, end: end, reason: reason.rawValue))
            progress.finalize(utterance)
            enqueue.yield(.final(utterance: utterance, start: start, end: end, audio: audio, endedAt: .now))
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
                            transcript.text, utterance: utterance, start: sessionStart + start, endedAt: endedAt, fusion: &fusion,
                            emit: emit, responder: responder)
                    }
                } catch let error as InferencePoolBusyError {
                    emit.yield(.error(code: .busy, message: error.description))
                } catch {
                    emit.yield(.error(code: .transcriptionFailed, message: "could not transcribe utterance \(utterance): \(error)"))
                }
            case .typed(let text):
                // Typed turns are not utterances of the audio stream: they carry utterance 0.
                await answer(text, utterance: 0, start: Date().timeIntervalSince1970, endedAt: .now, fusion: &fusion, emit: emit, responder: responder)
            }
        }
    }

    /// Reads the emotion in a finished utterance, folds it into the fused state, and hands the
    /// turn to the responder.
    private func answer(
        _ text: String, utterance: Int, start: Double, endedAt: ContinuousClock.Instant, fusion: inout EmotionFusion,
        emit: EventSink, responder: Responder
    ) async {
        let transcribedAt = ContinuousClock.now
        let estimate = await textEmotion(of: text)
        if let estimate {
            emit.yield(.emotion(utterance: utterance, estimate: estimate))
            if let fused = fusion.update(estimate) { emit.yield(.emotionUpdate(estimate: fused)) }
        }
        let turn = UserTurn(
            utterance: utterance, text: text, textEmotion: estimate, fused: fusion.current(at: Date().timeIntervalSince1970),
            speechEndedAt: endedAt, transcribedAt: transcribedAt, startedAt: start)
        await responder.respond(to: turn)
    }
}

extension ConversationSession {
    /// The text channel's estimate for a final transcript, or nil when there is nothing to read.
    fileprivate func textEmotion(of text: String) async -> EmotionEstimate? {
        guard let model = components.textEmotion, !text.isEmpty else { return nil }
        let subject = id
        do {
            return try await components.speechPool.run { try model.estimate(text, subject: subject) }
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

/// Sends JSON events into the session's outbound stream.
struct EventSink: Sendable {
    let continuation: AsyncStream<Outbound>.Continuation

    init(_ continuation: AsyncStream<Outbound>.Continuation) {
        self.continuation = continuation
    }

    func yield(_ event: ServerEvent) { continuation.yield(.event(event)) }
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

/// Admits audio at most `maxRealtimeFactor` times faster than real time, with a few seconds
/// of burst, so one client cannot monopolise the detector.
struct StreamPace {
    let maxRealtimeFactor: Double
    private let started = ContinuousClock.now
    private var received = 0.0
    private let burst = 5.0

    init(maxRealtimeFactor: Double) {
        self.maxRealtimeFactor = maxRealtimeFactor
    }

    /// Counts `seconds` of audio, or returns why the frame is refused (and does not count it).
    mutating func admit(seconds: Double) -> String? {
        let elapsed = (ContinuousClock.now - started).milliseconds / 1_000
        guard received + seconds <= elapsed * maxRealtimeFactor + burst else {
            return String(format: "audio arrives faster than %.0f× real time (setting stream.max_realtime_factor); frame refused",
                          maxRealtimeFactor)
        }
        received += seconds
        return nil
    }
}
