import AttuneAgent
import AttuneAudio
import AttuneCore
import AttuneConversation
import AttuneEmotion
import AttuneFace
import AttuneSpeech
import AttuneStorage
import AttuneVoice
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// Counts live sessions against a limit.
public final class SessionCounter: Sendable {
    public let limit: Int
    private let count = Mutex(0)

    init(limit: Int) {
        self.limit = limit
    }

    public var current: Int { count.withLock { $0 } }

    /// Takes a place, or returns false when all are taken.
    func claim() -> Bool {
        count.withLock { count in
            guard count < limit else { return false }
            count += 1
            return true
        }
    }

    func release() { count.withLock { $0 -= 1 } }
}

/// The native components the server loaded at start-up, and the workers that run them.
public struct ServerComponents: Sendable {
    /// What `/api/health` reports, in load order.
    public let statuses: [ComponentStatus]
    public let vadModel: URL
    public let vadSettings: VoiceActivitySettings
    /// Threads for uploads (decoding, their voice activity detection); blocking inference never
    /// runs on the cooperative pool.
    public let speechPool: InferencePool
    /// Threads for live sessions' voice activity detection, apart from uploads.
    public let listenPool: InferencePool
    /// Threads for emotion in text (API, transcripts, the reply guard).
    public let emotionPool: InferencePool
    /// Whisper on its own threads; nil when the model could not be loaded (health says why).
    public let transcriber: (any SpeechTranscribing)?
    public let decoder: AudioFileDecoder
    public let turn: TurnSettings
    /// Smart Turn, loaded when `turn.end_of_turn` is `smart_turn` (nil: turns end on silence).
    public let smartTurn: SmartTurnModel?
    public let stream: StreamSettings
    /// Emotion in words; nil when its model could not be loaded (health says why).
    public let textEmotion: TextEmotionModel?
    public let fusion: FusionSettings
    /// The language model replies come from; nil when none is configured or it failed to start.
    public let chat: (any ChatModel)?
    /// The managed llama-server, when no external LLM is configured.
    public let embeddedLLM: EmbeddedLLMServer?
    /// Speech out; nil when espeak-ng (and so every voice) is unavailable.
    public let synthesizer: (any SpeechSynthesizing)?
    public let synthesis: SynthesisSettings
    /// Conversation history (SQLite or PostgreSQL); nil when the store could not be opened
    /// (health says why).
    public let history: (any ConversationRepository)?
    /// Where conversations and rooms are kept; nil when it could not be opened.
    public let storage: OpenedStorage?
    /// Built-in personas and the custom one, if configured.
    public let personas: [Persona]
    public let reply: ReplySettings
    /// Who may connect, and how the server stops.
    public let server: ServerSettings
    /// Most sessions or turns one history request returns.
    public let historyMaxPage: Int
    /// The open rooms of `/ws/rooms`, and how they behave.
    public let rooms: RoomDirectory
    public let roomSettings: RoomSettings
    /// Stores rooms' joins, leaves and emotions in the history database; nil without it.
    public let roomRecorder: RoomRecorder?
    /// Checks join tokens when `rooms.token_secret` is set.
    public let roomAccess: (any RoomAccess)?
    /// Live WebSocket sessions now, against `stream.max_sessions`.
    public let sessions: SessionCounter
    /// Whether `/api/health` may show paths, process ids and ports (only at log level debug or trace).
    public let revealsInternals: Bool
    /// The voice emotion model (bundled, or `voice.model_path`), run on its own pool.
    public let voiceEmotion: VoiceEmotionModel?
    public let voicePool: InferencePool
    /// The face channel (RetinaFace and the expression model), run on its own pool; nil when a
    /// model could not be loaded (health says why).
    public let face: FaceAnalyzer?
    public let facePool: InferencePool
    public let faceSettings: FaceSettings
    /// The latest reading of `POST /api/process_frame`, for `GET /api/emotion`.
    let latestFrame = LatestFrame()
    /// How often the companion reads the voice of an utterance in progress (`voice.stream_seconds`).
    public let voiceStreamSeconds: Double
    /// Chunks of a companion session waiting for the voice before more are skipped (`voice.max_pending_chunks`).
    public let voicePending: Int
    /// The worker pools of the engines above (Whisper's, the synthesizer's), which the service
    /// group starts and stops; the engines themselves are seen only through their protocols.
    private let enginePools: [any Service]

