import AttuneAgent
import AttuneAudio
import AttuneCore
import AttuneEmotion
import AttuneServer
import AttuneSpeech
import Foundation

/// Whole spoken turns through the embedded stack, over the WebSocket at real-time pace: each
/// utterance is streamed into a fresh session and the reply awaited. The utterances are
/// `attune bench turns`' streams: cut at a word boundary with a pause put in (`pausesMs`,
/// cycling) or whole. Every `bargeInEvery`-th session instead asks for a long story and speaks
/// over it while it is generated, to measure how fast the reply stops (those sessions do not
/// count as turns).
///
/// With `turnsPerSession` above 1, each spoken session is a conversation of that many whole
/// utterances: the next is spoken once the reply to the one before has been heard (its audio's
/// length after its first frame, and 300 ms more). The figures then cover the first turn of
/// each session, and the `later_` ones the turns after it, which answer with the conversation
/// so far in the prompt (`reply.warm_history`).
///
/// - false cut: the server ended the turn before the last word (a reply to half a sentence);
///   such turns are left out of the latencies;
/// - voice to voice: from the end of the person's speech (where the last word's sound fades,
///   from the audio; it includes the end-of-turn silence the server waits for) to the first
///   reply audio frame (with `reply.opener`, the opener's);
/// - voice to answer: the same to the first audio frame after the opener, the model's own words;
/// - silence after the opener: what a listener who plays the audio as it comes hears between
///   the end of the opener and the start of the model's own words (0 when they arrive before
///   the opener has been said);
/// - speculative: the share of replies the model had started in the pause before the turn
///   ended (`reply.speculative_start`);
/// - first token: the server's timing, from the end of speech to the model's first token;
/// - TTS real-time factor: synthesis time over the length of the audio it made;
/// - interruption stop: from `speech_started` of the interrupting speech to the moment the
///   reply's generation has stopped and no more of its audio will be sent (`reply_done` with
///   `interrupted`).
///
/// Whether the replies are any good is `attune bench replies`' question, not this one's.
public struct ConversationBenchmark {
    public struct Report: Encodable, Sendable {
        public var turns: Int
        public var falseCutRate: Double
        public var speculativeRate: Double
        public var voiceToVoiceP50: Double
        public var voiceToVoiceP95: Double
        public var voiceToVoiceFromEventP50: Double
        /// From the end of speech to the server's `speech_ended`: the end-of-turn wait.
        public var endOfTurnP50: Double
        public var endOfTurnP95: Double
        /// Share of timed turns whose reply began with an opener (`reply.opener`).
        public var openerRate: Double
        public var voiceToAnswerP50: Double
        public var voiceToAnswerP95: Double
        public var silenceAfterOpenerP50: Double?
        public var silenceAfterOpenerP95: Double?
        public var firstTokenP50: Double
        /// Prompt tokens the model read after the end of the turn before its first token (nil
        /// when the LLM server does not report them; llama-server does).
        public var promptTokensReadP50: Double?
        public var transcriptP50: Double
        public var ttsRTF: Double
        public var interruptions: Int
        public var interruptionStopP95: Double
        /// Turns spoken in one session (1: every turn starts a conversation).
        public var turnsPerSession: Int
        /// Timed turns after the first of their session, and their figures (nil with one turn
        /// per session).
        public var laterTurns: Int
        public var laterVoiceToVoiceP50: Double?
        public var laterVoiceToAnswerP50: Double?
        public var laterFirstTokenP50: Double?

        enum CodingKeys: String, CodingKey {
            case turns, interruptions
            case falseCutRate = "false_cut_rate"
            case speculativeRate = "speculative_rate"
            case voiceToVoiceP50 = "voice_to_voice_ms_p50"
            case voiceToVoiceP95 = "voice_to_voice_ms_p95"
            case voiceToVoiceFromEventP50 = "speech_ended_to_audio_ms_p50"
            case endOfTurnP50 = "end_of_turn_ms_p50"
            case endOfTurnP95 = "end_of_turn_ms_p95"
            case openerRate = "opener_rate"
            case voiceToAnswerP50 = "voice_to_answer_ms_p50"
            case voiceToAnswerP95 = "voice_to_answer_ms_p95"
            case silenceAfterOpenerP50 = "silence_after_opener_ms_p50"
            case silenceAfterOpenerP95 = "silence_after_opener_ms_p95"
            case firstTokenP50 = "first_token_ms_p50"
            case promptTokensReadP50 = "prompt_tokens_read_p50"
            case transcriptP50 = "transcript_ms_p50"
            case ttsRTF = "tts_rtf"
            case interruptionStopP95 = "interruption_stop_ms_p95"
            case turnsPerSession = "turns_per_session"
            case laterTurns = "later_turns"
            case laterVoiceToVoiceP50 = "later_voice_to_voice_ms_p50"
            case laterVoiceToAnswerP50 = "later_voice_to_answer_ms_p50"
            case laterFirstTokenP50 = "later_first_token_ms_p50"
        }
    }

