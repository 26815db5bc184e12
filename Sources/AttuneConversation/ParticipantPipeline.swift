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
    /// A pause that may end the turn: `audio` is what the turn holds if it does.
    case paused(utterance: Int, audio: [Float])
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
}

/// The engines a participant's audio goes through, behind protocols: the server builds them
/// from native models, tests may pass others.
public struct ParticipantEngines: Sendable {
    /// Makes the listener of a new track.
    public var makeListener: @Sendable () throws -> any TrackListener
    /// The bounded pool listeners run on (they call blocking native code).
    public var listenPool: InferencePool
    public var transcriber: (any SpeechTranscribing)?
    /// The sensors a finished utterance's transcript goes to (the text channel).
    public var textSensors: [any EmotionSensor]
    /// The sensors each chunk and each finished utterance's audio goes to (the voice channel).
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
    /// Transcribe utterances (and so read their text emotion); off, audio only finds turns.
    public var transcribe = true
    /// Utterances waiting for transcription before more are refused with `busy`.
    public var maxPendingUtterances = 4
    /// Audio seconds accepted per wall-clock second, per track.
    public var maxRealtimeFactor = 3.0
    /// Chunks and utterances waiting for the speech sensors before more are skipped with `busy`.
    public var maxPendingSpeech = 8

    public init() {}
}

/// One connection's audio in a room: a listener per track finds utterances and cuts them into
/// chunks. One task transcribes utterances in order (starting in the pause before a turn ends,
/// and reusing that decode when the turn ends with the same audio), broadcasts the transcript,
/// reads its emotion with the text sensors and reports it to the room; another reads each chunk
/// and each whole utterance with the speech sensors (the voice) and reports that. The room
/// fuses every estimate per participant and broadcasts it, with the chunk or utterance it came from.
///
/// The reader calls ``addTrack(_:in:as:)``, ``accept(_:track:in:as:)`` and the other methods one at a
/// time; the owner runs ``run()`` in its task group and ends it with ``finish()``.
public final class ParticipantPipeline: Sendable {
    private let engines: ParticipantEngines
    private let settings: ParticipantSettings
    private let report: @Sendable (RoomError) -> Void
    private let tracks = Mutex<[TrackID: Track]>([:])
    private let pending: PendingUtterances
    private let jobs: AsyncStream<Job>
    private let enqueue: AsyncStream<Job>.Continuation
    private let pendingSpeech: PendingUtterances
    private let speechJobs: AsyncStream<SpeechJob>
    private let enqueueSpeech: AsyncStream<SpeechJob>.Continuation

    /// - Parameter report: where errors of work done in the background go (the participant's connection).
    public init(engines: ParticipantEngines, settings: ParticipantSettings, report: @escaping @Sendable (RoomError) -> Void) {
        self.engines = engines
        self.settings = settings
        self.report = report
        pending = PendingUtterances(limit: settings.maxPendingUtterances)
        (jobs, enqueue) = AsyncStream.makeStream(of: Job.self)
        pendingSpeech = PendingUtterances(limit: settings.maxPendingSpeech)
        (speechJobs, enqueueSpeech) = AsyncStream.makeStream(of: SpeechJob.self)
    }

    private struct Track: Sendable {
        let listener: any TrackListener
        var pace: StreamPace
    }

    // MARK: - The reader's side

    public func addTrack(_ track: TrackID, in room: Room, as user: ParticipantID) async throws {
        guard tracks.withLock({ $0[track] }) == nil else { return }
        try await room.addTrack(track, for: user)
        let make = engines.makeListener
        let listener = try await engines.listenPool.run { try make() }
        let pace = StreamPace(maxRealtimeFactor: settings.maxRealtimeFactor)
        tracks.withLock { $0[track] = Track(listener: listener, pace: pace) }
    }

    /// Removes the track; what was said last on it is still transcribed.
    public func removeTrack(_ track: TrackID, in room: Room, as user: ParticipantID) async throws {
        try await room.removeTrack(track, for: user)
        guard let ending = tracks.withLock({ $0.removeValue(forKey: track) }) else { return }
        let events = try await engines.listenPool.run { ending.listener.endTurn() }
        submit(events, room: room, user: user, track: track)
    }

    /// Forgets every track (the participant left the room).
    public func removeAllTracks() {
        tracks.withLock { $0.removeAll() }
    }

    public func accept(_ input: AudioInput, track: TrackID, in room: Room, as user: ParticipantID) async throws {
        let admitted = tracks.withLock { tracks -> Result<any TrackListener, RoomError> in
            guard var entry = tracks[track] else {
                return .failure(RoomError(.unknownTrack, "no audio track \(track); send audio_track_added first"))
            }
            if let refusal = entry.pace.admit(seconds: input.seconds) { return .failure(RoomError(.rateLimited, refusal)) }
            tracks[track] = entry
            return .success(entry.listener)
        }
        let listener = try admitted.get()
        let outcome = try await engines.listenPool.run { () -> Result<[ListenerEvent], ListenerError> in
            Result { () throws(ListenerError) in try listener.accept(input) }
        }
        switch outcome {
        case .failure(let error):
            throw RoomError(RoomError.Code(rawValue: error.code) ?? .badMessage, error.description)
        case .success(let events):
            submit(events, room: room, user: user, track: track)
        }
    }