    /// Long-lived parts that the application's service group starts and stops.
    public var services: [any Service] {
        var services: [any Service] = [speechPool, listenPool, emotionPool, voicePool, facePool] + enginePools
        if let embeddedLLM { services.append(embeddedLLM) }
        // The store starts before, and stops after, the recorder that writes to it.
        if let postgres = storage?.postgres { services.append(postgres) }
        if let roomRecorder { services.append(RoomRecorderService(recorder: roomRecorder)) }
        if let peers = storage?.peers { services.append(RoomRelayService(relay: RoomRelay(peers: peers, directory: rooms))) }
        return services
    }

    /// The statuses with the embedded llama-server's current state (it starts after the
    /// server, may die and be restarted) and whether the database answers.
    var liveStatuses: [ComponentStatus] {
        statuses.map { status in
            if status.name == "storage", status.loaded, case .unavailable(let reason) = storage?.availability {
                var live = status
                live.loaded = false
                live.error = "unavailable: " + reason
                return live
            }
            guard let embeddedLLM else { return status }
            guard status.name == "llm", status.loaded else { return status }
            var live = status
            switch embeddedLLM.currentState {
            case .ready(let milliseconds):
                live.loadMilliseconds = milliseconds
                live.detail = revealsInternals
                    ? "embedded llama-server pid \(embeddedLLM.processID.map(String.init) ?? "?") on port \(embeddedLLM.port), restarts \(embeddedLLM.restartCount)"
                    : "embedded llama-server, restarts \(embeddedLLM.restartCount)"
            case .starting:
                live.loaded = false
                live.error = "llama-server is starting"
            case .failed(let reason):
                live.loaded = false
                live.error = reason + " (restarting)"
            case .stopped:
                live.loaded = false
                live.error = "llama-server has stopped"
            }
            return live
        }
    }

    var llmUnavailableReason: String { reason(for: "llm") }
    var ttsUnavailableReason: String { reason(for: "tts") }

    private func reason(for component: String) -> String {
        guard let status = statuses.first(where: { $0.name == component }) else {
            return component == "llm" ? "no language model is configured (llm.base_url unset, llm.embedded false)" : "not loaded"
        }
        return status.error ?? "not loaded"
    }

    public var isHealthy: Bool { statuses.allSatisfy(\.loaded) }

