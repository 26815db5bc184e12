import AttuneAgent
import AttuneCore
import AttuneEmotion
import AttuneServer
import Foundation

/// Whether replies are ones a person would accept, and how fast they come: each prompt of a
/// fixed set is typed into a real session (the configured LLM, reply plan and guard, Piper), one
/// turn after another for a two-turn exchange, and the last reply is judged by ``ReplyJudge``,
/// whose checks share no code with the reply path.
public struct ReplyBenchmark {
    public struct Prompt: Sendable {
        public let emotion: EmotionLabel
        public let intensity: String
        public let topic: String
        /// The person's messages in order; the labels describe the last one.
        public let turns: [String]
        public let expectation: ReplyJudge.Expectation?

        /// The prompt as its TSV column writes it (turns joined by ` || `): the key of hand labels.
        public var text: String { turns.joined(separator: ReplyBenchmark.turnSeparator) }
    }

    public struct Result: Codable, Sendable {
        public let emotion: String
        public let intensity: String
        public let topic: String
        public let prompt: String
        public let expect: String?
        public let detected: String
        public let reply: String
        /// Sentences of the model's that the reply guard replaced or dropped.
        public let rejected: [String]
        public var verdict: ReplyJudge.Verdict
        public let firstTokenMs: Double?
        public let firstAudioMs: Double?
        /// The first audio after the opener (`reply.opener`): the model's own words.
        public var answerAudioMs: Double?
        public let totalMs: Double?
        /// When the server asked the model once more (`reply.second_try_words`); nil when it did not.
        public var secondTryMs: Double?
    }

    public struct Report: Encodable, Sendable {
        public var model: String
        public var prompts: Int
        public var acceptableRate: Double
        public var refusalRate: Double
        public var leakRate: Double
        public var echoRate: Double
        public var wrongRoleRate: Double
        public var nonAnswerRate: Double
        public var wrongEmotionRate: Double
        public var offTopicRate: Double
        public var missingHelpRate: Double
        /// Replies in which the guard replaced or dropped a sentence of the model's.
        public var guardRepairRate: Double
        /// Replies for which the model was asked once more because the guard left too little.
        public var secondTryRate: Double
        /// How often the text emotion model's reading of the prompt matched its label.
        public var detectionAccuracy: Double
        public var firstTokenMsP50: Double
        public var firstTokenMsP95: Double
        public var firstAudioMsP50: Double
        public var firstAudioMsP95: Double
        public var answerAudioMsP50: Double
        public var answerAudioMsP95: Double
        public var totalMsP50: Double

        enum CodingKeys: String, CodingKey {
            case model, prompts
            case acceptableRate = "acceptable_rate"
            case refusalRate = "refusal_rate"
            case leakRate = "leak_rate"
            case echoRate = "echo_rate"
            case wrongRoleRate = "wrong_role_rate"
            case nonAnswerRate = "non_answer_rate"
            case wrongEmotionRate = "wrong_emotion_rate"
            case offTopicRate = "off_topic_rate"
            case missingHelpRate = "missing_help_rate"
            case guardRepairRate = "guard_repair_rate"
            case secondTryRate = "second_try_rate"
            case detectionAccuracy = "detection_accuracy"
            case firstTokenMsP50 = "first_token_ms_p50"
            case firstTokenMsP95 = "first_token_ms_p95"
            case firstAudioMsP50 = "first_audio_ms_p50"
            case firstAudioMsP95 = "first_audio_ms_p95"
            case answerAudioMsP50 = "answer_audio_ms_p50"
            case answerAudioMsP95 = "answer_audio_ms_p95"
            case totalMsP50 = "total_ms_p50"
        }