    /// Ends ``run()`` once what is queued is done.
    public func finish() {
        enqueue.finish()
        enqueueSpeech.finish()
    }

    // MARK: - Transcribing

    private struct Job: Sendable {
        let room: Room
        let user: ParticipantID
        let track: TrackID
        let utterance: Int
        let audio: [Float]
        /// Seconds since the track's first audio, for a finished utterance; nil for a guess.
        let span: (start: Double, end: Double)?
    }

    private struct SpeechJob: Sendable {
        let room: Room
        let user: ParticipantID
        let audio: [Float]
        let source: EmotionSource
    }

    /// Queues audio for the speech sensors, skipping it with `busy` when too much waits.
    private func submitSpeech(_ audio: [Float], kind: EmotionSource.Kind, start: Double, end: Double, room: Room, user: ParticipantID, track: TrackID) {
        guard !engines.speechSensors.isEmpty else { return }
        guard pendingSpeech.claim() else {
            report(RoomError(.busy, "\(pendingSpeech.limit) readings are already waiting for voice analysis (setting rooms.max_pending_chunks); this \(kind.rawValue) is skipped"))
            return
        }
        let source = EmotionSource(channel: .voice, kind: kind, track: track, start: start, end: end)
        enqueueSpeech.yield(SpeechJob(room: room, user: user, audio: audio, source: source))
    }

    /// Queues a finished utterance (refused with `busy` when too many wait) and a pause's audio
    /// as a guess (skipped silently when too many wait); chunks and finished utterances also go
    /// to the speech sensors.
    private func submit(_ events: [ListenerEvent], room: Room, user: ParticipantID, track: TrackID) {
        for event in events {
            switch event {
            case let .chunk(_, start, end, audio):
                submitSpeech(audio, kind: .chunk, start: start, end: end, room: room, user: user, track: track)
                continue
            case let .ended(_, start, end, audio, _):
                submitSpeech(audio, kind: .utterance, start: start, end: end, room: room, user: user, track: track)
            default:
                break
            }
            guard settings.transcribe else { continue }
            switch event {
            case let .paused(utterance, audio):
                guard pending.claim() else { continue }
                enqueue.yield(Job(room: room, user: user, track: track, utterance: utterance, audio: audio, span: nil))
            case let .ended(utterance, start, end, audio, _):
                guard pending.claim() else {
                    report(RoomError(.busy, "\(pending.limit) utterances are already waiting for transcription (setting stream.max_pending_turns); this one is skipped"))
                    continue
                }
                enqueue.yield(Job(room: room, user: user, track: track, utterance: utterance, audio: audio, span: (start, end)))
            case .started, .chunk:
                continue
            }
        }
    }

    /// Transcribes queued utterances and reads queued speech, each in order, until ``finish()``.
    public func run() async {
        async let transcribing: Void = transcribe()
        async let listening: Void = readSpeech()
        _ = await (transcribing, listening)
    }

    private func readSpeech() async {
        for await job in speechJobs {
            defer { pendingSpeech.release() }
            for sensor in engines.speechSensors {
                do {
                    if let estimate = try await sensor.estimate(.speech(job.audio), subject: job.user.rawValue, time: Date().timeIntervalSince1970) {
                        await job.room.report(estimate, from: job.user, source: job.source)
                    }
                } catch let error as InferencePoolBusyError {
                    report(RoomError(.busy, "\(error.description); this \(job.source.kind.rawValue) is skipped"))
                } catch {
                    report(RoomError(.unavailable, "could not read the voice of a \(job.source.kind.rawValue) of track \(job.source.trackID): \(error)"))
                }
            }
        }
    }

    private func transcribe() async {
        // Per track, the latest guess decoded in a pause; the final with the same audio reuses it.
        var guesses: [TrackID: (utterance: Int, audio: [Float], transcript: Transcript)] = [:]
        for await job in jobs {
            defer { pending.release() }
            guard let transcriber = engines.transcriber else {
                if job.span != nil { report(RoomError(.unavailable, "speech recognition is unavailable: the Whisper model did not load")) }
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
                let source = EmotionSource(channel: .text, kind: .utterance, track: job.track, start: start, end: end)
                for sensor in engines.textSensors {
                    if let estimate = try await sensor.estimate(.text(transcript.text), subject: job.user.rawValue, time: Date().timeIntervalSince1970) {
                        await job.room.report(estimate, from: job.user, source: source)
                    }
                }
            } catch let error as InferencePoolBusyError {
                report(RoomError(.busy, error.description))
            } catch {
                report(RoomError(.transcriptionFailed, "could not transcribe an utterance of track \(job.track): \(error)"))
            }
        }
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
