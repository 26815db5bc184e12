import AttuneAudio
import AttuneCore
import AttuneServer
import AttuneSpeech
import Foundation

/// `attune bench turns`: how soon Attune takes the turn after a person finishes a sentence, and
/// how often it takes a mid-sentence pause for the end.
///
/// The test streams are made from recorded utterances. Most are cut at a word boundary (from
/// Whisper's aligned word timings, moved to the quietest 10 ms nearby) with a pause of a chosen
/// length put in; the others are whole. Each is followed by silence, and the whole stream gets
/// the same low noise, as a microphone would. The truth comes from the audio, not from the
/// detectors measured: the speaker has finished where the sound of the last word fades
/// (`Settings.speechFloor` below the loudest 10 ms).
///
/// The turn detector of a session (Silero VAD, and Smart Turn when `turn.end_of_turn` says so)
/// is fed the stream in 20 ms frames, as the browser sends it. With `turn.hold_unfinished`, each
/// pause's audio is decoded by Whisper as the session does, and a transcript that stops
/// mid-sentence holds the pause from the frame at which the decode would have finished (the
/// stream time of the pause plus the decode's measured time). A turn end before the last word
/// is a false cut; no end after it within the trailing silence is a missed end; otherwise the
/// end-of-turn time is from the end of speech to the frame whose processing reported the end,
/// plus that processing time. (Sobs and loud breaths after a sentence count as speech here, so
/// a detector that rightly ignores them is charged a false cut: 1 or 2 clips of RAVDESS's
/// strong sadness.)
public struct TurnBenchmark {
    public struct Settings: Sendable {
        /// Pause lengths put into cut utterances, in milliseconds; a whole utterance follows each round.
        public var pausesMs = [250, 500, 750, 1_000]
        /// Silence before the utterance, in seconds (the recordings bring their own second too).
        public var leadSilence = 0.5
        /// Silence after the utterance, in seconds: how long an end may take before it is missed.
        public var trailingSilence = 3.0
        /// Noise over the whole stream, in dB below the speech's loudness; nil for none (the
        /// recordings' own silence is digital zero).
        public var snrDB: Double? = 35
        /// The truth's end of speech: the last 10 ms at most `wordFloor` dB below the loudest is
        /// the last word; its sound lasts while it stays within `fadeFloor` dB of the loudest.
        /// (Breaths, 20 dB or more below the vowels, are not speech.)
        public var wordFloor = 20.0
        public var fadeFloor = 35.0
        /// A cut moves to the quietest 10 ms within this many seconds of Whisper's boundary.
        public var snapWindow = 0.1
        /// A cut leaves at least this much speech before and after it, in seconds.
        public var minimumPart = 0.2
        /// Samples per frame fed to the detector (20 ms).
        public var frameSamples = 320
        /// Where to write the audio of every pause the detector offers, for studying what tells a
        /// mid-sentence stop from a finished sentence (`scripts/pause_pitch.py`); nil for none.
        public var pauseAudioDirectory: URL?
        /// How long a pause's decode counts as taking, in seconds, in place of its measured time;
        /// nil: measured (a test pins it, so that whether a hold comes in time does not depend
        /// on how busy the machine is).
        public var pauseDecodeTime: Double?

        public init() {}

        /// Makes the silence after each utterance outlast the longest wait `turn` allows (Smart
        /// Turn's maximum, a held pause), so that a late end is measured rather than missed.
        public mutating func leaveRoom(for turn: TurnSettings) {
            trailingSilence = max(trailingSilence, turn.maxSilence + 1, turn.unfinishedSilence + 1)
        }
    }

    /// One test stream.
    public struct Item: Sendable {
        public var clip: String
        /// The inserted pause, nil for a whole utterance.
        public var pauseMs: Int?
        /// The word before the pause.
        public var cutAfter: String?
        public var audio: [Float]
        /// Where the speaker finished (the last word's sound faded), where the last word was last
        /// loud, and, with a pause, where they went on, in seconds. A turn end before `lastWord`
        /// is a false cut; the wait is measured from `speechEnd`.
        public var speechEnd: Double
        public var lastWord: Double
        public var resume: Double?
    }