    public var configuration: AttuneConfiguration
    public var bargeInEvery = 4
    /// Whole utterances spoken one after another in each (not barge-in) session; with more
    /// than 1, utterances are never cut (`turnSettings.pausesMs` is not used).
    public var turnsPerSession = 1
    /// The turn streams: pauses put into cut utterances (none: whole utterances only).
    public var turnSettings = TurnBenchmark.Settings()
    static let storyRequest = "Tell me a long story about a lighthouse keeper and the sea, with many details."
    /// A person's answer follows the end of the reply they heard by this much.
    static let answerGap = Duration.milliseconds(300)
    public var progress: @Sendable (String) -> Void

    public init(configuration: AttuneConfiguration, progress: @escaping @Sendable (String) -> Void) {
        self.configuration = configuration
        self.progress = progress
    }

    public func run(clips: [SpeechBenchmark.Clip]) async throws -> Report {
        guard !clips.isEmpty else { throw BenchmarkError("no clips") }
        guard turnsPerSession >= 1 else { throw BenchmarkError("turns per session must be at least 1") }
        let aligner = WhisperTranscriber(
            model: try WhisperModel(path: URL(fileURLWithPath: configuration.whisperModelPath), wordTimings: true))
        var streams = turnSettings
        if turnsPerSession > 1 { streams.pausesMs = [] }
        let items = try await TurnBenchmark(settings: streams).items(from: clips, aligner: aligner)
        try await aligner.pool.shutdown()
        let sessions = Self.sessions(items: items.count, turnsPerSession: turnsPerSession, bargeInEvery: bargeInEvery)
        let progress = self.progress
        let turnsPerSession = self.turnsPerSession
        return try await withBenchServer(configuration, waitForLLM: true) { port in
            var measured: [TurnMeasurement] = []
            var stops: [Double] = []
            for (number, session) in sessions.enumerated() {
                let label = "session \(number + 1)/\(sessions.count)"
                if session.bargeIn {
                    guard let stop = try await Self.bargeIn(items[session.items[0]].audio, port: port) else { continue }
                    stops.append(stop)
                    progress(String(format: "%@: barge-in stopped the story in %.1f ms", label, stop))
                    continue
                }
                let turns = try await Self.conversation(session.items.map { items[$0] }, port: port)
                for turn in turns { progress("\(label), \(turn.summary)") }
                measured += turns
            }
            return Self.report(measured, stops: stops, turnsPerSession: turnsPerSession)
        }
    }

    /// The sessions the items are spoken in: every `bargeInEvery`-th session is a barge-in on one
    /// item; the others take `turnsPerSession` items each.
    static func sessions(items: Int, turnsPerSession: Int, bargeInEvery: Int) -> [(bargeIn: Bool, items: [Int])] {
        var sessions: [(bargeIn: Bool, items: [Int])] = []
        var next = 0
        while next < items {
            let bargeIn = bargeInEvery > 0 && sessions.count % bargeInEvery == bargeInEvery - 1
            let count = bargeIn ? 1 : min(turnsPerSession, items - next)
            sessions.append((bargeIn, Array(next..<next + count)))
            next += count
        }
        return sessions
    }

    /// Asks (typed) for a long story, then speaks over it: the audio's speech begins about 1 s in,
    /// while the story is still being generated. Returns how long the reply took to stop.
    static func bargeIn(_ audio: [Float], port: Int) async throws -> Double? {
        var client = ConversationClient(port: port)
        client.settleTimeout = .seconds(120)
        let events = try await client.stream(audio, before: [.text(ConversationClient.userText(storyRequest))]) { events in
            events.filter { $0.type == "reply_done" }.count >= 2
        }
        guard let stop = events.firstIndex(where: { $0.type == "stop_playback" }),
            let interruption = events[..<stop].last(where: { $0.type == "speech_started" })
        else { return nil }
        let stoppedReply = events[stop]["reply"]
        let stoppedAt = events[stop...].first { $0.type == "reply_done" && $0["reply"] == stoppedReply }?.arrival ?? events[stop].arrival
        return (stoppedAt - interruption.arrival).milliseconds
    }

