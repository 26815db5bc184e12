import AttuneCore
import Foundation
import Synchronization

/// One audio frame as a client sent it.
public struct AudioInput: Sendable {
    public let bytes: [UInt8]
    public let sampleRate: Int
    public let encoding: ClientMessage.SampleEncoding

    public init(bytes: [UInt8], sampleRate: Int, encoding: ClientMessage.SampleEncoding) {
        self.bytes = bytes
        self.sampleRate = sampleRate
        self.encoding = encoding
    }

    /// The frame's length in seconds, judged from its size.
    public var seconds: Double {
        let width = encoding == .pcm16 ? 2 : 4
        return Double(bytes.count / width) / Double(max(sampleRate, 1))
    }
}

/// What a listener noticed in a track's audio.
public enum ListenerEvent: Sendable {
    case started(utterance: Int, start: Double)
    /// A pause that may end the turn: `audio` is what the turn holds if it does. `pause` numbers
    /// it for ``TrackListener/pauseTranscribed(_:utterance:pause:)``.
    case paused(utterance: Int, pause: Int, audio: [Float])
    /// The speaker went on after a pause: the turn continues.
    case resumed(utterance: Int)
    /// `reason`: `silence`, `max_length` or `client`.
    case ended(utterance: Int, start: Double, end: Double, audio: [Float], reason: String)
    /// Another chunk of the utterance in progress (when the listener cuts chunks): its audio and
    /// its span in seconds since the track's first audio.
    case chunk(utterance: Int, start: Double, end: Double, audio: [Float])
}

/// A frame the listener refused; `code` is one of the protocols' error codes (`odd_frame`, …).
public struct ListenerError: Error, Sendable, CustomStringConvertible {
    public let code: String
    public let description: String

    public init(code: String, description: String) {
        self.code = code
        self.description = description
    }
}

/// One track's listening: frames in, turn events out (validation, resampling, voice activity
/// and end of turn). Not thread-safe: the owner calls it once at a time, on the listening pool.
public protocol TrackListener: AnyObject, Sendable {
    func accept(_ input: AudioInput) throws(ListenerError) -> [ListenerEvent]
    /// Ends the turn in progress, if any.
    func endTurn() -> [ListenerEvent]
    /// The silence that ends a turn, in seconds.
    var trailingSilence: Double { get set }
    /// The utterance in progress and its audio so far (for partial transcripts), if one is and
    /// the speaker is not in a pause (whose audio the pause's guess decodes).
    var utteranceInProgress: (utterance: Int, audio: [Float])? { get }
    /// What was said up to pause `pause` of `utterance`, decoded while the speaker is silent, or
    /// nil when the pause gets no transcript (not decoded, failed, empty): the listener may wait
    /// longer for the end of the turn if the words stop mid-sentence, and may wait for this call
    /// before a pause ends the turn, so every ``ListenerEvent/paused(utterance:pause:audio:)``
    /// must get one. Unlike the other members, it may be called from any task at any time; it
    /// takes effect from the next frame, and does nothing once the speaker went on or the turn
    /// ended. Returns whether the listener holds the pause (expects the speaker to go on).
    func pauseTranscribed(_ text: String?, utterance: Int, pause: Int) -> Bool
}

/// The engines a participant's audio goes through, behind protocols: the server builds them
/// from native models, tests may pass others.
public struct ParticipantEngines: Sendable {
    /// Makes the listener of a new track.
    public var makeListener: @Sendable () throws -> any TrackListener
    /// The bounded pool listeners run on (they call blocking native code).
    public var listenPool: InferencePool
    public var transcriber: (any SpeechTranscribing)?
    /// The sensors a finished utterance's transcript (or typed text) goes to: the text channel.
    public var textSensors: [any EmotionSensor]
    /// The sensors each chunk and each finished utterance's audio goes to: the voice channel.
    public var speechSensors: [any EmotionSensor]

