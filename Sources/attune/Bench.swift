import ArgumentParser
import AttuneCore
import AttuneBench
import AttuneConversation
import AttuneEmotion
import AttuneFace
import AttuneServer
import AttuneSpeech
import AttuneStorage
import AttuneVoice
import Foundation

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure Attune's components; each prints one JSON object.",
        subcommands: [
            SpeechToText.self, TextEmotion.self, VoiceEmotion.self, Face.self, Replies.self, Conversation.self, Turns.self, Rooms.self,
            Realtime.self,
        ]
    )

    struct SpeechToText: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "stt",
            abstract: "Word error rate, real-time factor and end-of-turn latency of speech recognition."
        )

        @Option(help: "Folder of RAVDESS-named WAV files, or a TSV manifest of path<TAB>reference.")
        var data: String
        @Option(help: "Whisper model: tiny.en-q8_0, tiny.en, base, ... or a path.") var model = AttuneConfiguration().whisperModel
        @Option(help: "How many clips to also stream in real time over the WebSocket for latency.")
        var streamed = 40
        @Option(help: "Use only the first N clips (0: all).") var limit = 0
        @Flag(help: "Print the report as JSON (the default; kept for scripts).") var json = false

        func run() async throws {
            var configuration = AttuneConfiguration()
            configuration.whisperModel = model
            var clips = try SpeechBenchmark.clips(from: data)
            if limit > 0 { clips = Array(clips.prefix(limit)) }
            // Spread the streamed sessions over speakers and emotions rather than taking one actor.
            let step = max(1, clips.count / max(streamed, 1))
            let ordered = stride(from: 0, to: clips.count, by: step).map { clips[$0] }.prefix(streamed)
                + clips.enumerated().filter { $0.offset % step != 0 || $0.offset / step >= streamed }.map(\.element)
            let benchmark = SpeechBenchmark(configuration: configuration, streamedSessions: streamed) { message in
                FileHandle.standardError.write(Data("[bench stt] \(message)\n".utf8))
            }
            let report = try await benchmark.run(clips: Array(ordered))
            try printReport(report)
        }
    }

    struct TextEmotion: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "emotion-text",
            abstract: "Accuracy, macro-F1 and latency of the text emotion model on a GoEmotions-style TSV."
        )

        @Option(help: "TSV of text<TAB>label ids<TAB>id; rows with one label are scored.") var data: String
        @Option(help: "Use only the first N scored rows (0: all).") var limit = 0
        @Option(help: "Threads per text.") var threads = 1
        @Flag(help: "Print the report as JSON (the default; kept for scripts).") var json = false

        func run() throws {
            let model = try TextEmotionModel(
                models: URL(fileURLWithPath: AttuneConfiguration().modelsDirectory), threads: threads)
            let report = try TextEmotionBenchmark(model: model).run(data: data, limit: limit)
            try printReport(report)
        }
    }

    struct VoiceEmotion: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "emotion-voice",
            abstract: "Accuracy and macro-F1 of the voice channel, fused and text-only accuracy, and ms per clip, on labelled clips."
        )

        @Option(help: "Folder of RAVDESS-named WAV files (actor subfolders), or a TSV of path<TAB>label.") var data: String
        @Option(help: "Only these RAVDESS actors, e.g. 9-12 or 1,3,5 (default: all).") var actors: String?
        @Option(help: "Voice emotion model: an ONNX file, or whisper or features (default: voice.builtin, whisper).") var voiceModel: String?
        @Option(help: "Fusion weights file (default: the bundled one; `equal` for equal weights).") var fusionWeights: String?
        @Option(help: "Whisper model for the text channel: tiny.en-q8_0, tiny.en, base, ... or a path.") var whisperModel = AttuneConfiguration().whisperModel
        @Flag(help: "Skip the text channel (no Whisper): voice figures only.") var noText = false
        @Option(help: "Use only the first N clips (0: all).") var limit = 0
        @Option(help: "Write each clip's transcript and text and voice probabilities to this TSV.") var dump: String?
        @Flag(help: "Add per-class figures and confusion matrices.") var details = false
        @Flag(help: "Print the report as JSON (the default; kept for scripts).") var json = false

        func run() async throws {
            var clips = try VoiceEmotionBenchmark.clips(from: data, actors: try actors.map(Self.parseActors))
            if limit > 0 { clips = Array(clips.prefix(limit)) }
            var configuration = AttuneConfiguration()
            configuration.whisperModel = whisperModel
            var voiceSettings = configuration
            if let voiceModel {
                if let builtIn = VoiceSettings.Model(rawValue: voiceModel) { voiceSettings.voice.model = builtIn } else { voiceSettings.voice.modelPath = voiceModel }
            }
            let voice = try VoiceEmotionModel(path: voiceSettings.voiceModelPath.map { URL(fileURLWithPath: $0) }, threads: 1)
            let text = noText ? nil : (
                transcriber: WhisperTranscriber(
                    model: try WhisperModel(path: URL(fileURLWithPath: configuration.whisperModelPath)), settings: configuration.whisper),
                model: try TextEmotionModel(models: URL(fileURLWithPath: configuration.modelsDirectory)))
            var benchmark = VoiceEmotionBenchmark(voiceModel: voice, text: text) { message in
                FileHandle.standardError.write(Data("[bench emotion-voice] \(message)\n".utf8))
            }
            switch fusionWeights {
            case nil: break
            case "equal"?: benchmark.fusion.weights = .equal
            case let path?: benchmark.fusion.weights = try FusionWeights(contentsOf: URL(fileURLWithPath: path))
            }
            let report = try await benchmark.run(clips: clips, dump: dump, details: details)
            try printReport(report)
        }

        /// "9-12" or "1,3,5" (or both: "1-3,7").
        static func parseActors(_ text: String) throws -> Set<Int> {
            var actors = Set<Int>()
            for part in text.split(separator: ",") {
                let bounds = part.split(separator: "-").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
                guard (1...2).contains(bounds.count), bounds.count == part.split(separator: "-").count, bounds[0] <= bounds.last! else {
                    throw ValidationError("--actors: cannot read \(part); write e.g. 9-12 or 1,3,5")
                }
                actors.formUnion(bounds[0]...bounds.last!)
            }
            return actors
        }
    }

    struct Face: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The face channel: expression accuracy on labelled crops, and detection rate and speed on camera frames.",
            discussion: """
                --data: a folder of class subfolders of face crops (FER2013's layout); prints images, accuracy, macro_f1,
                classify_ms_p50. --frames: camera frames (JPEG/PNG, class subfolders optional) through detection; prints
                frames, face_found_rate, frame_ms_p50, frame_ms_p95 (and accuracy when labelled). --make-frames OUT with
                --data writes 640x480 JPEG frames built from the crops.
                """
        )

        @Option(help: "Folder of class subfolders of face crops.") var data: String?
        @Option(help: "Folder of camera frames to run through detection.") var frames: String?
        @Option(help: "With --data: write 640x480 frames built from the crops to this folder and stop.") var makeFrames: String?
        @Option(help: "Use only the first N images of each class (0: all).") var limit = 0
        @Option(help: "Face expression model (default: face.model_path, or the bundled one).") var faceModel: String?
        @Option(help: "Threads per model run.") var threads = 1
        @Option(help: "How faces are cut out: box or landmarks (default: face.framing).") var framing: String?
        @Flag(help: "Add per-class figures.") var details = false
        @Flag(help: "Print the report as JSON (the default; kept for scripts).") var json = false

        func validate() throws {
            guard data != nil || frames != nil else { throw ValidationError("give --data, --frames or both") }
            if makeFrames != nil && data == nil { throw ValidationError("--make-frames needs --data") }
        }

        func run() throws {
            let configuration = try AttuneConfiguration.load(environment: ProcessInfo.processInfo.environment)
            let progress = { (message: String) in FileHandle.standardError.write(Data("[bench face] \(message)\n".utf8)) }
            if let makeFrames, let data {
                let count = try FaceBenchmark.makeFrames(from: try FaceBenchmark.images(in: data, limitPerClass: limit), to: makeFrames)
                progress("wrote \(count) frames to \(makeFrames)")
                return
            }
            var faceSettings = configuration.face
            if let faceModel { faceSettings.modelPath = faceModel }
            if let framing {
                guard let chosen = FaceAnalyzer.Framing(rawValue: framing) else { throw ValidationError("--framing: box or landmarks") }
                faceSettings.framing = chosen
            }
            let analyzer = try faceSettings.analyzer(models: configuration.modelsDirectory, threads: threads)
            let benchmark = FaceBenchmark(analyzer: analyzer, progress: progress)
            var report: [String: JSONValue] = [:]
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            if let data {
                let crops = try benchmark.runCrops(try FaceBenchmark.images(in: data, limitPerClass: limit), details: details)
                report.merge(try JSONDecoder().decode([String: JSONValue].self, from: encoder.encode(crops))) { $1 }
            }
            if let frames {
                let measured = try benchmark.runFrames(try FaceBenchmark.images(in: frames, limitPerClass: limit))
                var fields = try JSONDecoder().decode([String: JSONValue].self, from: encoder.encode(measured))
                // Beside crop figures, the frames' accuracy keeps its own name.
                if data != nil, let accuracy = fields.removeValue(forKey: "accuracy") { fields["frame_accuracy"] = accuracy }
                report.merge(fields) { $1 }
            }
            try printReport(report)
        }
    }

    struct Replies: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Whether replies to a fixed set of emotional prompts are acceptable, judged by checks apart from the reply path, and how fast they come.",
            discussion: """
                Prints {model, prompts, acceptable_rate, refusal_rate, leak_rate, echo_rate, wrong_role_rate, \
                non_answer_rate, wrong_emotion_rate, off_topic_rate, missing_help_rate, guard_repair_rate, \
                detection_accuracy, first_token_ms_p50, first_audio_ms_p50, ...}. The model and sampling are the \
                server's settings: ATTUNE_* variables or --set key=value (e.g. --set llm.model_file=FILE).
                """
        )

        @Option(help: "TSV of emotion<TAB>intensity<TAB>topic<TAB>text[<TAB>care|crisis]; ' || ' separates turns.")
        var prompts = "bench/emotional-prompts.tsv"
        @Option(help: "Also write every prompt with its reply and each check's verdict to this JSON file.") var details: String?
        @Option(help: "Judge the replies of an earlier --details file instead of asking the model.") var replies: String?
        @Option(help: "Hand labels (yes|no<TAB>prompt[<TAB>note]): also print how often the verdicts agree with them.")
        var labels: String?
        @Option(help: "Relevance below which a reply is off topic.") var relevanceThreshold = ReplyBenchmark.defaultRelevanceThreshold
        @Option(name: .customLong("set"), help: "A server setting key=value (repeatable).") var settings: [String] = []
        @Flag(help: "Print the report as JSON (the default; kept for scripts).") var json = false

        func run() async throws {
            let configuration = try serverSettings(settings)
            var benchmark = ReplyBenchmark(configuration: configuration) { message in
                FileHandle.standardError.write(Data("[bench replies] \(message)\n".utf8))
            }
            benchmark.relevanceThreshold = relevanceThreshold
            let prompts = try ReplyBenchmark.prompts(from: prompts)
            let (report, results): (ReplyBenchmark.Report, [ReplyBenchmark.Result])
            if let replies {
                let earlier = try JSONDecoder().decode([ReplyBenchmark.Result].self, from: Data(contentsOf: URL(fileURLWithPath: replies)))
                (report, results) = try benchmark.rejudge(earlier, prompts: prompts)
            } else {
                (report, results) = try await benchmark.run(prompts)
            }
            let encoder = JSONEncoder()
            if let details {
                encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
                try encoder.encode(results).write(to: URL(fileURLWithPath: details))
            }
            encoder.outputFormatting = [.sortedKeys]
            try printReport(report)
            if let labels {
                let agreement = benchmark.agreement(results, labels: try ReplyBenchmark.labels(from: labels))
                print(String(decoding: try encoder.encode(agreement), as: UTF8.self))
            }
        }
    }

    struct Conversation: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Voice-to-voice latency, first token, TTS speed, barge-in and reply fit of whole spoken turns."
        )

        @Option(help: "Folder of RAVDESS-named WAV files, or a TSV manifest of path<TAB>reference.") var data: String
        @Option(help: "Use this many utterances, spread over the folder.") var turns = 24
        @Option(help: "Interrupt every Nth reply (0: never).") var bargeInEvery = 4
        @Option(help: "Pause lengths put into cut utterances, in ms, comma-separated ('none': whole utterances only).")
        var pauses = "250,500,750,1000"
        @Option(help: "Speak this many whole utterances in each session, each after the reply to the one before (later_* figures).")
        var turnsPerSession = 1
        @Option(name: .customLong("set"), help: "A server setting key=value (repeatable).") var settings: [String] = []
        @Flag(help: "Print the report as JSON (the default; kept for scripts).") var json = false

        func run() async throws {
            guard turnsPerSession >= 1 else { throw ValidationError("--turns-per-session must be at least 1") }
            let chosen = SpeechBenchmark.spread(try SpeechBenchmark.clips(from: data), count: turns)
            // The server's settings come from ATTUNE_* variables, as for `attune serve`, and --set.
            let configuration = try serverSettings(settings)
            var benchmark = ConversationBenchmark(configuration: configuration) { message in
                FileHandle.standardError.write(Data("[bench conversation] \(message)\n".utf8))
            }
            benchmark.bargeInEvery = bargeInEvery
            benchmark.turnSettings.pausesMs = try parsePauses(pauses)
            benchmark.turnsPerSession = turnsPerSession
            let report = try await benchmark.run(clips: chosen)
            try printReport(report)
        }
    }

    struct Turns: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "How soon the turn is taken after a finished sentence, and how often a mid-sentence pause is taken for the end.",
            discussion: """
                Utterances cut at a word boundary (Whisper's aligned word timings) with a pause put in, and whole \
                utterances, each followed by silence, go through the session's turn detector in 20 ms frames. Prints \
                {turns, end_of_turn_ms_p50, end_of_turn_ms_p95, false_cut_rate, false_cut_rate_by_pause_ms, \
                missed_end_rate, ...}. The turn settings are the server's: ATTUNE_* variables or --set key=value \
                (e.g. --set turn.end_of_turn=smart_turn). With --complete-texts, also the share of those finished \
                messages whose last words turn.hold_unfinished would take for an unfinished sentence (each would wait \
                turn.unfinished_silence_ms instead of turn.silence_ms).
                """
        )

        @Option(help: "Folder of RAVDESS-named WAV files, or a TSV manifest of path<TAB>reference.") var data: String
        @Option(help: "Use this many utterances, spread over the folder (0: all).") var turns = 240
        @Option(help: "Pause lengths put into cut utterances, in ms, comma-separated.") var pauses = "250,500,750,1000"
        @Option(help: "Noise under the stream, in dB below the speech ('none': digital silence).") var snrDb = "35"
        @Option(help: "Also write each stream's outcome to this JSON file.") var details: String?
        @Option(help: "Write the audio of every pause offered to this folder (for scripts/pause_pitch.py).") var pauseAudio: String?
        @Option(help: "A TSV of finished messages ('#' lines skipped): how many would be held as unfinished.") var completeTexts: String?
        @Option(help: "The column of --complete-texts holding the text, from 1.") var textColumn = 1
        @Option(name: .customLong("set"), help: "A server setting key=value (repeatable).") var settings: [String] = []
        @Flag(help: "Print the report as JSON (the default; kept for scripts).") var json = false

        func run() async throws {
            let configuration = try serverSettings(settings)
            let texts = try completeTexts.map { path in
                try TabSeparated.rows(ofFile: path).compactMap { $0.fields.count >= textColumn ? $0.fields[textColumn - 1] : nil }
            }
            var benchmarkSettings = TurnBenchmark.Settings()
            benchmarkSettings.pausesMs = try parsePauses(pauses)
            if snrDb == "none" {
                benchmarkSettings.snrDB = nil
            } else {
                guard let value = Double(snrDb), value.isFinite else { throw ValidationError("--snr-db: a number of dB, or none") }
                benchmarkSettings.snrDB = value
            }
            benchmarkSettings.leaveRoom(for: configuration.turn)
            if let pauseAudio {
                let folder = URL(fileURLWithPath: pauseAudio)
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                benchmarkSettings.pauseAudioDirectory = folder
            }
            let benchmark = TurnBenchmark(settings: benchmarkSettings) { message in
                FileHandle.standardError.write(Data("[bench turns] \(message)\n".utf8))
            }
            let chosen = SpeechBenchmark.spread(try SpeechBenchmark.clips(from: data), count: turns)
            var (report, outcomes) = try await benchmark.run(clips: chosen, configuration: configuration)
            if let texts {
                report.completeTexts = texts.count
                report.completeTextsHeldRate = TurnBenchmark.heldShare(of: texts)
            }
            if let details {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
                try encoder.encode(outcomes).write(to: URL(fileURLWithPath: details))
            }
            try printReport(report)
        }
    }

    struct Realtime: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The real-time figures of this machine, each beside its target, from samples of stt, emotion-text, turns, conversation and replies.",
            discussion: """
                Prints {stt_rtf, final_transcript_ms_p50, text_emotion_ms_p50, end_of_turn_ms_p50, turn_false_cut_rate, \
                voice_to_voice_ms_p50, voice_to_voice_ms_p95, false_cut_rate, first_token_ms_p50, \
                typed_to_first_audio_ms_p50, targets, met, cpu}. The server's settings apply: ATTUNE_* variables or \
                --set key=value. The benchmarks run one after another on an otherwise idle machine.
                """
        )

        @Option(help: "Folder of RAVDESS-named WAV files, or a TSV manifest of path<TAB>reference.")
        var data = "../shared/data/speech/ravdess-16k"
        @Option(help: "GoEmotions-style TSV for the text emotion timing.") var texts = "../shared/data/text/goemotions-ekman/dev.tsv"
        @Option(help: "Prompt TSV for the typed prompts.") var prompts = "bench/emotional-prompts.tsv"
        @Option(help: "Clips transcribed (bench stt).") var clips = RealtimeBenchmark.Sizes().clips
        @Option(help: "Streams through the turn detector (bench turns).") var turns = RealtimeBenchmark.Sizes().turns
        @Option(help: "Spoken sessions (bench conversation).") var conversations = RealtimeBenchmark.Sizes().conversations
        @Option(name: .customLong("set"), help: "A server setting key=value (repeatable).") var settings: [String] = []
        @Flag(help: "Print the report as JSON (the default; kept for scripts).") var json = false

        func run() async throws {
            var benchmark = RealtimeBenchmark(configuration: try serverSettings(settings)) { message in
                FileHandle.standardError.write(Data("[bench realtime] \(message)\n".utf8))
            }
            benchmark.sizes.clips = clips
            benchmark.sizes.streamedClips = min(benchmark.sizes.streamedClips, clips)
            benchmark.sizes.turns = turns
            benchmark.sizes.conversations = conversations
            try printReport(try await benchmark.run(data: .init(speech: data, texts: texts, prompts: prompts)))
        }
    }

    struct Rooms: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Participants streaming speech into rooms in real time: chunk-to-broadcast latency, drops and memory."
        )

        @Option(help: "Folder of RAVDESS-named WAV files, or a TSV manifest of path<TAB>reference.") var data: String
        @Option(help: "Participants streaming at once (with --find-max: the first load tried).") var participants = 16
        @Option(help: "Participants per room.") var roomSize = 4
        @Option(help: "Seconds of speech each participant streams.") var seconds = 30.0
        @Option(help: "Seconds of audio per binary frame.") var chunkSeconds = 0.1
        @Flag(help: "Raise the load a room at a time until p95 passes --budget-ms or chunks drop.") var findMax = false
        @Option(help: "The real-time budget for --find-max, in milliseconds.") var budgetMs = 200.0
        @Option(help: "The largest load --find-max tries.") var maxParticipants = 64
        @Option(help: "Servers run at once, participants spread over them round robin (more than one needs --storage postgres://…).")
        var instances = 1
        @Option(help: "storage.url of the servers: sqlite:PATH or postgres://user:password@host:port/database (shared by the instances).")
        var storage: String?
        @Flag(help: "Print the report as JSON (the default; kept for scripts).") var json = false

        func run() async throws {
            // ATTUNE_* variables apply, to measure other settings (ATTUNE_WHISPER_PARALLEL=2 …).
            var settings = try AttuneConfiguration.load(environment: ProcessInfo.processInfo.environment)
            if let storage {
                _ = try StorageLocation(url: storage)
                settings.storageURL = storage
            }
            guard instances >= 1 else { throw ValidationError("--instances must be at least 1") }
            var benchmark = RoomsBenchmark(configuration: settings) { message in
                FileHandle.standardError.write(Data("[bench rooms] \(message)\n".utf8))
            }
            benchmark.roomSize = roomSize
            benchmark.seconds = seconds
            benchmark.chunkSeconds = chunkSeconds
            benchmark.instances = instances
            let audios = try RoomsBenchmark.audios(try SpeechBenchmark.clips(from: data))
            if findMax {
                let search = try await benchmark.findMax(audios: audios, start: participants, limit: maxParticipants, budgetMs: budgetMs)
                try printReport(search)
            } else {
                try printReport(try await benchmark.run(participants: participants, audios: audios))
            }
        }
    }
}

