import AttuneAudio
import AttuneConversation
import AttuneCore
import AttuneSpeech
import Foundation
import Synchronization

/// The per-session listening pipeline: validate a frame, resample it to 16 kHz, and find turns
/// with Silero VAD, holding a pause whose transcript stops mid-sentence (`turn.hold_unfinished`).
///
/// `@unchecked Sendable`: it runs blocking native code, so the session calls it on the speech
/// threads, one call at a time (each call is awaited before the next is made); only
/// ``pauseTranscribed(_:utterance:pause:)``, which goes through a lock, is called from elsewhere.
final class Listener: TrackListener, @unchecked Sendable {
    private var turns: TurnDetector<SileroVoiceActivityDetector>
    private var resampler: Resampler?
    private var utterance = 0
    private var currentUtterance: Int?

    /// The largest frame ``accept(_:)`` takes (`stream.max_frame_bytes`).
    private let maxFrameBytes: Int
    private let chunkSeconds: Double?
    /// Samples of the utterance in progress already reported in chunks.
    private var chunked = 0
    /// The verdict on a pause's transcript, reported from the transcription task
    /// (``pauseTranscribed(_:utterance:pause:)``) and applied with the next frame: hold the pause
    /// (the words stop mid-sentence) or release it to the usual silence.
    private let pauseVerdict = Mutex<(utterance: Int, pause: Int, hold: Bool)?>(nil)
    /// `turn.hold_unfinished`, kept apart from the detector's settings, which only the listening
    /// thread may read.
    private let holdsUnfinished: Bool

    /// - Parameter chunkSeconds: report every this many seconds of an utterance in progress as a
    ///   chunk (for the voice); nil for no chunks.
    ///   - completion: Smart Turn's probability that an utterance is complete, when
    ///     `turn.endOfTurn` is `.smartTurn`.
    init(
        vadModel: URL, turn: TurnSettings, maxFrameBytes: Int, chunkSeconds: Double?,
        completion: (@Sendable ([Float]) -> Double?)? = nil
    ) throws {
        self.maxFrameBytes = maxFrameBytes
        self.chunkSeconds = chunkSeconds
        holdsUnfinished = turn.holdUnfinished
        let detector = try SileroVoiceActivityDetector(model: vadModel, settings: .forTurns(turn))
        turns = TurnDetector(detector: detector, settings: turn, completion: completion)
    }

    /// The silence that ends a turn, in seconds.
    var trailingSilence: Double {
        get { turns.settings.trailingSilence }
        set { turns.settings.trailingSilence = newValue }
    }

    var utteranceInProgress: (utterance: Int, audio: [Float])? {
        turns.isPaused ? nil : currentUtterance.map { ($0, turns.utterance) }
    }

    func accept(_ input: AudioInput, maxBytes: Int) throws(AudioFrameError) -> [ListenerEvent] {
        guard StreamLimits.sampleRates.contains(input.sampleRate) else {
            throw AudioFrameError(
                code: .unsupportedSampleRate,
                description: "sample_rate \(input.sampleRate) Hz is outside 8000-48000 Hz")
        }
        var samples = try PCM.samples(fromFrame: input.bytes, encoding: input.encoding, maxBytes: maxBytes)
        if input.sampleRate != VoiceActivitySettings.sampleRate {
            if resampler?.inputRate != input.sampleRate {
                resampler = try? Resampler(from: input.sampleRate, to: VoiceActivitySettings.sampleRate)
            }
            samples = resampler?.process(samples) ?? []
        }
        applyPauseVerdict()
        let events = turns.accept(samples).map(translate)
        return events + chunks(after: events)
    }

    /// The chunks of the utterance in progress that are complete now.
    private func chunks(after events: [ListenerEvent]) -> [ListenerEvent] {
        for event in events {
            if case .started = event { chunked = 0 }
            if case .ended = event { chunked = 0 }
        }
        guard let chunkSeconds, let utterance = currentUtterance else { return [] }
        let size = Int(chunkSeconds * Double(VoiceActivitySettings.sampleRate))
        let audio = turns.utterance
        let rate = Double(VoiceActivitySettings.sampleRate)
        var chunks: [ListenerEvent] = []
        while size > 0, audio.count - chunked >= size {
            // The utterance's audio ends at the stream's current time.
            let end = turns.time - Double(audio.count - chunked - size) / rate
            chunks.append(.chunk(utterance: utterance, start: end - Double(size) / rate, end: end, audio: Array(audio[chunked..<chunked + size])))
            chunked += size
        }
        return chunks
    }

    /// The core's view of ``accept(_:maxBytes:)``.
    func accept(_ input: AudioInput) throws(ListenerError) -> [ListenerEvent] {
        do {
            return try accept(input, maxBytes: maxFrameBytes)
        } catch {
            throw ListenerError(code: error.code.rawValue, description: error.description)
        }
    }

    func endTurn() -> [ListenerEvent] {
        turns.endTurn().map { [translate($0)] } ?? []
    }

    func pauseTranscribed(_ text: String?, utterance: Int, pause: Int) -> Bool {
        let hold = holdsUnfinished && text.map(SentenceEnding.seemsUnfinished) == true
        pauseVerdict.withLock { $0 = (utterance, pause, hold) }
        return hold
    }

    /// Holds or releases the pause a transcript was read for, if the speaker is still in it.
    private func applyPauseVerdict() {
        guard let verdict = pauseVerdict.withLock({ verdict in defer { verdict = nil }; return verdict }),
            verdict.utterance == currentUtterance
        else { return }
        turns.settlePause(verdict.pause, unfinished: verdict.hold)
    }

    private func translate(_ event: TurnEvent) -> ListenerEvent {
        switch event {
        case .speechStarted(let start):
            utterance += 1
            currentUtterance = utterance
            return .started(utterance: utterance, start: start)
        case .paused(let audio):
            return .paused(utterance: utterance, pause: turns.pauseNumber, audio: audio)
        case .resumed:
            return .resumed(utterance: utterance)
        case let .speechEnded(start, end, audio, reason):
            currentUtterance = nil
            return .ended(utterance: utterance, start: start, end: end, audio: audio, reason: reason.rawValue)
        }
    }
}
