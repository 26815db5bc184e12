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
/// - false cut: the server ended the turn before the last word (a reply to half a sentence);
///   such turns are left out of the latencies;
/// - voice to voice: from the end of the person's speech (where the last word's sound fades,
///   from the audio; it includes the end-of-turn silence the server waits for) to the first
///   reply audio frame (with `reply.opener`, the opener's);
/// - voice to answer: the same to the first audio frame after the opener, the model's own words;
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
        public var firstTokenP50: Double
        public var transcriptP50: Double
        public var ttsRTF: Double
        public var interruptions: Int
        public var interruptionStopP95: Double

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
            case firstTokenP50 = "first_token_ms_p50"
            case transcriptP50 = "transcript_ms_p50"
            case ttsRTF = "tts_rtf"
            case interruptionStopP95 = "interruption_stop_ms_p95"
        }
    }

    public var configuration: AttuneConfiguration
    public var bargeInEvery = 4
    /// The turn streams: pauses put into cut utterances (none: whole utterances only).
    public var turnSettings = TurnBenchmark.Settings()
    static let storyRequest = "Tell me a long story about a lighthouse keeper and the sea, with many details."
    public var progress: @Sendable (String) -> Void

    public init(configuration: AttuneConfiguration, progress: @escaping @Sendable (String) -> Void) {
        self.configuration = configuration
        self.progress = progress
    }

    public func run(clips: [SpeechBenchmark.Clip]) async throws -> Report {
        guard !clips.isEmpty else { throw BenchmarkError("no clips") }
        let aligner = WhisperTranscriber(
            model: try WhisperModel(path: URL(fileURLWithPath: configuration.whisperModelPath), wordTimings: true))
        let items = try await TurnBenchmark(settings: turnSettings).items(from: clips, aligner: aligner)
        try await aligner.pool.shutdown()
        let audios = items.map(\.audio)
        let bargeInEvery = self.bargeInEvery
        let progress = self.progress
        return try await withBenchServer(configuration, waitForLLM: true) { port in
            var voiceToVoice: [Double] = []
            var fromEvent: [Double] = []
            var endOfTurn: [Double] = []
            var voiceToAnswer: [Double] = []
            var opened = 0
            var firstToken: [Double] = []
            var transcript: [Double] = []
            var ttsMs = 0.0
            var audioMs = 0.0
            var stops: [Double] = []
            var turns = 0
            var falseCuts = 0
            var speculative = 0
            for (index, audio) in audios.enumerated() {
                let bargeIn = bargeInEvery > 0 && index % bargeInEvery == bargeInEvery - 1
                var client = ConversationClient(port: port)
                client.settleTimeout = .seconds(120)
                // A barge-in turn first asks (typed) for a long story, then speaks over it: the
                // clip's speech begins about 1 s in, while the story is still being generated.
                let before: [ConversationClient.Extra] = bargeIn ? [.text(ConversationClient.userText(Self.storyRequest))] : []
                let events = try await client.stream(audio, before: before) { events in
                    events.filter { $0.type == "reply_done" }.count >= (bargeIn ? 2 : 1)
                }
                if bargeIn,
                    let stop = events.firstIndex(where: { $0.type == "stop_playback" }),
                    let interruption = events[..<stop].last(where: { $0.type == "speech_started" })
                {
                    let stoppedReply = events[stop]["reply"]
                    let stoppedAt = events[stop...].first { $0.type == "reply_done" && $0["reply"] == stoppedReply }?.arrival
                        ?? events[stop].arrival
                    stops.append((stoppedAt - interruption.arrival).milliseconds)
                    progress(String(format: "clip %d/%d: barge-in stopped the story in %.1f ms", index + 1, audios.count, stops.last!))
                    continue
                }
                let item = items[index]
                guard let audioStart = events.first(where: { $0.type == "client_audio_started" })?.arrival else { continue }
                // The stream's clock: seconds of audio sent, from the first frame.
                let speechEnd = audioStart + .milliseconds(Int64(item.speechEnd * 1000))
                let lastWord = audioStart + .milliseconds(Int64(item.lastWord * 1000))
                // The server ended the turn before it had heard the last word.
                if events.contains(where: { $0.type == "speech_ended" && $0.arrival < lastWord }) {
                    turns += 1
                    falseCuts += 1
                    progress("clip \(index + 1)/\(audios.count): false cut (pause \(item.pauseMs.map(String.init) ?? "none") ms after \(item.cutAfter ?? "-"))")
                    continue
                }
                guard let ended = events.first(where: { $0.type == "speech_ended" }),
                    let firstFrame = events.first(where: { $0.type == "audio_frame" }),
                    let done = events.first(where: { $0.type == "reply_done" })
                else {
                    progress("clip \(index + 1): no complete turn (\(events.map(\.type).joined(separator: ",")))")
                    continue
                }
                turns += 1
                voiceToVoice.append((firstFrame.arrival - speechEnd).milliseconds)
                let hasOpener = events.first { $0.type == "reply_started" }?["opener"] != nil
                if hasOpener { opened += 1 }
                // The model's own words: the audio of the first sentence after the opener.
                if let answer = events.firstIndex(where: { $0.type == "reply_audio" && Int($0["sentence"] ?? "") == (hasOpener ? 2 : 1) }),
                   let frame = events[answer...].first(where: { $0.type == "audio_frame" }) {
                    voiceToAnswer.append((frame.arrival - speechEnd).milliseconds)
                }
                fromEvent.append((firstFrame.arrival - ended.arrival).milliseconds)
                endOfTurn.append((ended.arrival - speechEnd).milliseconds)
                let timings = ReplyBenchmark.object(done["timings"])
                if timings["speculation_lead_ms"] != nil { speculative += 1 }
                if let value = timings["first_token_ms"] { firstToken.append(value) }
                if let value = timings["transcript_ms"] { transcript.append(value) }
                ttsMs += timings["tts_ms"] ?? 0
                audioMs += timings["audio_ms"] ?? 0
                let answer = hasOpener ? String(format: " (after an opener; answer %.0f ms)", voiceToAnswer.last ?? 0) : ""
                let stream = "pause \(item.pauseMs.map { "\($0) ms after \(item.cutAfter ?? "-")" } ?? "none")"
                progress(
                    "clip \(index + 1)/\(audios.count) (\(stream)): "
                        + String(format: "voice-to-voice %.0f ms", voiceToVoice.last ?? 0) + answer
                        + String(format: ", end of turn %.0f ms, first token %.0f ms", endOfTurn.last ?? 0, timings["first_token_ms"] ?? 0)
                        + (timings["speculation_lead_ms"] != nil ? " (speculative)" : ""))
            }
            return Report(
                turns: turns,
                falseCutRate: turns > 0 ? Double(falseCuts) / Double(turns) : 0,
                speculativeRate: turns - falseCuts > 0 ? Double(speculative) / Double(turns - falseCuts) : 0,
                voiceToVoiceP50: percentile(voiceToVoice, 0.5), voiceToVoiceP95: percentile(voiceToVoice, 0.95),
                voiceToVoiceFromEventP50: percentile(fromEvent, 0.5),
                endOfTurnP50: percentile(endOfTurn, 0.5), endOfTurnP95: percentile(endOfTurn, 0.95),
                openerRate: voiceToVoice.isEmpty ? 0 : Double(opened) / Double(voiceToVoice.count),
                voiceToAnswerP50: percentile(voiceToAnswer, 0.5), voiceToAnswerP95: percentile(voiceToAnswer, 0.95),
                firstTokenP50: percentile(firstToken, 0.5), transcriptP50: percentile(transcript, 0.5),
                ttsRTF: audioMs > 0 ? ttsMs / audioMs : 0,
                interruptions: stops.count, interruptionStopP95: percentile(stops, 0.95))
        }
    }
}
