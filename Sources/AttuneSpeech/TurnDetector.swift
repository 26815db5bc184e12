/// When a speaker's turn ends: the settings of ``TurnDetector``.
public struct TurnSettings: Sendable, Equatable {
    /// Silence after speech that ends the turn, in seconds.
    public var trailingSilence = 0.5
    /// Longest utterance; longer speech is cut into consecutive utterances, in seconds.
    public var maxUtterance = 15.0
    /// Shorter bursts (clicks, coughs) never start a turn, in seconds.
    public var minSpeech = 0.25
    /// Audio kept from before the detected start, so the first syllable is not clipped, in seconds.
    public var preRoll = 0.5
    /// Audio kept after the last speech, so the final word is whole, in seconds. It is also how
    /// far into a pause the detector offers the utterance for a speculative transcription.
    public var tail = 0.2
    /// What ends a turn: silence alone, or Smart Turn's reading of a short pause.
    public var endOfTurn = EndOfTurn.silence
    /// With Smart Turn: the pause after which the model is asked whether the turn is complete.
    public var semanticPause = 0.2
    /// With Smart Turn: the probability from which the model's "complete" ends the turn.
    public var completeThreshold = 0.5
    /// With Smart Turn: the silence that ends a turn the model called incomplete (replaces
    /// `trailingSilence`, so that a mid-sentence pause is not taken for the end).
    public var maxSilence = 1.5
    /// Hold a pause whose speculative transcript stops on a word that cannot end a sentence
    /// ("Kids are", "by the", "and"; ``SentenceEnding``): the owner reports it with
    /// ``TurnDetector/holdPause(_:)`` and the turn then ends only after `unfinishedSilence`.
    public var holdUnfinished = true
    /// The silence that ends a turn whose pause was held as unfinished, in seconds.
    public var unfinishedSilence = 1.5
    /// With `holdUnfinished`: a pause's silence does not end the turn before the owner has read
    /// the pause's transcript and said whether to hold it (``TurnDetector/holdPause(_:)``) or
    /// not (``TurnDetector/releasePause(_:)``), waiting at most `unfinishedSilence` (Smart Turn's
    /// "complete" still ends it at once). Without it, a decode that comes after `trailingSilence`
    /// comes too late to hold the pause.
    public var awaitPauseTranscript = true

    public enum EndOfTurn: String, Sendable, CaseIterable {
        case silence
        case smartTurn = "smart_turn"
    }

    public init() {}
}

/// What a ``TurnDetector`` reports.
public enum TurnEvent: Sendable, Equatable {
    /// Speech began at `start` seconds into the stream.
    case speechStarted(start: Double)
    /// The speaker paused `tail` seconds ago. `audio` is exactly what ``speechEnded`` will carry
    /// if the pause becomes the end of the turn, so a transcript of it can be started now.
    case paused(audio: [Float])
    /// The speaker went on after a ``paused(audio:)``: the turn continues, and whatever was
    /// started on the pause's audio is stale.
    case resumed
    /// The turn ended: speech from `start` to `end` seconds, and the audio to transcribe.
    case speechEnded(start: Double, end: Double, audio: [Float], reason: EndReason)

    public enum EndReason: String, Sendable {
        case silence, maxLength = "max_length", client
    }
}

/// Finds the turns in a live 16 kHz stream: where speech starts, and where it has ended because
/// the speaker fell silent long enough, talked past the length limit, or the client said so.
/// It also keeps the audio of the utterance in progress for partial transcripts.
///
/// The detector's own hangover should be short (``VoiceActivitySettings/forTurns(_:)``): this
/// type applies the trailing silence itself, measured from the last window the VAD called speech.
public struct TurnDetector<Detector: VoiceActivityDetecting> {
    /// Changing `trailingSilence` takes effect from the next frame; the other values are read
    /// by the detector at creation.
    public var settings: TurnSettings
    private var detector: Detector
    private let window: Int
    private let rate = Double(VoiceActivitySettings.sampleRate)

    /// Samples received, the stream's clock.
    private var position = 0
    /// Samples not yet a full VAD window.
    private var pending: [Float] = []
    /// The last `preRoll + minSpeech` seconds, while nobody speaks.
    private var recent: [Float] = []
    /// The utterance in progress, from its start including pre-roll.
    public private(set) var utterance: [Float] = []
    private var utteranceStart = 0
    private var speechStart = 0
    private var lastSpeech = 0
    /// The speaker's pause in the turn: none yet (speaking), offered for a speculative
    /// transcript (``TurnEvent/paused(audio:)``), released to the usual silence
    /// (``releasePause(_:)``), or held as unfinished (``holdPause(_:)``).
    private var pause = Pause.none
    private var completionAsked = false
    /// The number of the last pause offered (``TurnEvent/paused(audio:)``), counted over the
    /// stream: what ``holdPause(_:)`` names.
    public private(set) var pauseNumber = 0
    public private(set) var isInTurn = false
    /// The probability that the turn is complete after the given utterance (Smart Turn), nil
    /// when it cannot tell; used when `settings.endOfTurn` is `.smartTurn`.
    private let completion: ((_ utterance: [Float]) -> Double?)?

    private enum Pause { case none, offered, released, held }

    public init(
        detector: Detector, settings: TurnSettings = .init(), window: Int = VoiceActivitySettings().windowSize,
        completion: ((_ utterance: [Float]) -> Double?)? = nil
    ) {
        self.detector = detector
        self.settings = settings
        self.window = window
        self.completion = completion
    }

    /// The silence that ends a turn for sure: `maxSilence` when Smart Turn may end it sooner,
    /// at least `unfinishedSilence` in a pause held as unfinished or waiting for its transcript.
    private var silenceLimit: Double {
        let limit = settings.endOfTurn == .smartTurn && completion != nil ? settings.maxSilence : settings.trailingSilence
        return pause == .held || isAwaitingTranscript ? max(limit, settings.unfinishedSilence) : limit
    }