    public init(
        makeListener: @escaping @Sendable () throws -> any TrackListener, listenPool: InferencePool,
        transcriber: (any SpeechTranscribing)?, textSensors: [any EmotionSensor], speechSensors: [any EmotionSensor] = []
    ) {
        self.makeListener = makeListener
        self.listenPool = listenPool
        self.transcriber = transcriber
        self.textSensors = textSensors
        self.speechSensors = speechSensors
    }
}

/// The limits of one participant's pipeline.
public struct ParticipantSettings: Sendable {
    /// Transcribe utterances (and so read their text emotion); off, audio only finds turns and
    /// feeds the voice.
    public var transcribe = true
    /// How often the utterance in progress is decoded again for a partial transcript, in
    /// seconds; nil for no partials (a pause still gives its speculative transcript).
    public var partialInterval: Double?
    /// A partial waits at least this many times as long as the last partial took to decode, so
    /// that on a slow machine partials back off instead of taking the cores from the final
    /// transcript and the reply.
    public var partialBackoff = 3.0
    /// Utterances (and typed texts) waiting for transcription before more are refused with `busy`.
    public var maxPendingUtterances = 4
    /// Audio seconds accepted per wall-clock second, per track.
    public var maxRealtimeFactor = 3.0
    /// Chunks waiting for the speech sensors before more are skipped with `busy`.
    public var maxPendingSpeech = 8

    public init() {}
}

/// A finished turn with words: a transcribed utterance, or typed text.
public struct ParticipantTurn: Sendable {
    /// The track it was said on; nil for typed text.
    public let track: TrackID?
    /// The track's utterance number; 0 for typed text.
    public let utterance: Int
    public let text: String
    /// The text channel's reading of `text`, if it had one.
    public let textEstimate: EmotionEstimate?
    /// When the person stopped speaking (when typed text was taken up); timings count from here.
    public let speechEndedAt: ContinuousClock.Instant
    public let transcribedAt: ContinuousClock.Instant
    /// When the utterance began, in seconds since 1970.
    public let startedAt: Double
}

/// Where a participant's pipeline sends what it finds: the room (rooms protocol) or the
/// companion. Calls for one participant come in order; errors must not wait.
public protocol ParticipantOutput: Sendable {
    /// Whom sensors' estimates are about.
    var subject: String { get }
    func speechStarted(track: TrackID, utterance: Int, start: Double) async
    func speechEnded(track: TrackID, utterance: Int, start: Double, end: Double, reason: String) async
    /// The speaker went on after a pause of `utterance`: what was started on the pause is stale.
    func speechResumed(track: TrackID, utterance: Int) async
    /// A provisional transcript of an utterance still in progress (or in a pause).
    func partialTranscript(track: TrackID, utterance: Int, text: String) async
    /// The final transcript of an utterance (its text may be empty), `latency` after it ended.
    func finalTranscript(track: TrackID, utterance: Int, start: Double, end: Double, transcript: Transcript, latency: Duration) async
    /// One channel's reading: of a chunk or a whole utterance (`source`), of typed text (no
    /// source, utterance 0), or of something else the participant sent (a camera frame: neither).
    func estimate(_ estimate: EmotionEstimate, utterance: Int?, source: EmotionSource?) async
    /// A turn with words, after its readings.
    func turn(_ turn: ParticipantTurn) async
    /// Whether this output answers turns and wants ``speculate(_:readings:)``: then a pause's
    /// guess is also read for emotion (readings reused if the turn ends there).
    var speculates: Bool { get }
    /// The turn as it will be if the pause in progress ends it: its transcript is a pause's
    /// guess, and `readings` (voice and words, not yet reported) are what will be reported then.
    /// It may be answered ahead, and dropped if ``speechResumed(track:utterance:)`` comes.
    func speculate(_ turn: ParticipantTurn, readings: [EmotionEstimate]) async
    /// Like ``speculate(_:readings:)``, for a pause held because its transcript stops
    /// mid-sentence: the speaker will most likely go on, and the turn will start with these words.
    /// `readings` are those of the words only (the voice of the pause is still being read).
    func pauseHeld(_ turn: ParticipantTurn, readings: [EmotionEstimate]) async
    /// Something went wrong in the background; the pipeline goes on.
    func error(_ error: RoomError)
}