        init(model: String, results: [Result]) {
            let count = Double(max(results.count, 1))
            func rate(_ flag: (ReplyJudge.Verdict) -> Bool) -> Double {
                (Double(results.filter { flag($0.verdict) }.count) / count).rounded(to: 3)
            }
            self.model = model
            prompts = results.count
            acceptableRate = rate(\.acceptable)
            refusalRate = rate(\.refusal)
            leakRate = rate(\.leak)
            echoRate = rate(\.echo)
            wrongRoleRate = rate(\.wrongRole)
            nonAnswerRate = rate(\.nonAnswer)
            wrongEmotionRate = rate(\.wrongEmotion)
            offTopicRate = rate(\.offTopic)
            missingHelpRate = rate(\.missingHelp)
            guardRepairRate = (Double(results.filter { !$0.rejected.isEmpty }.count) / count).rounded(to: 3)
            secondTryRate = (Double(results.filter { $0.secondTryMs != nil }.count) / count).rounded(to: 3)
            detectionAccuracy = (Double(results.filter { $0.detected == $0.emotion }.count) / count).rounded(to: 3)
            firstTokenMsP50 = percentile(results.compactMap(\.firstTokenMs), 0.5).rounded(to: 1)
            firstTokenMsP95 = percentile(results.compactMap(\.firstTokenMs), 0.95).rounded(to: 1)
            firstAudioMsP50 = percentile(results.compactMap(\.firstAudioMs), 0.5).rounded(to: 1)
            firstAudioMsP95 = percentile(results.compactMap(\.firstAudioMs), 0.95).rounded(to: 1)
            answerAudioMsP50 = percentile(results.compactMap(\.answerAudioMs), 0.5).rounded(to: 1)
            answerAudioMsP95 = percentile(results.compactMap(\.answerAudioMs), 0.95).rounded(to: 1)
            totalMsP50 = percentile(results.compactMap(\.totalMs), 0.5).rounded(to: 1)
        }
    }

    /// How hand labels and the judge's verdicts agree (`--labels`).
    public struct Agreement: Encodable, Sendable {
        public var labelled: Int
        public var agreement: Double
        /// Labelled acceptable, judged unacceptable.
        public var falseRejections: [String]
        /// Labelled unacceptable, judged acceptable.
        public var falseAcceptances: [String]
        /// Agreement at other relevance thresholds, to show how the threshold was chosen.
        public var agreementByThreshold: [String: Double]

        enum CodingKeys: String, CodingKey {
            case labelled, agreement
            case falseRejections = "false_rejections"
            case falseAcceptances = "false_acceptances"
            case agreementByThreshold = "agreement_by_threshold"
        }
    }

    static let turnSeparator = " || "
    /// Where the off-topic check draws its line (chosen on hand labels: BENCHMARKS.md).
    public static let defaultRelevanceThreshold = 0.2

    public var configuration: AttuneConfiguration
    public var relevanceThreshold = ReplyBenchmark.defaultRelevanceThreshold
    public var progress: @Sendable (String) -> Void

    public init(configuration: AttuneConfiguration, progress: @escaping @Sendable (String) -> Void) {
        self.configuration = configuration
        self.progress = progress
    }

    /// Reads `emotion<TAB>intensity<TAB>topic<TAB>text[<TAB>expect]` lines; `#` starts a comment.
    public static func prompts(from path: String) throws -> [Prompt] {
        try TabSeparated.rows(ofFile: path).compactMap { line, fields in
            guard !line.trimmingCharacters(in: .whitespaces).isEmpty else { return nil }
            guard (4...5).contains(fields.count), let emotion = EmotionLabel(normalizing: fields[0]) else {
                throw BenchmarkError("\(path): expected emotion<TAB>intensity<TAB>topic<TAB>text[<TAB>care|crisis], got: \(line)")
            }
            var expectation: ReplyJudge.Expectation?
            if fields.count == 5, !fields[4].isEmpty {
                guard let value = ReplyJudge.Expectation(rawValue: fields[4]) else {
                    throw BenchmarkError("\(path): expect must be care or crisis, got '\(fields[4])'")
                }
                expectation = value
            }
            let turns = fields[3].components(separatedBy: turnSeparator).map { $0.trimmingCharacters(in: .whitespaces) }
            return Prompt(emotion: emotion, intensity: fields[1], topic: fields[2], turns: turns, expectation: expectation)
        }
    }

