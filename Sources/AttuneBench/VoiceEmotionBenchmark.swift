import AttuneAudio
import AttuneConversation
import AttuneCore
import AttuneEmotion
import AttuneSpeech
import AttuneVoice
import Foundation

/// `attune bench emotion-voice`: how well the voice channel names the emotion of clips with
/// independent labels, how the fused estimate (voice with the text of what Whisper heard) and the
/// text alone do on the same clips, and the voice channel's time per clip on one thread.
///
/// Each clip is judged on its own (no speaker statistics carried between clips). Score a model on
/// actors it was not trained on: `make train-voice` also writes one trained on actors 01-08, for
/// `--actors 9-12`.
public struct VoiceEmotionBenchmark {
    public struct Clip: Sendable {
        public let path: String
        public let label: EmotionLabel
    }

    public struct Report: Encodable, Sendable {
        public var clips: Int
        public var accuracy: Double
        public var macroF1: Double
        public var fusedAccuracy: Double?
        public var fusedMacroF1: Double?
        public var textOnlyAccuracy: Double?
        public var msPerClipP50: Double
        public var msPerClipP95: Double
        public var meanClipSeconds: Double
        public var model: String
        public var perClass: [String: [String: Double]]?
        /// confusion[truth][predicted] of the voice channel, in ``EmotionLabel/allCases`` order.
        public var confusion: [[Int]]?
        public var fusedConfusion: [[Int]]?

        enum CodingKeys: String, CodingKey {
            case clips, accuracy, model, confusion
            case macroF1 = "macro_f1"
            case fusedAccuracy = "fused_accuracy"
            case fusedMacroF1 = "fused_macro_f1"
            case textOnlyAccuracy = "text_only_accuracy"
            case msPerClipP50 = "ms_per_clip_p50"
            case msPerClipP95 = "ms_per_clip_p95"
            case meanClipSeconds = "mean_clip_seconds"
            case perClass = "per_class"
            case fusedConfusion = "fused_confusion"
        }
    }

    /// What each clip gave, for `--dump` (and `scripts/train_fusion.py`, which learns the fusion
    /// weights from the text channel's probabilities here).
    public struct Row: Sendable {
        public let clip: Clip
        public let transcript: String?
        public let text: EmotionEstimate?
        public let voice: EmotionEstimate?
        public let fused: EmotionEstimate?

        public static let header = (["path", "label", "transcript"]
            + EmotionLabel.allCases.map { "text_\($0.rawValue)" } + EmotionLabel.allCases.map { "voice_\($0.rawValue)" })
            .joined(separator: "\t")

        public var line: String {
            func probabilities(_ estimate: EmotionEstimate?) -> [String] {
                EmotionLabel.allCases.map { label in estimate.map { String(format: "%.6f", $0.probabilities[label]!) } ?? "" }
            }
            let words = (transcript ?? "").replacingOccurrences(of: "\t", with: " ").replacingOccurrences(of: "\n", with: " ")
            return ([clip.path, clip.label.rawValue, words] + probabilities(text) + probabilities(voice)).joined(separator: "\t")
        }
    }

    public var voiceModel: VoiceEmotionModel
    /// Whisper and the text model, for the fused and text-only figures; nil skips them.
    public var text: (transcriber: WhisperTranscriber, model: TextEmotionModel)?
    public var fusion = FusionSettings()
    public var progress: @Sendable (String) -> Void

    public init(voiceModel: VoiceEmotionModel, text: (transcriber: WhisperTranscriber, model: TextEmotionModel)?,
                progress: @escaping @Sendable (String) -> Void) {
        self.voiceModel = voiceModel
        self.text = text
        self.progress = progress
    }

    /// RAVDESS emotion codes (the third field of a file name) in Attune's vocabulary; calm is neutral.
    public static let ravdessCodes: [String: EmotionLabel] = [
        "01": .neutral, "02": .neutral, "03": .joy, "04": .sadness, "05": .anger, "06": .fear, "07": .disgust, "08": .surprise,
    ]

    /// Label names a TSV may use: Attune's, and RAVDESS's words for them.
    static let labelNames: [String: EmotionLabel] = {
        var names = Dictionary(uniqueKeysWithValues: EmotionLabel.allCases.map { ($0.rawValue, $0) })
        for (word, label) in ["calm": EmotionLabel.neutral, "happy": .joy, "happiness": .joy, "sad": .sadness, "angry": .anger,
                              "fearful": .fear, "surprised": .surprise] {
            names[word] = label
        }
        return names
    }()

    /// The emotion and actor of a RAVDESS file name (`03-01-EE-II-SS-RR-AA.wav`), or nil.
    public static func ravdess(_ url: URL) -> (label: EmotionLabel, actor: Int)? {
        let parts = url.deletingPathExtension().lastPathComponent.split(separator: "-").map(String.init)
        guard parts.count == 7, let label = ravdessCodes[parts[2]], let actor = Int(parts[6]) else { return nil }
        return (label, actor)
    }