    /// Loads every component, recording failures in the statuses rather than throwing, so the
    /// server still starts and reports what is missing.
    public static func load(configuration: AttuneConfiguration, logger: Logger) -> ServerComponents {
        let models = URL(fileURLWithPath: configuration.modelsDirectory)
        let manifest = ModelManifest(directory: models)
        let vadModel = models.appendingPathComponent("silero_vad.onnx")
        let vadSettings = VoiceActivitySettings()
        var statuses = NativeRuntime.componentStatuses()
        statuses.append(
            .measure("silero-vad", version: manifest.version(of: vadModel.lastPathComponent)) {
                _ = try SileroVoiceActivityDetector(model: vadModel, settings: vadSettings)
                return vadModel.lastPathComponent
            })

        let whisperPath = URL(fileURLWithPath: configuration.whisperModelPath)
        var whisper: WhisperModel?
        statuses.append(
            .measure("whisper-model", version: manifest.version(of: whisperPath.lastPathComponent)) {
                whisper = try WhisperModel(path: whisperPath)
                return "\(configuration.whisperModel): \(whisperPath.lastPathComponent)"
            })
        var smartTurn: SmartTurnModel?
        if configuration.turn.endOfTurn == .smartTurn {
            let path = URL(fileURLWithPath: configuration.smartTurnModelPath)
            statuses.append(
                .measure("smart-turn", version: manifest.version(of: path.lastPathComponent)) {
                    smartTurn = try SmartTurnModel(path: path)
                    return path.lastPathComponent
                })
        }
        var textEmotion: TextEmotionModel?
        statuses.append(
            .measure("text-emotion", version: manifest.version(of: "minilm.gguf")) {
                textEmotion = try TextEmotionModel(models: models, maxBytes: configuration.maxEmotionTextBytes)
                return "all-MiniLM-L6-v2 on ggml + trained head"
            })
        var voiceEmotion: VoiceEmotionModel?
        statuses.append(
            .measure("voice-emotion") {
                let model = try VoiceEmotionModel(path: configuration.voiceModelPath.map { URL(fileURLWithPath: $0) }, threads: configuration.voice.threads)
                voiceEmotion = model
                return "\(model.path.lastPathComponent) (\(model.input == .features ? "acoustic features" : "waveform") in)"
            })
        var face: FaceAnalyzer?
        statuses.append(
            .measure("face", version: manifest.version(of: "retinaface-mnet025.onnx")) {
                let analyzer = try configuration.face.analyzer(models: configuration.modelsDirectory)
                face = analyzer
                return "RetinaFace \(analyzer.detector.path.lastPathComponent) + \(analyzer.expression.path.lastPathComponent) (\(analyzer.framing.rawValue) framing)"
            })
        var storage: OpenedStorage?  // both the conversation and the room repository
        statuses.append(
            .measure("storage") {
                let location = try StorageLocation(url: configuration.storageURL ?? "sqlite:history.sqlite")
                storage = try OpenedStorage.open(
                    location, dataDirectory: DataDirectory(URL(fileURLWithPath: configuration.dataDirectory)),
                    settings: configuration.postgres, logger: Logger(label: "attune.storage"))
                return location.description
            })
        var synthesizer: SpeechSynthesizer?
        statuses.append(
            .measure("tts", version: manifest.version(of: "piper-en_US-joe-medium")) {
                let store = try SpeechSynthesizer(
                    piperDirectory: URL(fileURLWithPath: configuration.piperVoiceDirectory), settings: configuration.synthesis)
                synthesizer = store
                return "voices: " + store.voices.map(\.id).joined(separator: ", ")
            })
        var personas = Persona.builtIn
        if let path = configuration.customPersonaPath {
            statuses.append(
                .measure("persona") {
                    let persona = try Persona.load(from: URL(fileURLWithPath: path))
                    personas.removeAll { $0.id == persona.id }
                    personas.append(persona)
                    return "\(persona.id) from \(URL(fileURLWithPath: path).lastPathComponent)"
                })
        }
        var chat: (any ChatModel)?
        var embeddedLLM: EmbeddedLLMServer?
        if configuration.llm.baseURL != nil || configuration.llmEmbedded { statuses.append(
            .measure("llm", version: configuration.llm.baseURL == nil ? manifest.version(of: configuration.llmModelPath.lastPathComponent) : configuration.llm.model) {
                if let external = configuration.llm.baseURL {
                    chat = OpenAIChatClient(settings: configuration.llm)
                    return "external: \(external)"
                }
                var settings = EmbeddedLLMServer.Settings(
                    binary: configuration.llamaServerPath, model: configuration.llmModelPath)
                settings.threads = configuration.llmThreads
                settings.contextSize = configuration.llmContextSize
                settings.batchSize = configuration.llmBatchSize
                settings.draftModel = configuration.llmDraftModelPath
                settings.draftMax = configuration.llmDraftMax
                // Each persona's stable prompt start, read once at start so no first turn waits for it.
                settings.warmUpPrompts = personas.map { persona in
                    configuration.reply.promptBuilder(for: persona).context(history: [])
                }
                let server = try EmbeddedLLMServer(settings: settings, logger: logger)
                embeddedLLM = server
                var client = configuration.llm
                client.apiKey = server.apiKey
                client.timingsPerToken = true
                chat = OpenAIChatClient(settings: client, baseURL: server.baseURL)
                let draft = configuration.llmDraftModelPath.map { " with draft \($0.lastPathComponent)" } ?? ""
                return "embedded llama-server: \(configuration.llmModelPath.lastPathComponent)\(draft)"
            }) }
        let revealsInternals = configuration.logLevel <= .debug
        if !revealsInternals {
            // Errors name files; outside debug, health shows only their names (the log has the paths).
            statuses = statuses.map { $0.hidingPaths() }
        }
        for status in statuses {
            if status.loaded {
                logger.info("loaded \(status.name) \(status.version ?? "") in \(String(format: "%.1f", status.loadMilliseconds ?? 0)) ms")
            } else {
                logger.error("could not load \(status.name): \(status.error ?? "unknown error")")
            }
        }
        let roomRecorder = storage.map { RoomRecorder(repository: $0.rooms, keep: configuration.rooms.keepEmotions) }
        let transcriber = whisper.map { WhisperTranscriber(model: $0, settings: configuration.whisper) }
        let enginePools: [any Service] = [transcriber?.pool, synthesizer?.pool].compactMap { $0 }
        return ServerComponents(
            statuses: statuses,
            vadModel: vadModel,
            vadSettings: vadSettings,
            speechPool: InferencePool(
                name: "speech", workers: configuration.speechWorkers, maxQueued: configuration.speechQueueLimit),
            listenPool: InferencePool(
                name: "listen", workers: configuration.listenWorkers, maxQueued: configuration.listenQueueLimit),
            emotionPool: InferencePool(
                name: "emotion", workers: configuration.emotionWorkers, maxQueued: configuration.emotionQueueLimit),
            transcriber: transcriber,
            decoder: AudioFileDecoder(
                ffmpegPath: configuration.ffmpegPath ?? AudioFileDecoder.findFFmpeg(), limits: configuration.upload),
            turn: configuration.turn,
            smartTurn: smartTurn,
            stream: configuration.stream,
            textEmotion: textEmotion,
            fusion: configuration.fusion,
            chat: chat,
            embeddedLLM: embeddedLLM,
            synthesizer: synthesizer.map {
                SpokenPhrases(
                    $0, capacity: configuration.synthesis.cachedPhrases, maxCharacters: configuration.synthesis.cachedPhraseCharacters)
            },
            synthesis: configuration.synthesis,
            history: storage?.conversations,
            storage: storage,
            personas: personas,
            reply: configuration.reply,
            server: configuration.server,
            historyMaxPage: configuration.historyMaxPage,
            rooms: RoomDirectory(limits: configuration.rooms.limits, fusion: configuration.fusion, recorder: roomRecorder, peers: storage?.peers),
            roomSettings: configuration.rooms,
            roomRecorder: roomRecorder,
            roomAccess: configuration.rooms.tokenSecret.map { secret -> any RoomAccess in
                do {
                    return try RoomTokens(secret: secret)
                } catch {
                    logger.error("rooms are closed: \(error)")
                    return ClosedRooms(reason: "rooms are closed: the server's rooms.token_secret is unusable")
                }
            },
            sessions: SessionCounter(limit: configuration.stream.maxSessions),
            revealsInternals: revealsInternals,
            voiceEmotion: voiceEmotion,
            voicePool: InferencePool(name: "voice", workers: configuration.voice.workers, maxQueued: configuration.voice.queueLimit),
            face: face,
            facePool: InferencePool(name: "face", workers: configuration.face.workers, maxQueued: configuration.face.queueLimit),
            faceSettings: configuration.face,
            voiceStreamSeconds: configuration.voice.streamSeconds,
            voicePending: configuration.voice.maxPendingChunks,
            enginePools: enginePools
        )
    }