    /// What the detector did with one item (`--details`).
    public struct Outcome: Codable, Sendable {
        public var clip: String
        public var pauseMs: Int?
        public var cutAfter: String?
        public var speechEnd: Double
        /// When each turn start and end was reported, in seconds of the stream.
        public var starts: [Double]
        public var ends: [Double]
        public var falseCut: Bool
        public var endOfTurnMs: Double?
        /// With `turn.hold_unfinished`: each pause's transcript, whether it held the pause, and
        /// when its decode finished (seconds of the stream).
        public var pauses: [PauseReading]

        public struct PauseReading: Codable, Sendable {
            public var text: String
            public var held: Bool
            public var readyAt: Double

            enum CodingKeys: String, CodingKey {
                case text, held
                case readyAt = "ready_at"
            }
        }

        enum CodingKeys: String, CodingKey {
            case clip, starts, ends, pauses
            case pauseMs = "pause_ms"
            case cutAfter = "cut_after"
            case speechEnd = "speech_end"
            case falseCut = "false_cut"
            case endOfTurnMs = "end_of_turn_ms"
        }
    }

    public struct Report: Encodable, Sendable {
        public var turns: Int
        public var pausedTurns: Int
        public var endOfTurn: String
        public var endOfTurnP50: Double
        public var endOfTurnP95: Double
        public var falseCutRate: Double
        public var falseCutRateByPause: [String: Double]
        public var missedEndRate: Double
        public var completionMsP50: Double?
        /// With `turn.hold_unfinished`: the share of pauses held, and the pause decode's p50.
        public var heldPauseRate: Double?
        public var pauseDecodeMsP50: Double?
        /// Finished messages checked, and the share the hold would take for unfinished (set by the caller).
        public var completeTexts: Int?
        public var completeTextsHeldRate: Double?
        public var snrDB: Double?
        public var settings: [String: Double]

        enum CodingKeys: String, CodingKey {
            case turns, settings
            case pausedTurns = "paused_turns"
            case endOfTurn = "end_of_turn"
            case endOfTurnP50 = "end_of_turn_ms_p50"
            case endOfTurnP95 = "end_of_turn_ms_p95"
            case falseCutRate = "false_cut_rate"
            case falseCutRateByPause = "false_cut_rate_by_pause_ms"
            case missedEndRate = "missed_end_rate"
            case completionMsP50 = "smart_turn_ms_p50"
            case heldPauseRate = "held_pause_rate"
            case pauseDecodeMsP50 = "pause_decode_ms_p50"
            case completeTexts = "complete_texts"
            case completeTextsHeldRate = "complete_texts_held_rate"
            case snrDB = "snr_db"
        }
    }

    public var settings: Settings
    public var progress: @Sendable (String) -> Void

    public init(settings: Settings = .init(), progress: @escaping @Sendable (String) -> Void = { _ in }) {
        self.settings = settings
        self.progress = progress
    }

    // MARK: - The test streams

    /// One item per clip, cycling through the pause lengths and a whole utterance, and through
    /// the possible cut points of each utterance.
    public func items(from clips: [SpeechBenchmark.Clip], aligner: WhisperTranscriber) async throws -> [Item] {
        let kinds: [Int?] = settings.pausesMs.map { $0 } + [nil]
        let decoder = AudioFileDecoder()
        var items: [Item] = []
        for (index, clip) in clips.enumerated() {
            let audio = try Resampler.resample(try decoder.read(contentsOf: URL(fileURLWithPath: clip.path)), to: 16_000).samples
            let words = try await aligner.words(audio)
            items.append(item(
                clip: URL(fileURLWithPath: clip.path).lastPathComponent, audio: audio, words: words,
                pauseMs: kinds[index % kinds.count], choice: index / kinds.count, seed: UInt64(index)))
            if (index + 1) % 50 == 0 { progress("prepared \(index + 1)/\(clips.count) streams") }
        }
        return items
    }