/// `--pauses 250,500` (milliseconds), or `none`.
func parsePauses(_ text: String) throws -> [Int] {
    guard text != "none" else { return [] }
    return try text.split(separator: ",").map {
        guard let value = Int($0.trimmingCharacters(in: .whitespaces)), value > 0 else {
            throw ValidationError("--pauses: \($0) is not a positive number of milliseconds")
        }
        return value
    }
}

/// The server's settings as `attune serve` reads them (ATTUNE_* variables), with `key=value`
/// overrides from `--set`.
func serverSettings(_ pairs: [String]) throws -> AttuneConfiguration {
    var overrides: [String: String] = [:]
    for pair in pairs {
        guard let equals = pair.firstIndex(of: "=") else { throw ValidationError("--set expects key=value, got '\(pair)'") }
        overrides[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
    }
    do {
        return try AttuneConfiguration.load(environment: ProcessInfo.processInfo.environment, overrides: overrides)
    } catch let error as ConfigurationError {
        throw ValidationError(error.description)
    }
}

/// Prints a benchmark's report as one JSON line with the CPU it ran on (`cpu`), so that every
/// recorded figure says which kind of machine made it.
func printReport(_ report: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    var object = try JSONSerialization.jsonObject(with: encoder.encode(report)) as? [String: Any] ?? [:]
    object["cpu"] = try JSONSerialization.jsonObject(with: encoder.encode(CPUInfo.current))
    print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
}