    /// Decodes an uploaded file on the speech threads and resamples it to 16 kHz mono.
    func decodeUpload(_ body: ByteBuffer) async throws -> AudioBuffer {
        guard body.readableBytes > 0 else {
            throw HTTPError(.badRequest, message: "empty body: send an audio file")
        }
        let data = Data(buffer: body)
        let decoder = self.decoder
        do {
            return try await speechPool.run {
                let audio = try decoder.decode(data)
                return try Resampler.resample(audio, to: VoiceActivitySettings.sampleRate)
            }
        } catch let error as AudioDecodingError {
            switch error.kind {
            case .unsupported: throw HTTPError(.unsupportedMediaType, message: "cannot decode audio: \(error)")
            case .tooLarge: throw HTTPError(.contentTooLarge, message: "audio refused: \(error)")
            }
        }
    }

    /// The text channel as an ``EmotionSensor`` (on the emotion threads), or nil without its model.
    var textSensor: (any EmotionSensor)? {
        textEmotion.map { TextEmotionSensor(model: $0, pool: emotionPool) }
    }

    /// The voice channel as an ``EmotionSensor`` (on the voice threads), or nil without its model.
    var voiceSensor: (any EmotionSensor)? {
        voiceEmotion.map { VoiceEmotionSensor(model: $0, pool: voicePool) }
    }

    /// The engines a participant's audio goes through, as the conversation core sees them; each
    /// track's listener cuts `chunkSeconds` chunks for the voice channel, when there is one.
    private func participantEngines(chunkSeconds: Double) -> ParticipantEngines {
        let (vadModel, turn, maxFrameBytes) = (self.vadModel, self.turn, stream.maxFrameBytes)
        let voiceSensor = self.voiceSensor
        let completion = smartTurn.map { model in { @Sendable (utterance: [Float]) in try? model.completion(utterance) } }
        return ParticipantEngines(
            makeListener: {
                try Listener(
                    vadModel: vadModel, turn: turn, maxFrameBytes: maxFrameBytes, chunkSeconds: voiceSensor == nil ? nil : chunkSeconds,
                    completion: completion)
            },
            listenPool: listenPool, transcriber: transcriber, textSensors: textSensor.map { [$0] } ?? [],
            speechSensors: voiceSensor.map { [$0] } ?? [])
    }