    /// The stream for one utterance: cut after one of its words (the `choice`-th possible cut,
    /// round robin) with a pause of `pauseMs`, or whole when `pauseMs` is nil or no word
    /// boundary leaves enough speech on both sides.
    public func item(clip: String, audio: [Float], words: [TimedWord], pauseMs: Int?, choice: Int, seed: UInt64) -> Item {
        let rate = 16_000.0
        let frame = 160
        let levels = stride(from: 0, to: max(audio.count - frame + 1, 0), by: frame).map { start in
            (audio[start..<start + frame].reduce(Float(0)) { $0 + $1 * $1 } / Float(frame)).squareRoot()
        }
        let loudest = levels.max() ?? 0
        let wordLevel = loudest * Float(pow(10, -settings.wordFloor / 20))
        let fadeLevel = loudest * Float(pow(10, -settings.fadeFloor / 20))
        // Speech: from the first word-loud 10 ms to where the sound after the last one fades,
        // so that breaths before and after the sentence are not counted.
        let firstLoud = levels.firstIndex { $0 > wordLevel } ?? 0
        let lastWordLoud = levels.lastIndex { $0 > wordLevel } ?? 0
        var lastLoud = lastWordLoud
        while lastLoud + 1 < levels.count, levels[lastLoud + 1] > fadeLevel { lastLoud += 1 }
        let firstSound = Double(firstLoud * frame) / rate
        let lastSound = Double((lastLoud + 1) * frame) / rate

        var cut: (sample: Int, word: String)?
        if pauseMs != nil {
            let candidates = words.dropLast().filter {
                $0.end > firstSound + settings.minimumPart && $0.end < lastSound - settings.minimumPart
            }
            if !candidates.isEmpty {
                let word = candidates[choice % candidates.count]
                // The quietest 10 ms near the boundary, so no sound is split.
                let low = max(0, Int((word.end - settings.snapWindow) * rate) / frame)
                let high = min(levels.count - 1, Int((word.end + settings.snapWindow) * rate) / frame)
                let quietest = (low...max(low, high)).min { levels[$0] < levels[$1] } ?? low
                cut = (quietest * frame + frame / 2, word.text)
            }
        }

        let lead = [Float](repeating: 0, count: Int(settings.leadSilence * rate))
        var stream = lead
        var resume: Double?
        var speechEnd = settings.leadSilence + lastSound
        var lastWord = settings.leadSilence + Double((lastWordLoud + 1) * frame) / rate
        if let cut, let pauseMs {
            let pause = Int(Double(pauseMs) / 1_000 * rate)
            stream += audio[..<cut.sample] + [Float](repeating: 0, count: pause) + audio[cut.sample...]
            resume = settings.leadSilence + (Double(cut.sample + pause)) / rate
            speechEnd += Double(pause) / rate
            lastWord += Double(pause) / rate
        } else {
            stream += audio
        }
        stream += [Float](repeating: 0, count: Int(settings.trailingSilence * rate))
        if let snr = settings.snrDB {
            let speech = levels[firstLoud...lastLoud].filter { $0 > fadeLevel }
            let loudness = (speech.reduce(Float(0)) { $0 + $1 * $1 } / Float(max(speech.count, 1))).squareRoot()
            var noise = GaussianNoise(seed: seed)
            let level = loudness * Float(pow(10, -snr / 20))
            for index in stream.indices { stream[index] += level * noise.next() }
        }
        return Item(
            clip: clip, pauseMs: cut == nil ? nil : pauseMs, cutAfter: cut?.word, audio: stream,
            speechEnd: speechEnd, lastWord: lastWord, resume: resume)
    }

    // MARK: - Measuring

    /// Builds the streams from `clips` (word boundaries from Whisper's aligned timings) and runs
    /// them through the turn detector that `configuration` sets up, as a session would.
    public func run(clips: [SpeechBenchmark.Clip], configuration: AttuneConfiguration) async throws -> (Report, [Outcome]) {
        let aligner = WhisperTranscriber(
            model: try WhisperModel(path: URL(fileURLWithPath: configuration.whisperModelPath), wordTimings: true),
            settings: configuration.whisper)
        let items = try await self.items(from: clips, aligner: aligner)
        try await aligner.pool.shutdown()
        let smartTurn = configuration.turn.endOfTurn == .smartTurn
            ? try SmartTurnModel(path: URL(fileURLWithPath: configuration.smartTurnModelPath)) : nil
        // A transcriber like the session's reads the pauses (the aligner's word timings would slow
        // its decodes, and the decode's time decides whether a hold comes in time).
        let pauseReader = configuration.turn.holdUnfinished
            ? WhisperTranscriber(model: try WhisperModel(path: URL(fileURLWithPath: configuration.whisperModelPath)), settings: configuration.whisper)
            : nil
        let result = try await run(
            items: items, vadModel: URL(fileURLWithPath: configuration.modelsDirectory + "/silero_vad.onnx"),
            turn: configuration.turn, smartTurn: smartTurn, pauseReader: pauseReader)
        try await pauseReader?.pool.shutdown()
        return result
    }

