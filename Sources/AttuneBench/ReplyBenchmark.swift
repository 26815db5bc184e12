import AttuneAgent
import AttuneCore
import AttuneEmotion
import AttuneServer
import Foundation

/// How well replies fit the person's feeling, and how fast they come: each prompt of a fixed
/// set is typed into a real session (embedded LLM, reply guard, Piper) and the reply judged.
///
/// A reply *mismatches* when one of its sentences fails the reply guard's test for the prompt's
/// labelled emotion: it contains a phrase the plan forbids for that emotion, the text emotion
/// model reads it as one of the plan's contradicting emotions with at least the guard's
/// threshold, or it narrates ("the person sounds…") or echoes the prompt instead of answering. The raw
/// rate counts replies in which the guard had to replace or drop a sentence of the model's
/// (judged against the *detected* emotion); the final rate judges what Attune actually said
/// against the *labelled* emotion, so misreadings of the prompt count too.
public struct ReplyBenchmark {
    public struct Prompt: Sendable {
        public let emotion: EmotionLabel
        public let intensity: String
        public let topic: String
        public let text: String
    }

    public struct Result: Encodable, Sendable {
        public let emotion: String
        public let intensity: String
        public let topic: String
        public let prompt: String
        public let detected: String
        public let reply: String
        public let rejected: [String]
        public let finalMismatch: Bool
        public let firstTokenMs: Double?
        public let firstAudioMs: Double?
        public let totalMs: Double?
    }

    public struct Report: Encodable, Sendable {
        public var prompts: Int
        public var detectionAccuracy: Double
        public var rawMismatchRate: Double
        public var replyMismatchRate: Double
        public var firstTokenMsP50: Double
        public var firstTokenMsP95: Double
        public var firstAudioMsP50: Double
        public var firstAudioMsP95: Double
        public var totalMsP50: Double

        enum CodingKeys: String, CodingKey {
            case prompts
            case detectionAccuracy = "detection_accuracy"
            case rawMismatchRate = "raw_mismatch_rate"
            case replyMismatchRate = "reply_mismatch_rate"
            case firstTokenMsP50 = "first_token_ms_p50"
            case firstTokenMsP95 = "first_token_ms_p95"
            case firstAudioMsP50 = "first_audio_ms_p50"
            case firstAudioMsP95 = "first_audio_ms_p95"
            case totalMsP50 = "total_ms_p50"
        }
    }

    public var configuration: AttuneConfiguration
    public var progress: @Sendable (String) -> Void

    public init(configuration: AttuneConfiguration, progress: @escaping @Sendable (String) -> Void) {
        self.configuration = configuration
        self.progress = progress
    }

    /// Reads `emotion<TAB>intensity<TAB>topic<TAB>text` lines; `#` starts a comment.
    public static func prompts(from path: String) throws -> [Prompt] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").compactMap { line in
            guard !line.hasPrefix("#"), !line.trimmingCharacters(in: .whitespaces).isEmpty else { return nil }
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 4, let emotion = EmotionLabel(normalizing: fields[0]) else {
                throw BenchmarkError("\(path): expected emotion<TAB>intensity<TAB>topic<TAB>text, got: \(line)")
            }
            return Prompt(emotion: emotion, intensity: fields[1], topic: fields[2], text: fields[3])
        }
    }

    public func run(_ prompts: [Prompt]) async throws -> (Report, [Result]) {
        guard !prompts.isEmpty else { throw BenchmarkError("no prompts") }
        let judge = try TextEmotionModel(models: URL(fileURLWithPath: configuration.modelsDirectory))
        let threshold = configuration.reply.mismatchThreshold
        let progress = self.progress
        let results = try await withBenchServer(configuration, waitForLLM: true) { port in
            var results: [Result] = []
            for (index, prompt) in prompts.enumerated() {
                var client = ConversationClient(port: port)
                client.trailingSilence = 0
                client.settleTimeout = .seconds(120)
                let events = try await client.stream([], before: [.text(ConversationClient.userText(prompt.text))]) { events in
                    events.contains { $0.type == "reply_done" }
                }
                guard let done = events.first(where: { $0.type == "reply_done" }) else {
                    throw BenchmarkError("no reply to prompt \(index + 1): \(events.map(\.type))")
                }
                let detected = events.first { $0.type == "reply_started" }?["emotion"] ?? "?"
                let reply = done["text"] ?? ""
                let timings = Self.object(done["timings"])
                let rejected = (try? JSONSerialization.jsonObject(with: Data((done["rejected"] ?? "[]").utf8))) as? [String] ?? []
                var labelled = ReplyGuard(plan: ReplyPlan(emotion: prompt.emotion, confidence: 0.8), threshold: threshold) { sentence in
                    try? judge.estimate(sentence, subject: "bench")
                }
                labelled.userText = prompt.text
                var mismatch = false
                for sentence in Self.sentences(reply) where await labelled.contradicts(sentence) { mismatch = true }
                results.append(Result(
                    emotion: prompt.emotion.rawValue, intensity: prompt.intensity, topic: prompt.topic, prompt: prompt.text,
                    detected: detected, reply: reply, rejected: rejected, finalMismatch: mismatch,
                    firstTokenMs: timings["first_token_ms"], firstAudioMs: timings["first_audio_ms"], totalMs: timings["total_ms"]))
                progress("\(index + 1)/\(prompts.count) [\(prompt.emotion.rawValue) → \(detected)] \(reply)")
            }
            return results
        }
        let count = Double(results.count)
        let report = Report(
            prompts: results.count,
            detectionAccuracy: Double(results.filter { $0.detected == $0.emotion }.count) / count,
            rawMismatchRate: Double(results.filter { !$0.rejected.isEmpty }.count) / count,
            replyMismatchRate: Double(results.filter(\.finalMismatch).count) / count,
            firstTokenMsP50: percentile(results.compactMap(\.firstTokenMs), 0.5),
            firstTokenMsP95: percentile(results.compactMap(\.firstTokenMs), 0.95),
            firstAudioMsP50: percentile(results.compactMap(\.firstAudioMs), 0.5),
            firstAudioMsP95: percentile(results.compactMap(\.firstAudioMs), 0.95),
            totalMsP50: percentile(results.compactMap(\.totalMs), 0.5))
        return (report, results)
    }

    static func object(_ json: String?) -> [String: Double] {
        guard let json, let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else { return [:] }
        return object.compactMapValues { ($0 as? NSNumber)?.doubleValue }
    }

    static func sentences(_ text: String) -> [String] {
        var stream = SentenceStream(minimumCharacters: 1)
        return stream.append(text + " ") + (stream.finish().map { [$0] } ?? [])
    }
}
