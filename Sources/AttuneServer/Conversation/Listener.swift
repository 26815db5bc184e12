import AttuneAudio
import AttuneConversation
import AttuneCore
import AttuneSpeech

/// One incoming audio frame, before validation.
/// The per-session listening pipeline: validate a frame, resample it to 16 kHz, and find turns
/// with Silero VAD.
///
/// `@unchecked Sendable`: it runs blocking native code, so the session calls it on the speech
/// threads, one call at a time (each call is awaited before the next is made); nothing else
/// touches it.
final class Listener: TrackListener, @unchecked Sendable {
    private var turns: TurnDetector<SileroVoiceActivityDetector>
    private var resampler: Resampler?
    private var utterance = 0
    private(set) var currentUtterance: Int?

    /// The largest frame ``accept(_:)`` takes (`stream.max_frame_bytes`).
    private let maxFrameBytes: Int

    init(components: ServerComponents) throws {
        maxFrameBytes = components.stream.maxFrameBytes
        let detector = try SileroVoiceActivityDetector(model: components.vadModel, settings: .forTurns(components.turn))
        turns = TurnDetector(detector: detector, settings: components.turn)
    }

    /// The silence that ends a turn, in seconds.
    var trailingSilence: Double {
        get { turns.settings.trailingSilence }
        set { turns.settings.trailingSilence = newValue }
    }

    /// The audio of the utterance in progress, for partial transcripts.
    var utteranceSamples: [Float] { turns.utterance }

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
        return turns.accept(samples).map(translate)
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

    private func translate(_ event: TurnEvent) -> ListenerEvent {
        switch event {
        case .speechStarted(let start):
            utterance += 1
            currentUtterance = utterance
            return .started(utterance: utterance, start: start)
        case .paused(let audio):
            return .paused(utterance: utterance, audio: audio)
        case let .speechEnded(start, end, audio, reason):
            currentUtterance = nil
            return .ended(utterance: utterance, start: start, end: end, audio: audio, reason: reason.rawValue)
        }
    }
}