    /// Feeds every item to a fresh turn detector with `turn` settings; `smartTurn` is consulted
    /// when `turn.endOfTurn` is `.smartTurn`, and `pauseReader` decodes each pause when
    /// `turn.holdUnfinished` is on (without it, no pause is held).
    public func run(
        items: [Item], vadModel: URL, turn: TurnSettings, smartTurn: SmartTurnModel?, pauseReader: WhisperTranscriber? = nil
    ) async throws -> (Report, [Outcome]) {
        guard !items.isEmpty else { throw BenchmarkError("no turns to measure") }
        let clock = ContinuousClock()
        let timings = CompletionTimings()
        let completion: ((_ utterance: [Float]) -> Double?)? = smartTurn.map { model in
            { utterance in
                let started = clock.now
                defer { timings.add((clock.now - started).milliseconds) }
                return try? model.completion(utterance)
            }
        }
        let reader = turn.holdUnfinished ? pauseReader : nil
        var decodeMs: [Double] = []
        var outcomes: [Outcome] = []
        for (index, item) in items.enumerated() {
            var turns = TurnDetector(
                detector: try SileroVoiceActivityDetector(model: vadModel, settings: .forTurns(turn)), settings: turn,
                completion: completion)
            var ends: [(time: Double, processingMs: Double)] = []
            var starts: [Double] = []
            var pauses: [Outcome.PauseReading] = []
            // A pause's decode whose verdict is not applied yet: it is, once the stream reaches `readyAt`.
            var decoding: (pause: Int, readyAt: Double, unfinished: Bool, reading: Int)?
            var fed = 0
            while fed < item.audio.count {
                if let pending = decoding, Double(fed) / 16_000 >= pending.readyAt {
                    pauses[pending.reading].held = turns.settlePause(pending.pause, unfinished: pending.unfinished)
                    decoding = nil
                }
                let frame = Array(item.audio[fed..<min(fed + settings.frameSamples, item.audio.count)])
                let started = clock.now
                let events = turns.accept(frame)
                let processing = (clock.now - started).milliseconds
                fed += frame.count
                for event in events {
                    switch event {
                    case .speechStarted: starts.append(Double(fed) / 16_000)
                    case .speechEnded: ends.append((Double(fed) / 16_000, processing))
                    case .paused(let audio):
                        try writePauseAudio(audio, item: item, number: index, midSentence: Double(fed) / 16_000 < item.lastWord)
                        // Without a reader no verdict comes: the usual silence ends the turn.
                        guard let reader else { turns.releasePause(turns.pauseNumber); break }
                        let decodeStarted = clock.now
                        let text = (try? await reader.transcribe(audio, pass: .final))?.text ?? ""
                        let took = settings.pauseDecodeTime.map { $0 * 1_000 } ?? (clock.now - decodeStarted).milliseconds
                        decodeMs.append(took)
                        let readyAt = Double(fed) / 16_000 + took / 1_000
                        decoding = (turns.pauseNumber, readyAt, SentenceEnding.seemsUnfinished(text), pauses.count)
                        pauses.append(Outcome.PauseReading(text: text, held: false, readyAt: readyAt.rounded(to: 3)))
                    case .resumed: break
                    }
                }
            }
            let falseCut = ends.contains { $0.time < item.lastWord }
            let end = ends.first { $0.time >= item.lastWord }
            outcomes.append(Outcome(
                clip: item.clip, pauseMs: item.pauseMs, cutAfter: item.cutAfter, speechEnd: item.speechEnd.rounded(to: 3),
                starts: starts.map { $0.rounded(to: 3) }, ends: ends.map { $0.time.rounded(to: 3) }, falseCut: falseCut,
                endOfTurnMs: end.map { ((($0.time - item.speechEnd) * 1_000) + $0.processingMs).rounded(to: 1) },
                pauses: pauses))
            if (index + 1) % 50 == 0 { progress("measured \(index + 1)/\(items.count) turns") }
        }
        return (
            report(outcomes, turn: turn, completionMs: smartTurn == nil ? nil : timings.values, pauseDecodeMs: reader == nil ? nil : decodeMs),
            outcomes
        )
    }