    /// Whether the pause in progress waits for its transcript's verdict (`awaitPauseTranscript`).
    private var isAwaitingTranscript: Bool {
        pause == .offered && settings.holdUnfinished && settings.awaitPauseTranscript
    }

    /// Holds pause number `number` (the speaker stopped on an unfinished sentence): if the speaker
    /// is still in it and `settings.holdUnfinished` is on, the turn ends only after
    /// `settings.unfinishedSilence`. Returns whether the pause is now held; a pause already over
    /// (the speaker went on, or the turn ended) is left alone.
    @discardableResult
    public mutating func holdPause(_ number: Int) -> Bool {
        guard settings.holdUnfinished, isPaused, number == pauseNumber else { return false }
        pause = .held
        return true
    }

    /// Releases pause number `number` (its transcript reads as a finished sentence, or there is
    /// none): if the speaker is still in it and it was not held, the usual silence ends the turn
    /// again, from the next frame. A pause already over is left alone.
    public mutating func releasePause(_ number: Int) {
        guard isPaused, number == pauseNumber, pause == .offered else { return }
        pause = .released
    }

    /// The verdict on pause number `number`'s transcript: ``holdPause(_:)`` when its words stop
    /// mid-sentence (`unfinished`), ``releasePause(_:)`` otherwise. Returns whether it is held.
    @discardableResult
    public mutating func settlePause(_ number: Int, unfinished: Bool) -> Bool {
        guard unfinished else {
            releasePause(number)
            return false
        }
        return holdPause(number)
    }

    /// Seconds of audio received so far.
    public var time: Double { Double(position) / rate }

    /// Whether the speaker is in a pause that was offered (``TurnEvent/paused(audio:)``) and has
    /// not gone on: the pause's audio is being decoded, so a partial decode would repeat it.
    public var isPaused: Bool { isInTurn && pause != .none }

    /// Seconds of speech in the utterance in progress.
    public var utteranceDuration: Double { Double(utterance.count) / rate }

    public mutating func accept(_ samples: [Float]) -> [TurnEvent] {
        pending += samples
        var events: [TurnEvent] = []
        var offset = 0
        while pending.count - offset >= window {
            let chunk = Array(pending[offset..<offset + window])
            offset += window
            events += step(chunk)
        }
        pending.removeFirst(offset)
        return events
    }

    /// Ends the turn now if one is in progress (the client's "I'm done").
    public mutating func endTurn() -> TurnEvent? {
        guard isInTurn else { return nil }
        utterance += pending
        position += pending.count
        pending.removeAll()
        return finishTurn(end: position, reason: .client)
    }

    private mutating func step(_ chunk: [Float]) -> [TurnEvent] {
        _ = detector.accept(chunk)  // closed segments are not needed: the turn logic keeps its own audio
        position += chunk.count
        let speaking = detector.isSpeaking
        var events: [TurnEvent] = []

        if isInTurn {
            utterance += chunk
            if speaking {
                if pause != .none { events.append(.resumed) }
                lastSpeech = position
                pause = .none
                completionAsked = false
            }
            let silence = Double(position - lastSpeech) / rate
            let limit = silenceLimit
            if !speaking && pause == .none && silence >= settings.tail && silence < limit {
                pause = .offered
                pauseNumber += 1
                events.append(.paused(audio: audioUntil(lastSpeech)))
            }
            if !speaking && silence >= limit || !speaking && isCompleteAfterPause(silence) {
                events.append(finishTurn(end: lastSpeech, reason: .silence))
            } else if Double(position - utteranceStart) / rate >= settings.maxUtterance {
                events.append(finishTurn(end: position, reason: .maxLength))
                if speaking { events.append(startTurn(keeping: [])) }
            }
        } else {
            recent += chunk
            let keep = Int((settings.preRoll + settings.minSpeech) * rate) + window
            if recent.count > keep { recent.removeFirst(recent.count - keep) }
            if speaking { events.append(startTurn(keeping: recent)) }
        }
        return events
    }

    /// Whether Smart Turn, asked once per pause when it reaches `semanticPause`, calls the
    /// utterance so far (with the pause) complete.
    private mutating func isCompleteAfterPause(_ silence: Double) -> Bool {
        guard settings.endOfTurn == .smartTurn, let completion, !completionAsked, pause != .held, silence >= settings.semanticPause else {
            return false
        }
        completionAsked = true
        return (completion(utterance) ?? 0) >= settings.completeThreshold
    }

    /// The VAD reports speech only after `minSpeech` of it, so the turn starts that much earlier.
    private mutating func startTurn(keeping lead: [Float]) -> TurnEvent {
        isInTurn = true
        utterance = lead
        utteranceStart = position - lead.count
        lastSpeech = position
        pause = .none
        completionAsked = false
        recent.removeAll()
        speechStart = lead.isEmpty ? position : max(0, position - Int(settings.minSpeech * rate) - window)
        return .speechStarted(start: Double(speechStart) / rate)
    }

    /// The utterance from its start to `end` plus the tail.
    private func audioUntil(_ end: Int) -> [Float] {
        Array(utterance[..<min(utterance.count, max(0, end - utteranceStart) + Int(settings.tail * rate))])
    }

    private mutating func finishTurn(end: Int, reason: TurnEvent.EndReason) -> TurnEvent {
        let audio = audioUntil(end)
        isInTurn = false
        utterance.removeAll()
        return .speechEnded(start: Double(speechStart) / rate, end: Double(end) / rate, audio: audio, reason: reason)
    }
}
