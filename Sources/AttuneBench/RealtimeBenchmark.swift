import AttuneCore
import AttuneEmotion
import AttuneServer
import Foundation

/// `attune bench realtime`: the figures of real time (issue 14) on the machine it runs on, each
/// beside its target, from smaller samples of the benchmarks that measure them one by one:
/// speech recognition (`bench stt`), text emotion (`bench emotion-text`), end of turn
/// (`bench turns`), voice to voice (`bench conversation`) and a typed prompt's first reply audio
/// (`bench replies`). One run gives a machine class's row in BENCHMARKS.md.
public struct RealtimeBenchmark {
    /// How much of each benchmark's data to use; the defaults take about fifteen minutes on two cores.
    public struct Sizes: Sendable {
        /// Clips transcribed whole, the first `streamedClips` of them also streamed for latency.
        public var clips = 48
        public var streamedClips = 16
        public var texts = 500
        /// Streams through the turn detector (cut with a pause, or whole).
        public var turns = 96
        /// Spoken turns of `bench conversation` (every fourth a barge-in, not timed as a turn).
        public var conversations = 16
        /// Prompts typed, for the first reply audio.
        public var prompts = 16
        public init() {}
    }

    /// Where the data comes from.
    public struct Data: Sendable {
        /// Folder of RAVDESS-named WAV files, or a TSV manifest.
        public var speech: String
        /// GoEmotions-style TSV of `text<TAB>label ids<TAB>id`.
        public var texts: String
        /// `bench replies` prompt TSV.
        public var prompts: String
        public init(speech: String, texts: String, prompts: String) {
            self.speech = speech
            self.texts = texts
            self.prompts = prompts
        }
    }

    /// Issue 14's targets, as upper bounds.
    public static let targets: [String: Double] = [
        "final_transcript_ms_p50": 300,
        "voice_to_voice_ms_p50": 800,
        "false_cut_rate": 0.05,
    ]

    public struct Report: Encodable, Sendable {
        public var sttRTF: Double
        public var finalTranscriptP50: Double
        public var finalTranscriptP95: Double
        public var textEmotionP50: Double
        public var endOfTurn: String
        public var endOfTurnP50: Double
        public var endOfTurnP95: Double
        /// Mid-sentence pauses taken for the end of the turn, over `bench turns`' streams.
        public var turnFalseCutRate: Double
        public var voiceToVoiceP50: Double
        public var voiceToVoiceP95: Double
        /// To the first audio after the opener (`reply.opener`): the model's own words.
        public var voiceToAnswerP50: Double
        /// Between the opener's end and the model's own words, as a listener hears it.
        public var silenceAfterOpenerP50: Double?
        /// Spoken turns the server ended before their last word (`bench conversation`).
        public var falseCutRate: Double
        public var firstTokenP50: Double
        public var typedToFirstAudioP50: Double
        public var model: String
        public var targets: [String: Double]
        /// For each target, whether this run met it.
        public var met: [String: Bool]

        enum CodingKeys: String, CodingKey {
            case model, targets, met
            case sttRTF = "stt_rtf"
            case finalTranscriptP50 = "final_transcript_ms_p50"
            case finalTranscriptP95 = "final_transcript_ms_p95"
            case textEmotionP50 = "text_emotion_ms_p50"
            case endOfTurn = "end_of_turn"
            case endOfTurnP50 = "end_of_turn_ms_p50"
            case endOfTurnP95 = "end_of_turn_ms_p95"
            case turnFalseCutRate = "turn_false_cut_rate"
            case voiceToVoiceP50 = "voice_to_voice_ms_p50"
            case voiceToVoiceP95 = "voice_to_voice_ms_p95"
            case voiceToAnswerP50 = "voice_to_answer_ms_p50"
            case silenceAfterOpenerP50 = "silence_after_opener_ms_p50"
            case falseCutRate = "false_cut_rate"
            case firstTokenP50 = "first_token_ms_p50"
            case typedToFirstAudioP50 = "typed_to_first_audio_ms_p50"
        }
    }

    public var configuration: AttuneConfiguration
    public var sizes = Sizes()
    public var progress: @Sendable (String) -> Void

    public init(configuration: AttuneConfiguration, progress: @escaping @Sendable (String) -> Void) {
        self.configuration = configuration
        self.progress = progress
    }

    /// Runs the benchmarks one after another (never at once: each measures the whole machine).
    public func run(data: Data) async throws -> Report {
        let clips = try SpeechBenchmark.clips(from: data.speech)
        let progress = self.progress

        progress("speech recognition: \(sizes.clips) clips, \(sizes.streamedClips) streamed")
        let speech = try await SpeechBenchmark(configuration: configuration, streamedSessions: sizes.streamedClips) {
            progress("stt: \($0)")
        }.run(clips: SpeechBenchmark.spread(clips, count: sizes.clips))

        progress("text emotion: \(sizes.texts) texts, 2 threads")
        let textModel = try TextEmotionModel(models: URL(fileURLWithPath: configuration.modelsDirectory), threads: 2)
        let text = try TextEmotionBenchmark(model: textModel).run(data: data.texts, limit: sizes.texts)

        progress("end of turn: \(sizes.turns) streams")
        var turnSettings = TurnBenchmark.Settings()
        turnSettings.leaveRoom(for: configuration.turn)
        let (turns, _) = try await TurnBenchmark(settings: turnSettings) { progress("turns: \($0)") }
            .run(clips: SpeechBenchmark.spread(clips, count: sizes.turns), configuration: configuration)

        progress("voice to voice: \(sizes.conversations) sessions")
        let conversation = try await ConversationBenchmark(configuration: configuration) { progress("conversation: \($0)") }
            .run(clips: SpeechBenchmark.spread(clips, count: sizes.conversations))

        progress("typed prompt to first audio: \(sizes.prompts) prompts")
        let replyBenchmark = ReplyBenchmark(configuration: configuration) { progress("replies: \($0)") }
        let prompts = try ReplyBenchmark.prompts(from: data.prompts)
        let (replies, _) = try await replyBenchmark.run(SpeechBenchmark.spread(prompts, count: sizes.prompts))

        let figures: [String: Double] = [
            "final_transcript_ms_p50": speech.finalLatencyP50,
            "voice_to_voice_ms_p50": conversation.voiceToVoiceP50,
            "false_cut_rate": conversation.falseCutRate,
        ]
        let ms = { (value: Double) in value.rounded(to: 1) }
        return Report(
            sttRTF: speech.rtf.rounded(to: 3), finalTranscriptP50: ms(speech.finalLatencyP50), finalTranscriptP95: ms(speech.finalLatencyP95),
            textEmotionP50: ms(text.p50), endOfTurn: turns.endOfTurn, endOfTurnP50: ms(turns.endOfTurnP50), endOfTurnP95: ms(turns.endOfTurnP95),
            turnFalseCutRate: turns.falseCutRate.rounded(to: 3), voiceToVoiceP50: ms(conversation.voiceToVoiceP50),
            voiceToVoiceP95: ms(conversation.voiceToVoiceP95), voiceToAnswerP50: ms(conversation.voiceToAnswerP50),
            silenceAfterOpenerP50: conversation.silenceAfterOpenerP50.map(ms), falseCutRate: conversation.falseCutRate.rounded(to: 3),
            firstTokenP50: ms(conversation.firstTokenP50), typedToFirstAudioP50: ms(replies.firstAudioMsP50), model: replyBenchmark.modelName,
            targets: Self.targets, met: Self.targets.reduce(into: [:]) { met, target in met[target.key] = figures[target.key].map { $0 <= target.value } })
    }
}