extension ParticipantOutput {
    public func speechStarted(track: TrackID, utterance: Int, start: Double) async {}
    public func speechEnded(track: TrackID, utterance: Int, start: Double, end: Double, reason: String) async {}
    public func speechResumed(track: TrackID, utterance: Int) async {}
    public func partialTranscript(track: TrackID, utterance: Int, text: String) async {}
    public func turn(_ turn: ParticipantTurn) async {}
    public var speculates: Bool { false }
    public func speculate(_ turn: ParticipantTurn, readings: [EmotionEstimate]) async {}
    public func pauseHeld(_ turn: ParticipantTurn, readings: [EmotionEstimate]) async {}
}

/// One participant's audio (and typed text): a listener per track finds utterances and cuts
/// them into chunks. One task transcribes in order: partial transcripts of an utterance in
/// progress (at most one waiting), a speculative decode in each pause (reused when the turn
/// ends with the same audio), then each finished utterance — its transcript, the voice of the
/// whole utterance (read while Whisper decodes) and the emotion in its words, and the turn.
/// Another task reads each chunk's voice. Everything goes to the track's ``ParticipantOutput``.
///
/// The reader calls ``addTrack(_:output:)``, ``accept(_:track:)`` and the other methods one at
/// a time; the owner runs ``run()`` in its task group and ends it with ``finish()``.
public final class ParticipantPipeline: Sendable {
    private let engines: ParticipantEngines
    private let settings: ParticipantSettings
    private let tracks = Mutex<[TrackID: Track]>([:])
    private let pending: PendingUtterances
    private let jobs: AsyncStream<Job>
    private let enqueue: AsyncStream<Job>.Continuation
    private let pendingSpeech: PendingUtterances
    private let speechJobs: AsyncStream<SpeechJob>
    private let enqueueSpeech: AsyncStream<SpeechJob>.Continuation
    private let progress = TranscriptionProgress()

    public init(engines: ParticipantEngines, settings: ParticipantSettings) {
        self.engines = engines
        self.settings = settings
        pending = PendingUtterances(limit: settings.maxPendingUtterances)
        (jobs, enqueue) = AsyncStream.makeStream(of: Job.self)
        pendingSpeech = PendingUtterances(limit: settings.maxPendingSpeech)
        (speechJobs, enqueueSpeech) = AsyncStream.makeStream(of: SpeechJob.self)
    }

    private struct Track: Sendable {
        let id: TrackID
        let listener: any TrackListener
        let output: any ParticipantOutput
        var pace: StreamPace
        /// The wall-clock time of the track's first audio (its time zero), seconds since 1970.
        let startedAt: Double
        var lastPartial = ContinuousClock.now
        /// Counts pauses and resumptions: a pause's guess is still current while it is unchanged.
        var pauseGeneration = 0
    }

    // MARK: - The reader's side