    /// Speaks `items` in one session, each after the reply to the one before was heard, and
    /// measures each turn.
    static func conversation(_ items: [TurnBenchmark.Item], port: Int) async throws -> [TurnMeasurement] {
        var client = ConversationClient(port: port)
        client.settleTimeout = .seconds(120)
        var starts: [Int] = []
        var audio: [Float] = []
        for item in items {
            starts.append(audio.count)
            audio += item.audio
        }
        client.gates = starts.enumerated().dropFirst().map { position, sample in
            .init(sample: sample) { events in heard(replies: position, in: events) }
        }
        let events = try await client.stream(audio) { events in
            events.filter { $0.type == "reply_done" }.count >= items.count
        }
        guard let audioStart = events.first(where: { $0.type == "client_audio_started" })?.arrival else { return [] }
        // Where each item's audio began: the stream's start, then each gate's opening.
        let resumed = events.filter { $0.type == "client_audio_resumed" }
        var measured: [TurnMeasurement] = []
        for (position, item) in items.enumerated() {
            let begun: ContinuousClock.Instant
            if position == 0 {
                begun = audioStart
            } else {
                guard position - 1 < resumed.count, let sample = resumed[position - 1].number("sample") else { break }
                begun = resumed[position - 1].arrival + .seconds((Double(starts[position]) - sample) / 16_000)
            }
            let ends = position < resumed.count ? resumed[position].arrival : nil
            let window = events.filter { event in event.arrival >= begun && (ends.map { event.arrival < $0 } ?? true) }
            measured.append(TurnMeasurement(
                item: item, position: position, events: window,
                speechEnd: begun + .seconds(item.speechEnd), lastWord: begun + .seconds(item.lastWord)))
        }
        return measured
    }

    /// Whether the first `replies` replies are done and the last of them has been heard to its
    /// end, with a person's short gap after it.
    static func heard(replies: Int, in events: [ReceivedEvent]) -> Bool {
        let done = events.filter { $0.type == "reply_done" }
        guard done.count >= replies, let last = done.last else { return false }
        let audio = events.filter { $0.type == "reply_audio" && $0["reply"] == last["reply"] }
        let seconds = audio.reduce(0.0) { $0 + ($1.number("samples") ?? 0) / ($1.number("sample_rate") ?? 16_000) }
        let heardAt = (audio.first?.arrival).map { $0 + .seconds(seconds) } ?? last.arrival
        return ContinuousClock.now >= max(heardAt, last.arrival) + answerGap
    }

    static func report(_ measured: [TurnMeasurement], stops: [Double], turnsPerSession: Int) -> Report {
        // A session that never ended a turn (the server did not hear speech) counts for nothing.
        let measured = measured.filter { $0.falseCut || $0.voiceToVoice != nil }
        let timed = measured.filter { !$0.falseCut }
        let first = timed.filter { $0.position == 0 }
        let later = timed.filter { $0.position > 0 }
        let audioMs = first.reduce(0) { $0 + $1.audioMs }
        func p50(_ turns: [TurnMeasurement], _ value: (TurnMeasurement) -> Double?) -> Double? {
            turns.isEmpty ? nil : percentile(turns.compactMap(value), 0.5)
        }
        return Report(
            turns: measured.count,
            falseCutRate: measured.isEmpty ? 0 : Double(measured.filter(\.falseCut).count) / Double(measured.count),
            speculativeRate: timed.isEmpty ? 0 : Double(timed.filter(\.speculative).count) / Double(timed.count),
            voiceToVoiceP50: percentile(first.compactMap(\.voiceToVoice), 0.5),
            voiceToVoiceP95: percentile(first.compactMap(\.voiceToVoice), 0.95),
            voiceToVoiceFromEventP50: percentile(first.compactMap(\.fromEvent), 0.5),
            endOfTurnP50: percentile(first.compactMap(\.endOfTurn), 0.5),
            endOfTurnP95: percentile(first.compactMap(\.endOfTurn), 0.95),
            openerRate: first.isEmpty ? 0 : Double(first.filter(\.opener).count) / Double(first.count),
            voiceToAnswerP50: percentile(first.compactMap(\.voiceToAnswer), 0.5),
            voiceToAnswerP95: percentile(first.compactMap(\.voiceToAnswer), 0.95),
            silenceAfterOpenerP50: percentileOfAny(first.compactMap(\.silenceAfterOpener), 0.5),
            silenceAfterOpenerP95: percentileOfAny(first.compactMap(\.silenceAfterOpener), 0.95),
            firstTokenP50: percentile(first.compactMap(\.firstToken), 0.5),
            promptTokensReadP50: percentileOfAny(first.compactMap(\.promptTokensRead), 0.5),
            transcriptP50: percentile(first.compactMap(\.transcript), 0.5),
            ttsRTF: audioMs > 0 ? first.reduce(0) { $0 + $1.ttsMs } / audioMs : 0,
            interruptions: stops.count, interruptionStopP95: percentile(stops, 0.95),
            turnsPerSession: turnsPerSession, laterTurns: later.count,
            laterVoiceToVoiceP50: p50(later, \.voiceToVoice), laterVoiceToAnswerP50: p50(later, \.voiceToAnswer),
            laterFirstTokenP50: p50(later, \.firstToken))
    }
}