    /// Clips from a folder of RAVDESS-named WAV files (searched recursively; only `actors`, if
    /// given) or from a TSV of `path<TAB>label`.
    public static func clips(from location: String, actors: Set<Int>? = nil) throws -> [Clip] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: location, isDirectory: &isDirectory) else {
            throw BenchmarkError("no such file or folder: \(location)")
        }
        if !isDirectory.boolValue {
            let base = URL(fileURLWithPath: location).deletingLastPathComponent()
            return try String(contentsOfFile: location, encoding: .utf8).split(separator: "\n").enumerated().compactMap { number, line in
                let fields = line.split(separator: "\t").map { $0.trimmingCharacters(in: .whitespaces) }
                guard fields.count >= 2, !fields[0].hasPrefix("#") else { return nil }
                guard let label = labelNames[fields[1].lowercased()] else {
                    if number == 0 { return nil }  // a header row
                    throw BenchmarkError("\(location):\(number + 1): unknown label \(fields[1]); use one of \(EmotionLabel.allCases.map(\.rawValue))")
                }
                let path = fields[0].hasPrefix("/") ? fields[0] : base.appendingPathComponent(fields[0]).path
                return Clip(path: path, label: label)
            }
        }
        guard let walker = FileManager.default.enumerator(at: URL(fileURLWithPath: location), includingPropertiesForKeys: nil) else {
            throw BenchmarkError("cannot read \(location)")
        }
        return try walker.compactMap { $0 as? URL }.filter { $0.pathExtension.lowercased() == "wav" }.sorted { $0.path < $1.path }
            .compactMap { url in
                guard let (label, actor) = ravdess(url) else {
                    throw BenchmarkError("\(url.path) is not named like RAVDESS (03-01-EE-II-SS-RR-AA.wav)")
                }
                return actors.map { $0.contains(actor) } ?? true ? Clip(path: url.path, label: label) : nil
            }
    }

    public func run(clips: [Clip], dump: String? = nil, details: Bool = false) async throws -> Report {
        guard !clips.isEmpty else { throw BenchmarkError("no clips to measure") }
        let decoder = AudioFileDecoder()
        let clock = ContinuousClock()
        var voiceScores = ClassificationScores(), fusedScores = ClassificationScores(), textScores = ClassificationScores()
        var times: [Double] = []
        var seconds = 0.0
        var rows: [Row] = []
        for (index, clip) in clips.enumerated() {
            let samples = try Resampler.resample(try decoder.read(contentsOf: URL(fileURLWithPath: clip.path)), to: 16_000).samples
            seconds += Double(samples.count) / 16_000
            let started = clock.now
            let voice = try voiceModel.estimate(samples, subject: "bench", time: 0)
            times.append((clock.now - started).milliseconds)
            voiceScores.add(truth: clip.label, predicted: voice?.label ?? .neutral)

            var transcript: String?
            var textEstimate: EmotionEstimate?
            var fused: EmotionEstimate?
            if let text {
                let words = try await text.transcriber.transcribe(samples, pass: .final).text
                transcript = words
                textEstimate = try text.model.estimate(words, subject: "bench", time: 0)
                var fusion = EmotionFusion(subject: "bench", settings: fusion)
                for estimate in [textEstimate, voice].compactMap({ $0 }) { fused = fusion.fuse(estimate) }
                textScores.add(truth: clip.label, predicted: textEstimate?.label ?? .neutral)
                fusedScores.add(truth: clip.label, predicted: fused?.label ?? .neutral)
            }
            rows.append(Row(clip: clip, transcript: transcript, text: textEstimate, voice: voice, fused: fused))
            if (index + 1) % 50 == 0 { progress("\(index + 1)/\(clips.count) clips") }
        }
        if let text { try await text.transcriber.pool.shutdown() }
        if let dump {
            try ([Row.header] + rows.map(\.line)).joined(separator: "\n").appending("\n").write(toFile: dump, atomically: true, encoding: .utf8)
        }
        return Report(
            clips: clips.count, accuracy: voiceScores.accuracy, macroF1: voiceScores.macroF1,
            fusedAccuracy: text == nil ? nil : fusedScores.accuracy, fusedMacroF1: text == nil ? nil : fusedScores.macroF1,
            textOnlyAccuracy: text == nil ? nil : textScores.accuracy,
            msPerClipP50: percentile(times, 0.5), msPerClipP95: percentile(times, 0.95),
            meanClipSeconds: seconds / Double(clips.count), model: voiceModel.path.lastPathComponent,
            perClass: details ? voiceScores.perClass : nil, confusion: details ? voiceScores.confusion : nil,
            fusedConfusion: details && text != nil ? fusedScores.confusion : nil)
    }
}