    /// Hand labels: `yes|no<TAB>prompt text[<TAB>note]` lines, keyed by the prompt's TSV text.
    public static func labels(from path: String) throws -> [String: Bool] {
        var labels: [String: Bool] = [:]
        for (line, fields) in try TabSeparated.rows(ofFile: path) {
            guard fields.count >= 2, ["yes", "no"].contains(fields[0]) else {
                throw BenchmarkError("\(path): expected yes|no<TAB>prompt[<TAB>note], got: \(line)")
            }
            labels[fields[1]] = fields[0] == "yes"
        }
        return labels
    }

    /// The model's name for the report: the external one, or the embedded server's GGUF file.
    public var modelName: String {
        var name = configuration.llm.baseURL == nil ? URL(fileURLWithPath: configuration.llmModelPath.path).lastPathComponent : configuration.llm.model
        if configuration.llm.baseURL == nil, let draft = configuration.llmDraftModelPath {
            name += " + draft " + draft.lastPathComponent
        }
        return name
    }

    /// Types every prompt into a fresh session and judges the replies.
    public func run(_ prompts: [Prompt]) async throws -> (Report, [Result]) {
        guard !prompts.isEmpty else { throw BenchmarkError("no prompts") }
        let judge = try makeJudge()
        let progress = self.progress
        let results = try await withBenchServer(configuration, waitForLLM: true) { port in
            var results: [Result] = []
            for (index, prompt) in prompts.enumerated() {
                let done = try await Self.converse(prompt.turns, port: port)
                guard let done else { throw BenchmarkError("no reply to prompt \(index + 1): \(prompt.text)") }
                let reply = done.event["text"] ?? ""
                let timings = Self.object(done.event["timings"])
                let rejected = done.event.strings("rejected")
                let verdict = judge.judge(reply: reply, turns: prompt.turns, emotion: prompt.emotion, expecting: prompt.expectation)
                results.append(Result(
                    emotion: prompt.emotion.rawValue, intensity: prompt.intensity, topic: prompt.topic, prompt: prompt.text,
                    expect: prompt.expectation?.rawValue, detected: done.detected, reply: reply, rejected: rejected,
                    verdict: verdict, firstTokenMs: timings["first_token_ms"], firstAudioMs: timings["first_audio_ms"],
                    answerAudioMs: timings["answer_audio_ms"], totalMs: timings["total_ms"], secondTryMs: timings["second_try_ms"]))
                let mark = verdict.acceptable ? "ok" : verdict.reasons.joined(separator: "; ")
                progress("\(index + 1)/\(prompts.count) [\(prompt.emotion.rawValue) → \(done.detected)] \(reply) — \(mark)")
            }
            return results
        }
        return (Report(model: modelName, results: results), results)
    }

    /// Judges the replies of an earlier run again (a `--details` file), e.g. after relabelling.
    public func rejudge(_ results: [Result], prompts: [Prompt]) throws -> (Report, [Result]) {
        let judge = try makeJudge()
        let byText = Dictionary(prompts.map { ($0.text, $0) }, uniquingKeysWith: { first, _ in first })
        let judged = results.map { result in
            var result = result
            let prompt = byText[result.prompt]
            let turns = prompt?.turns ?? result.prompt.components(separatedBy: Self.turnSeparator)
            let emotion = EmotionLabel(normalizing: result.emotion) ?? .neutral
            result.verdict = judge.judge(reply: result.reply, turns: turns, emotion: emotion, expecting: prompt?.expectation)
            return result
        }
        return (Report(model: "earlier run", results: judged), judged)
    }