/// What one spoken turn showed, from the events of its stretch of the session.
struct TurnMeasurement: Sendable {
    var position: Int
    var falseCut = false
    var voiceToVoice: Double?
    var voiceToAnswer: Double?
    /// Between the end of the opener, played from its first frame, and the model's first audio.
    var silenceAfterOpener: Double?
    var fromEvent: Double?
    var endOfTurn: Double?
    var opener = false
    var speculative = false
    var firstToken: Double?
    var promptTokensRead: Double?
    var transcript: Double?
    var ttsMs = 0.0
    var audioMs = 0.0
    /// A line for the benchmark's progress.
    var summary = ""

    init(item: TurnBenchmark.Item, position: Int, events: [ReceivedEvent], speechEnd: ContinuousClock.Instant, lastWord: ContinuousClock.Instant) {
        self.position = position
        let stream = "turn \(position + 1), pause \(item.pauseMs.map { "\($0) ms after \(item.cutAfter ?? "-")" } ?? "none")"
        // What the server heard: each pause's speculative transcript ("…" when it held the pause
        // or the speaker went on) and each final, in order, for reading a run's cuts and holds.
        let heard = events.filter { $0.type == "transcript_partial" || $0.type == "transcript_final" }.compactMap { event in
            event["text"].map { event.type == "transcript_final" ? "final \"\($0)\"" : "\"\($0)\"" }
        }
        let heardNote = heard.isEmpty ? "" : " [heard: \(heard.joined(separator: ", "))]"
        // The server ended the turn before it had heard the last word.
        if events.contains(where: { $0.type == "speech_ended" && $0.arrival < lastWord }) {
            falseCut = true
            summary = "\(stream): false cut\(heardNote)"
            return
        }
        guard let ended = events.first(where: { $0.type == "speech_ended" }),
            let firstFrame = events.first(where: { $0.type == "audio_frame" }),
            let done = events.first(where: { $0.type == "reply_done" })
        else {
            summary = "\(stream): no complete turn (\(events.map(\.type).joined(separator: ",")))"
            return
        }
        voiceToVoice = (firstFrame.arrival - speechEnd).milliseconds
        opener = events.first { $0.type == "reply_started" }?["opener"] != nil
        // The model's own words: the audio of the first sentence after the opener.
        if let answer = events.firstIndex(where: { $0.type == "reply_audio" && Int($0["sentence"] ?? "") == (opener ? 2 : 1) }),
            let frame = events[answer...].first(where: { $0.type == "audio_frame" })
        {
            voiceToAnswer = (frame.arrival - speechEnd).milliseconds
            if opener, let said = events.first(where: { $0.type == "reply_audio" && Int($0["sentence"] ?? "") == 1 }) {
                let openerEnds = firstFrame.arrival + .seconds((said.number("samples") ?? 0) / (said.number("sample_rate") ?? 16_000))
                silenceAfterOpener = max(0, (frame.arrival - openerEnds).milliseconds)
            }
        }
        fromEvent = (firstFrame.arrival - ended.arrival).milliseconds
        endOfTurn = (ended.arrival - speechEnd).milliseconds
        let timings = ReplyBenchmark.object(done["timings"])
        speculative = timings["speculation_lead_ms"] != nil
        firstToken = timings["first_token_ms"]
        promptTokensRead = timings["prompt_tokens_read"]
        transcript = timings["transcript_ms"]
        ttsMs = timings["tts_ms"] ?? 0
        audioMs = timings["audio_ms"] ?? 0
        let answer = opener ? String(format: " (after an opener; answer %.0f ms, %.0f ms after the opener's end)", voiceToAnswer ?? 0, silenceAfterOpener ?? 0) : ""
        summary = "\(stream): " + String(format: "voice-to-voice %.0f ms", voiceToVoice ?? 0) + answer
            + String(format: ", end of turn %.0f ms, first token %.0f ms", endOfTurn ?? 0, firstToken ?? 0)
            + (promptTokensRead.map { String(format: " after reading %.0f prompt tokens", $0) } ?? "")
            + (speculative ? " (speculative)" : "")
            + (timings["second_try_ms"] != nil ? " (asked twice)" : "")
        let rejected = done.strings("rejected")
        summary += heardNote + ": \"\(done["text"] ?? "")\""
            + (rejected.isEmpty ? "" : " (the guard replaced: \(rejected.map { "\"\($0)\"" }.joined(separator: ", ")))")
    }
}