    /// Opens a track whose results go to `output`. Its listener (a voice activity model) is
    /// loaded on the listening pool, waiting up to `loadAttempts` × 0.1 s while that is busy.
    public func addTrack(_ track: TrackID, output: any ParticipantOutput, loadAttempts: Int = 1) async throws {
        guard tracks.withLock({ $0[track] }) == nil else { return }
        let make = engines.makeListener
        var attempt = 1
        let listener: any TrackListener
        while true {
            do {
                listener = try await engines.listenPool.run { try make() }
                break
            } catch is InferencePoolBusyError where attempt < loadAttempts {
                attempt += 1
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        let entry = Track(
            id: track, listener: listener, output: output, pace: StreamPace(maxRealtimeFactor: settings.maxRealtimeFactor),
            startedAt: Date().timeIntervalSince1970)
        tracks.withLock { $0[track] = entry }
    }

    /// Removes the track; what was said last on it is still transcribed.
    public func removeTrack(_ track: TrackID) async throws {
        guard let ending = tracks.withLock({ $0.removeValue(forKey: track) }) else { return }
        let events = try await engines.listenPool.run { ending.listener.endTurn() }
        await submit(events, on: ending)
    }

    /// Forgets every track (the participant left the room).
    public func removeAllTracks() {
        tracks.withLock { $0.removeAll() }
    }

    /// Listens to one frame of a track. Throws a ``ListenerError`` for a frame the listener
    /// refused, a ``RoomError`` for an unknown track or audio too fast, or
    /// `InferencePoolBusyError` when the listening pool is full.
    public func accept(_ input: AudioInput, track: TrackID) async throws {
        let now = ContinuousClock.now
        let partialInterval = settings.partialInterval
        let admitted = tracks.withLock { tracks -> Result<(Track, partialDue: Bool), RoomError> in
            guard var entry = tracks[track] else {
                return .failure(RoomError(.unknownTrack, "no audio track \(track); send audio_track_added first"))
            }
            if let refusal = entry.pace.admit(seconds: input.seconds) { return .failure(RoomError(.rateLimited, refusal)) }
            tracks[track] = entry
            return .success((entry, partialInterval.map { progress.partialDue(since: entry.lastPartial, now: now, interval: .seconds($0), backoff: settings.partialBackoff) } ?? false))
        }
        let (entry, partialDue) = try admitted.get()
        let listener = entry.listener
        // A partial needs at least a second of speech to be worth decoding.
        let minimumPartial = 16_000
        let outcome = try await engines.listenPool.run { () -> Result<([ListenerEvent], (Int, [Float])?), ListenerError> in
            Result { () throws(ListenerError) in
                let events = try listener.accept(input)
                // Not when the speaker has just gone on after a pause: its decode read the words so far.
                let resumed = events.contains { if case .resumed = $0 { true } else { false } }
                let partial = partialDue && !resumed
                    ? listener.utteranceInProgress.flatMap { $0.audio.count >= minimumPartial ? $0 : nil } : nil
                return (events, partial)
            }
        }
        switch outcome {
        case .failure(let error):
            throw error
        case .success(let (events, partial)):
            await submit(events, on: entry)
            if let (utterance, audio) = partial, engines.transcriber != nil, settings.transcribe, progress.claimPartialSlot() {
                tracks.withLock { $0[track]?.lastPartial = now }
                enqueue.yield(.partial(track: track, output: entry.output, utterance: utterance, audio: audio))
            }
        }
    }

    /// Ends the turn in progress on `track` now (the client says the person has finished).
    public func endTurn(track: TrackID) async throws {
        let entry = try self.entry(track)
        let events = try await engines.listenPool.run { entry.listener.endTurn() }
        await submit(events, on: entry)
    }

    /// Sets the silence that ends a turn on `track` (when `seconds` is given) and returns it.
    public func trailingSilence(track: TrackID, set seconds: Double? = nil) async throws -> Double {
        let listener = try entry(track).listener
        return try await engines.listenPool.run {
            if let seconds { listener.trailingSilence = seconds }
            return listener.trailingSilence
        }
    }

    /// Queues typed text, answered like a transcript in order with the utterances; false (and
    /// nothing queued) when `maxPendingUtterances` already wait.
    public func submitText(_ text: String, output: any ParticipantOutput) -> Bool {
        guard pending.claim() else { return false }
        enqueue.yield(.typed(text: text, output: output))
        return true
    }

    /// Ends ``run()`` once what is queued is done.
    public func finish() {
        enqueue.finish()
        enqueueSpeech.finish()
    }

    private func entry(_ track: TrackID) throws(RoomError) -> Track {
        guard let entry = tracks.withLock({ $0[track] }) else {
            throw RoomError(.unknownTrack, "no audio track \(track)")
        }
        return entry
    }

    // MARK: - Queueing

    private struct Utterance: Sendable {
        let track: Track
        let utterance: Int
        let start: Double
        let end: Double
        let audio: [Float]
        let endedAt: ContinuousClock.Instant
    }

    private enum Job: Sendable {
        case partial(track: TrackID, output: any ParticipantOutput, utterance: Int, audio: [Float])
        /// A final-quality decode in a pause, kept in case the pause ends the turn.
        case guess(track: TrackID, output: any ParticipantOutput, utterance: Int, pause: Int, audio: [Float], startedAt: Double, generation: Int)
        case utterance(Utterance)
        case typed(text: String, output: any ParticipantOutput)
    }

    private struct SpeechJob: Sendable {
        let output: any ParticipantOutput
        let utterance: Int
        let audio: [Float]
        let source: EmotionSource
    }

    /// Passes turn events on, queues chunks for the voice, a pause's audio as a guess (skipped
    /// silently when too many wait) and a finished utterance (refused with `busy` when too many wait).
    private func submit(_ events: [ListenerEvent], on track: Track) async {
        let output = track.output
        for event in events {
            switch event {
            case let .started(utterance, start):
                await output.speechStarted(track: track.id, utterance: utterance, start: start)
            case let .chunk(utterance, start, end, audio):
                guard !engines.speechSensors.isEmpty else { continue }
                guard pendingSpeech.claim() else {
                    output.error(RoomError(.busy, "\(pendingSpeech.limit) chunks are already waiting for voice analysis; this chunk is skipped"))
                    continue
                }
                let source = EmotionSource(channel: .voice, kind: .chunk, track: track.id, start: start, end: end)
                enqueueSpeech.yield(SpeechJob(output: output, utterance: utterance, audio: audio, source: source))
            case let .resumed(utterance):
                // The pause's decode has just read the utterance so far: the next partial waits
                // a full interval, so that it does not hold Whisper when the next pause comes.
                tracks.withLock {
                    $0[track.id]?.pauseGeneration += 1
                    $0[track.id]?.lastPartial = .now
                }
                await output.speechResumed(track: track.id, utterance: utterance)
            case let .paused(utterance, pause, audio):
                let generation = tracks.withLock { tracks -> Int in
                    tracks[track.id]?.pauseGeneration += 1
                    tracks[track.id]?.lastPartial = .now
                    return tracks[track.id]?.pauseGeneration ?? 0
                }
                guard settings.transcribe, engines.transcriber != nil, pending.claim() else {
                    _ = track.listener.pauseTranscribed(nil, utterance: utterance, pause: pause)
                    continue
                }
                progress.finalQualityQueued()
                enqueue.yield(.guess(
                    track: track.id, output: output, utterance: utterance, pause: pause, audio: audio, startedAt: track.startedAt,
                    generation: generation))
            case let .ended(utterance, start, end, audio, reason):
                progress.finalize(utterance, on: track.id)
                await output.speechEnded(track: track.id, utterance: utterance, start: start, end: end, reason: reason)
                guard pending.claim() else {
                    output.error(RoomError(.busy, "\(pending.limit) utterances are already waiting for transcription (setting stream.max_pending_turns); this one is skipped"))
                    continue
                }
                progress.finalQualityQueued()
                enqueue.yield(.utterance(Utterance(track: track, utterance: utterance, start: start, end: end, audio: audio, endedAt: .now)))
            }
        }
    }

    // MARK: - Working

    /// Transcribes and reads what is queued, each queue in order, until ``finish()``.
    public func run() async {
        async let transcribing: Void = transcribe()
        async let listening: Void = readChunks()
        _ = await (transcribing, listening)
    }

    private func readChunks() async {
        for await job in speechJobs {
            defer { pendingSpeech.release() }
            for estimate in await readVoice(job.audio, output: job.output, what: "chunk") {
                await job.output.estimate(estimate, utterance: job.utterance, source: job.source)
            }
        }
    }

    /// The speech sensors' readings of `audio`; failures go to `output` as errors.
    private func readVoice(_ audio: [Float], output: any ParticipantOutput, what: String) async -> [EmotionEstimate] {
        var estimates: [EmotionEstimate] = []
        for sensor in engines.speechSensors {
            do {
                if let estimate = try await sensor.estimate(.speech(audio), subject: output.subject, time: Date().timeIntervalSince1970) {
                    estimates.append(estimate)
                }
            } catch let error as InferencePoolBusyError {
                output.error(RoomError(.busy, "\(error.description); the voice of this \(what) is skipped"))
            } catch {
                output.error(RoomError(.unavailable, "could not read the voice of a \(what): \(error)"))
            }
        }
        return estimates
    }

    /// The voice of a finished utterance: read ahead in its pause, or read now.
    private func voiceOfUtterance(_ audio: [Float], readAhead: [EmotionEstimate]?, output: any ParticipantOutput) async -> [EmotionEstimate] {
        if let readAhead { return readAhead }
        return await readVoice(audio, output: output, what: "utterance")
    }

    /// The text sensors' readings of `text`, each reported to `output` as it comes (unless
    /// `report` is false: a pause's guess is read ahead, and reported only if the turn ends there).
    private func readWords(
        _ text: String, utterance: Int, source: EmotionSource?, output: any ParticipantOutput, report: Bool = true
    ) async -> [EmotionEstimate] {
        var estimates: [EmotionEstimate] = []
        for sensor in engines.textSensors {
            do {
                if let estimate = try await sensor.estimate(.text(text), subject: output.subject, time: Date().timeIntervalSince1970) {
                    estimates.append(estimate)
                    if report { await output.estimate(estimate, utterance: utterance, source: source) }
                }
            } catch let error as InferencePoolBusyError {
                output.error(RoomError(.busy, "\(error.description); the emotion in these words is not read"))
            } catch {
                output.error(RoomError(.unavailable, "could not read the emotion in the words: \(error)"))
            }
        }
        return estimates
    }

    private func transcribe() async {
        // Per track, the latest guess decoded in a pause; the final with the same audio reuses it.
        var guesses: [TrackID: Guess] = [:]
        for await job in jobs {
            switch job {
            case let .partial(track, output, utterance, audio):
                defer { progress.releasePartialSlot() }
                // A pause's guess or a final queued behind this partial makes it stale: skip it.
                guard let transcriber = engines.transcriber, !progress.isFinalized(utterance, on: track),
                    !progress.finalQualityWaiting else { continue }
                let started = ContinuousClock.now
                // Given up as soon as a pause's guess or a final is queued (or this utterance
                // ended): they need Whisper now, and would show this partial's words anyway.
                let progress = self.progress
                let transcript = try? await transcriber.transcribe(audio, pass: .partial) {
                    progress.finalQualityWaiting || progress.isFinalized(utterance, on: track)
                }
                if transcript != nil { progress.partialTook(.now - started) }
                if let transcript, !transcript.text.isEmpty, !progress.isFinalized(utterance, on: track) {
                    await output.partialTranscript(track: track, utterance: utterance, text: transcript.text)
                }
            case let .guess(track, output, utterance, pause, audio, startedAt, generation):
                defer { pending.release(); progress.finalQualityDone() }
                let transcript = try? await engines.transcriber?.transcribe(audio, pass: .final)
                // The words may show that the speaker has not finished: the listener may wait
                // longer. It waits for this verdict, also when there are no words.
                let text = transcript.flatMap { $0.text.isEmpty ? nil : $0.text }
                let held = tracks.withLock { $0[track] }?.listener.pauseTranscribed(text, utterance: utterance, pause: pause) ?? false
                guard let transcript else { continue }
                var guess = Guess(utterance: utterance, audio: audio, transcript: transcript)
                guesses[track] = guess
                guard text != nil else { continue }
                if !progress.isFinalized(utterance, on: track) {
                    await output.partialTranscript(track: track, utterance: utterance, text: transcript.text)
                }
                guard output.speculates else { continue }
                // Read the guess as the finished turn would be read, without reporting it yet.
                let transcribedAt = ContinuousClock.now
                async let voice = readVoice(audio, output: output, what: "utterance")
                let words = await readWords(transcript.text, utterance: utterance, source: nil, output: output, report: false)
                let turn = ParticipantTurn(
                    track: track, utterance: utterance, text: transcript.text, textEstimate: words.first,
                    speechEndedAt: transcribedAt, transcribedAt: transcribedAt, startedAt: startedAt)
                // A pause held because the words stop mid-sentence starts no reply: the speaker
                // will most likely go on, and a model writing a reply it will drop holds both
                // cores of a small machine just when the real end of the turn needs them. The
                // model may read the words, which will start the turn: at once, with the words'
                // reading (the voice's, queued behind the chunks of the speech, came after the end
                // of the turn when the machine was busy).
                if held, !progress.isFinalized(utterance, on: track) { await output.pauseHeld(turn, readings: words) }
                guess.readings = (voice: await voice, words: words)
                guesses[track] = guess
                if held { continue }
                // Nothing to start ahead when the speaker went on while it was read, or when the
                // turn has already ended (its final, next in line, reuses these readings).
                guard tracks.withLock({ $0[track]?.pauseGeneration }) == generation, !progress.isFinalized(utterance, on: track)
                else { continue }
                await output.speculate(turn, readings: guess.readings!.voice + words)
            case .utterance(let finished):
                defer { pending.release(); progress.finalQualityDone() }
                var reuse: Guess?
                if let guess = guesses.removeValue(forKey: finished.track.id), guess.utterance == finished.utterance,
                    guess.audio == finished.audio
                {
                    reuse = guess
                }
                await conclude(finished, guess: reuse)
            case let .typed(text, output):
                defer { pending.release() }
                let takenUp = ContinuousClock.now
                let estimates = await readWords(text, utterance: 0, source: nil, output: output)
                await output.turn(ParticipantTurn(
                    track: nil, utterance: 0, text: text, textEstimate: estimates.first, speechEndedAt: takenUp, transcribedAt: .now,
                    startedAt: Date().timeIntervalSince1970))
            }
        }
    }

    /// A pause's decode, and its readings when the output speculates: reused when the turn ends
    /// with the same audio.
    private struct Guess {
        let utterance: Int
        let audio: [Float]
        let transcript: Transcript
        var readings: (voice: [EmotionEstimate], words: [EmotionEstimate])?
    }

    /// A finished utterance: its transcript (or the guess), the voice of the whole utterance,
    /// the emotion in its words, then the turn.
    private func conclude(_ finished: Utterance, guess: Guess?) async {
        let (track, output) = (finished.track.id, finished.track.output)
        let audio = finished.audio
        // The guess's readings, when it was read ahead; the voice is read while Whisper decodes.
        async let voice = voiceOfUtterance(audio, readAhead: guess?.readings?.voice, output: output)
        var transcript: Transcript?
        if settings.transcribe {
            if let transcriber = engines.transcriber {
                do {
                    if let guess {
                        transcript = guess.transcript
                    } else {
                        transcript = try await transcriber.transcribe(audio, pass: .final)
                    }
                } catch let error as InferencePoolBusyError {
                    output.error(RoomError(.busy, error.description))
                } catch {
                    output.error(RoomError(.transcriptionFailed, "could not transcribe utterance \(finished.utterance) of track \(track): \(error)"))
                }
            } else {
                output.error(RoomError(.unavailable, "speech recognition is unavailable: the Whisper model did not load"))
            }
        }
        let transcribedAt = ContinuousClock.now
        if let transcript {
            await output.finalTranscript(
                track: track, utterance: finished.utterance, start: finished.start, end: finished.end, transcript: transcript,
                latency: transcribedAt - finished.endedAt)
        }
        let voiceSource = EmotionSource(channel: .voice, kind: .utterance, track: track, start: finished.start, end: finished.end)
        for estimate in await voice {
            await output.estimate(estimate, utterance: finished.utterance, source: voiceSource)
        }
        guard let text = transcript?.text, !text.isEmpty else { return }
        let textSource = EmotionSource(channel: .text, kind: .utterance, track: track, start: finished.start, end: finished.end)
        let estimates: [EmotionEstimate]
        if let words = guess?.readings?.words {
            estimates = words
            for estimate in words { await output.estimate(estimate, utterance: finished.utterance, source: textSource) }
        } else {
            estimates = await readWords(text, utterance: finished.utterance, source: textSource, output: output)
        }
        await output.turn(ParticipantTurn(
            track: track, utterance: finished.utterance, text: text, textEstimate: estimates.first, speechEndedAt: finished.endedAt,
            transcribedAt: transcribedAt, startedAt: finished.track.startedAt + finished.start))
    }
}

/// Which utterances of each track are final, whether a partial decode is already waiting (at
/// most one is), how long the last one took, and how many final-quality decodes (a pause's
/// guess, a finished utterance) wait: partials give way to them.
final class TranscriptionProgress: Sendable {
    private let state = Mutex((
        finalized: [TrackID: Int](), partialPending: false, lastPartialCost: Duration.zero, finalQuality: 0))

    /// Whether a partial is due `now`, the last one having been taken at `last`: after `interval`,
    /// and after `backoff` times the last partial's decode time.
    func partialDue(since last: ContinuousClock.Instant, now: ContinuousClock.Instant, interval: Duration, backoff: Double) -> Bool {
        let cost = state.withLock { $0.lastPartialCost }
        return now - last >= max(interval, cost * backoff)
    }

    func partialTook(_ duration: Duration) { state.withLock { $0.lastPartialCost = duration } }

    func finalQualityQueued() { state.withLock { $0.finalQuality += 1 } }
    func finalQualityDone() { state.withLock { $0.finalQuality -= 1 } }
    var finalQualityWaiting: Bool { state.withLock { $0.finalQuality > 0 } }

    func claimPartialSlot() -> Bool {
        state.withLock { state in
            guard !state.partialPending else { return false }
            state.partialPending = true
            return true
        }
    }

    func releasePartialSlot() { state.withLock { $0.partialPending = false } }

    func finalize(_ utterance: Int, on track: TrackID) {
        state.withLock { $0.finalized[track] = max($0.finalized[track] ?? 0, utterance) }
    }

    func isFinalized(_ utterance: Int, on track: TrackID) -> Bool {
        state.withLock { utterance <= $0.finalized[track, default: 0] }
    }
}

/// Utterances waiting for transcription, at most `limit`.
public final class PendingUtterances: Sendable {
    public let limit: Int
    private let count = Mutex(0)

    public init(limit: Int) { self.limit = limit }

    public func claim() -> Bool {
        count.withLock { count in
            guard count < limit else { return false }
            count += 1
            return true
        }
    }

    public func release() { count.withLock { $0 -= 1 } }
}

/// Admits audio at most `maxRealtimeFactor` times faster than real time, with a few seconds
/// of burst, so one client cannot monopolise the detector.
public struct StreamPace: Sendable {
    public let maxRealtimeFactor: Double
    private let started = ContinuousClock.now
    private var received = 0.0
    private let burst = 5.0

    public init(maxRealtimeFactor: Double) {
        self.maxRealtimeFactor = maxRealtimeFactor
    }

    /// Counts `seconds` of audio, or returns why the frame is refused (and does not count it).
    public mutating func admit(seconds: Double) -> String? {
        let elapsed = ContinuousClock.now - started
        let elapsedSeconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        guard received + seconds <= elapsedSeconds * maxRealtimeFactor + burst else {
            return String(format: "audio arrives faster than %.0f× real time (setting stream.max_realtime_factor); frame refused",
                          maxRealtimeFactor)
        }
        received += seconds
        return nil
    }
}