    /// How the verdicts of `results` agree with hand `labels`, at the judge's threshold and others.
    public func agreement(_ results: [Result], labels: [String: Bool]) -> Agreement {
        let labelled = results.filter { labels[$0.prompt] != nil }
        func agree(_ threshold: Double) -> Double {
            let matches = labelled.filter { result in
                var verdict = result.verdict
                verdict.offTopic = verdict.relevance < threshold && !result.reply.isEmpty
                return verdict.acceptable == labels[result.prompt]
            }
            return (Double(matches.count) / Double(max(labelled.count, 1))).rounded(to: 3)
        }
        var byThreshold: [String: Double] = [:]
        for step in 0...10 {
            let threshold = Double(step) * 0.05
            byThreshold[String(format: "%.2f", threshold)] = agree(threshold)
        }
        return Agreement(
            labelled: labelled.count,
            agreement: (Double(labelled.filter { $0.verdict.acceptable == labels[$0.prompt] }.count) / Double(max(labelled.count, 1))).rounded(to: 3),
            falseRejections: labelled.filter { labels[$0.prompt] == true && !$0.verdict.acceptable }.map { "\($0.prompt) → \($0.reply) (\($0.verdict.reasons.joined(separator: "; ")))" },
            falseAcceptances: labelled.filter { labels[$0.prompt] == false && $0.verdict.acceptable }.map { "\($0.prompt) → \($0.reply)" },
            agreementByThreshold: byThreshold)
    }

    /// The judge, with the sentence encoder of the text emotion model's files and the texts the
    /// reply model is shown.
    func makeJudge() throws -> ReplyJudge {
        let model = try TextEmotionModel(models: URL(fileURLWithPath: configuration.modelsDirectory))
        let encoder = model.encoder, tokenizer = model.tokenizer
        return ReplyJudge(leakSources: Self.promptTexts(), relevanceThreshold: relevanceThreshold) { text in
            encoder.embed(tokenizer.encode(text), threads: 1)
        }
    }

    /// Every system prompt, few-shot example and note the reply model can be shown (each persona
    /// with the plan in each turn and in the prompt's start, each emotion at each intensity, a
    /// crisis, a trend line, the second try's note).
    static func promptTexts() -> [String] {
        var texts: Set<String> = []
        let builders = Persona.builtIn.flatMap { persona in
            [false, true].map { PromptBuilder(persona: persona, planInStart: $0) }
        }
        for builder in builders {
            for emotion in EmotionLabel.allCases {
                for confidence in [0.3, 0.6, 0.9] {
                    for (crisis, urgent) in [(false, false), (true, false), (false, true)] {
                        let plan = ReplyPlan(emotion: emotion, confidence: confidence, isCrisis: crisis, needsUrgentCare: urgent)
                        let context = EmotionContext(
                            current: EmotionEstimate(scores: [emotion: confidence], channel: .text, subject: "bench", time: 0), recent: [.neutral, emotion])
                        for message in builder.messages(for: "", plan: plan, emotion: context, history: []) where !message.content.isEmpty {
                            texts.insert(message.content)
                        }
                    }
                }
            }
        }
        // The second try's note (`reply.second_try_words`).
        texts.insert(ReplyPlan.secondTryNote)
        return texts.sorted()
    }

    /// Sends each turn once the previous reply is done; returns the last `reply_done` and the
    /// emotion the server detected for the last turn.
    static func converse(_ turns: [String], port: Int) async throws -> (event: ReceivedEvent, detected: String)? {
        var client = ConversationClient(port: port)
        client.trailingSilence = 0
        client.settleTimeout = .seconds(300)
        let events = try await client.stream([], before: [.text(ConversationClient.userText(turns[0]))]) { events in
            events.filter { $0.type == "reply_done" }.count >= turns.count
        } react: { event, events in
            guard event.type == "reply_done" else { return [] }
            let done = events.filter { $0.type == "reply_done" }.count
            return done < turns.count ? [.text(ConversationClient.userText(turns[done]))] : []
        }
        guard let done = events.last(where: { $0.type == "reply_done" }),
              events.filter({ $0.type == "reply_done" }).count == turns.count else { return nil }
        let detected = events.last { $0.type == "reply_started" }?["emotion"] ?? "?"
        return (done, detected)
    }

    static func object(_ json: String?) -> [String: Double] {
        guard let json, let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else { return [:] }
        return object.compactMapValues { ($0 as? NSNumber)?.doubleValue }
    }
}