    /// Writes a pause's audio to `settings.pauseAudioDirectory` as
    /// `NUMBER-CLIP-mid|end-CUT_WORD-PAUSE_MS.wav` (`mid`: the speaker goes on after it).
    private func writePauseAudio(_ audio: [Float], item: Item, number: Int, midSentence: Bool) throws {
        guard let directory = settings.pauseAudioDirectory else { return }
        let clip = item.clip.hasSuffix(".wav") ? String(item.clip.dropLast(4)) : item.clip
        let word = (item.cutAfter ?? "none").filter { $0.isLetter || $0 == "'" }
        let name = "\(number)-\(clip)-\(midSentence ? "mid" : "end")-\(word.isEmpty ? "none" : word)-\(item.pauseMs ?? 0).wav"
        try WAVFile.encode(AudioBuffer(samples: audio, sampleRate: 16_000)).write(to: directory.appendingPathComponent(name))
    }

    /// The share of `texts`, each a finished message, that ``SentenceEnding`` calls unfinished:
    /// how often `turn.hold_unfinished` would make a finished speaker wait longer.
    public static func heldShare(of texts: [String]) -> Double {
        guard !texts.isEmpty else { return 0 }
        return (Double(texts.filter(SentenceEnding.seemsUnfinished).count) / Double(texts.count)).rounded(to: 3)
    }

    func report(_ outcomes: [Outcome], turn: TurnSettings, completionMs: [Double]?, pauseDecodeMs: [Double]?) -> Report {
        let count = Double(outcomes.count)
        let endTimes = outcomes.compactMap(\.endOfTurnMs)
        var byPause: [String: Double] = [:]
        for pause in settings.pausesMs.map(Optional.some) + [nil] {
            let group = outcomes.filter { $0.pauseMs == pause }
            guard !group.isEmpty else { continue }
            byPause[pause.map(String.init) ?? "none"] = (Double(group.filter(\.falseCut).count) / Double(group.count)).rounded(to: 3)
        }
        var figures = [
            "trailing_silence_ms": turn.trailingSilence * 1_000, "min_speech_ms": turn.minSpeech * 1_000,
        ]
        if turn.endOfTurn == .smartTurn {
            figures["smart_turn_pause_ms"] = turn.semanticPause * 1_000
            figures["smart_turn_threshold"] = turn.completeThreshold
            figures["smart_turn_max_silence_ms"] = turn.maxSilence * 1_000
            figures.removeValue(forKey: "trailing_silence_ms")
        }
        if pauseDecodeMs != nil { figures["unfinished_silence_ms"] = turn.unfinishedSilence * 1_000 }
        let readings = outcomes.flatMap(\.pauses)
        return Report(
            turns: outcomes.count,
            pausedTurns: outcomes.filter { $0.pauseMs != nil }.count,
            endOfTurn: turn.endOfTurn.rawValue,
            endOfTurnP50: percentile(endTimes, 0.5).rounded(to: 1),
            endOfTurnP95: percentile(endTimes, 0.95).rounded(to: 1),
            falseCutRate: (Double(outcomes.filter(\.falseCut).count) / count).rounded(to: 3),
            falseCutRateByPause: byPause,
            missedEndRate: (Double(outcomes.filter { $0.endOfTurnMs == nil }.count) / count).rounded(to: 3),
            completionMsP50: completionMs.map { percentile($0, 0.5).rounded(to: 1) },
            heldPauseRate: pauseDecodeMs == nil || readings.isEmpty
                ? nil : (Double(readings.filter(\.held).count) / Double(readings.count)).rounded(to: 3),
            pauseDecodeMsP50: pauseDecodeMs.flatMap { $0.isEmpty ? nil : percentile($0, 0.5).rounded(to: 1) },
            snrDB: settings.snrDB,
            settings: figures)
    }
}

/// Smart Turn's run times, gathered from the detector's callback.
private final class CompletionTimings: @unchecked Sendable {
    private let lock = NSLock()
    private var times: [Double] = []

    func add(_ milliseconds: Double) { lock.withLock { times.append(milliseconds) } }
    var values: [Double] { lock.withLock { times } }
}

/// Unit-variance Gaussian noise from a seeded generator (SplitMix64, Box-Muller), so that every
/// run of the benchmark hears the same streams.
struct GaussianNoise {
    private var state: UInt64

    init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }

    private mutating func uniform() -> Double {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return (Double(z >> 11) + 0.5) / Double(1 << 53)
    }

    mutating func next() -> Float {
        Float((-2 * log(uniform())).squareRoot() * cos(2 * Double.pi * uniform()))
    }
}