    /// The face channel (models, threads, frame rate), or nil without the face models.
    var faceChannel: FaceChannel? {
        face.map { FaceChannel(analyzer: $0, pool: facePool, maxFramesPerSecond: faceSettings.maxFramesPerSecond) }
    }

    /// What a companion session (`/ws/conversation`) works with.
    var companion: CompanionServices {
        var listening = ParticipantSettings()
        listening.partialInterval = stream.partialInterval
        listening.partialBackoff = stream.partialBackoff
        listening.maxPendingUtterances = stream.maxPendingTurns
        listening.maxRealtimeFactor = stream.maxRealtimeFactor
        listening.maxPendingSpeech = voicePending
        let (textEmotion, emotionPool) = (self.textEmotion, self.emotionPool)
        let replies = ResponderEngines(
            chat: chat, chatUnavailableReason: llmUnavailableReason, synthesizer: synthesizer,
            synthesizerUnavailableReason: ttsUnavailableReason, history: history,
            judge: { sentence in
                guard let textEmotion else { return nil }
                return try? await emotionPool.run { try textEmotion.estimate(sentence, subject: "reply") }
            })
        return CompanionServices(
            listening: participantEngines(chunkSeconds: voiceStreamSeconds), listeningSettings: listening, replies: replies,
            replySettings: ResponderSettings(personas: personas, synthesis: synthesis, reply: reply, maxPendingTurns: stream.maxPendingTurns),
            stream: stream, fusion: fusion,
            face: faceChannel)
    }

    /// What a rooms connection (`/ws/rooms`) works with.
    var roomServices: RoomServices {
        var listening = ParticipantSettings()
        listening.transcribe = roomSettings.transcribe
        listening.maxPendingUtterances = stream.maxPendingTurns
        listening.maxRealtimeFactor = stream.maxRealtimeFactor
        listening.maxPendingSpeech = roomSettings.maxPendingChunks
        return RoomServices(
            directory: rooms, access: roomAccess, listening: participantEngines(chunkSeconds: roomSettings.chunkSeconds),
            listeningSettings: listening, stream: stream,
            face: faceChannel)
    }

    /// The text emotion model, or a 503 that says why there is none.
    func requireTextEmotion() throws -> TextEmotionModel {
        guard let textEmotion else {
            let reason = statuses.first { $0.name == "text-emotion" }?.error ?? "not loaded"
            throw HTTPError(.serviceUnavailable, message: "text emotion is unavailable: \(reason)")
        }
        return textEmotion
    }

    /// The face channel, or a 503 that says why there is none.
    func requireFace() throws -> FaceChannel {
        guard let faceChannel else {
            throw HTTPError(.serviceUnavailable, message: "face emotion is unavailable: \(reason(for: "face"))")
        }
        return faceChannel
    }

    /// The transcriber, or a 503 that says why there is none.
    func requireTranscriber() throws -> any SpeechTranscribing {
        guard let transcriber else {
            let reason = statuses.first { $0.name == "whisper-model" }?.error ?? "not loaded"
            throw HTTPError(.serviceUnavailable, message: "speech recognition is unavailable: \(reason)")
        }
        return transcriber
    }
}

/// Shows the other instances' room changes in this instance's rooms while the server runs.
struct RoomRelayService: Service {
    let relay: RoomRelay

    func run() async throws {
        do {
            try await cancelWhenGracefulShutdown { try await relay.run() }
        } catch is CancellationError {
            // Shutting down: the relay stops listening, which is not a failure.
        }
    }
}

/// Writes rooms' joins, leaves and emotions to the store for as long as the server runs; on
/// shutdown, what is queued is written first.
struct RoomRecorderService: Service {
    let recorder: RoomRecorder

    func run() async throws {
        let logger = Logger(label: "attune.rooms")
        await withGracefulShutdownHandler {
            await recorder.run { logger.warning("could not store a room event: \($0)") }
        } onGracefulShutdown: {
            recorder.finish()
        }
    }
}
