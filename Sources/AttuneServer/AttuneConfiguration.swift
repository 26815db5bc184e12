import AttuneAgent
import AttuneAudio
import AttuneConversation
import AttuneFace
import AttuneEmotion
import AttuneSpeech
import AttuneStorage
import Foundation
import Logging

/// Everything `attune serve` can be told, with defaults that work offline on one machine.
///
/// Values come from four layers, later ones winning: these defaults, an optional JSON file
/// (`--config` or `ATTUNE_CONFIG`), environment variables (`ATTUNE_` + the key in upper case,
/// dots as underscores), and command-line flags. ``settings`` lists every key.
public struct AttuneConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    /// Largest request body accepted, in bytes.
    public var maxRequestBodyBytes = 25 * 1024 * 1024
    /// Folder of the web UI; nil serves the copy bundled with the server.
    public var publicDirectory: String?
    /// Where `scripts/setup.py` put the model weights.
    public var modelsDirectory = AttuneConfiguration.defaultCacheDirectory + "/models"
    /// Where Attune keeps its own state.
    public var dataDirectory = AttuneConfiguration.defaultDataDirectory
    public var logLevel = Logger.Level.info
    /// Threads that decode and analyse uploaded files, and how many jobs may wait for them.
    public var speechWorkers = 2
    public var speechQueueLimit = 16
    /// Threads that run live sessions' voice activity detection, apart from uploads, so that
    /// HTTP load cannot starve a conversation.
    public var listenWorkers = 2
    public var listenQueueLimit = 64
    /// Threads that read emotion in text (API requests, transcripts, the reply guard).
    public var emotionWorkers = 1
    public var emotionQueueLimit = 32
    /// Whisper model: a name (`tiny.en`, `base`, `tiny.en-q8_0`, ...: `ggml-NAME.bin` in the
    /// models folder) or a path. q8_0 is the default: the same word error rate as float16 on
    /// RAVDESS, faster and smaller (BENCHMARKS.md).
    public var whisperModel = "tiny.en-q8_0"
    public var whisper = WhisperSettings()
    public var turn = TurnSettings()
    public var stream = StreamSettings()
    /// Limits on uploaded recordings (duration, channels, sample rates, ffmpeg's time).
    public var upload = UploadLimits()
    /// The ffmpeg used for WebM and M4A uploads; nil looks on the PATH.
    public var ffmpegPath: String?
    /// Who may talk to the server, and how it shuts down.
    public var server = ServerSettings()
    /// Longest text read for emotion, in UTF-8 bytes.
    public var maxEmotionTextBytes = 20_000
    public var fusion = FusionSettings()
    public var synthesis = SynthesisSettings()
    /// The LLM: `llm.base_url` set means an external OpenAI-compatible server; unset starts the
    /// embedded llama-server.
    public var llm = LLMSettings()
    /// Start the embedded llama-server when no `llm.base_url` is set; false runs without an LLM
    /// (each reply is then the spoken apology).
    public var llmEmbedded = true
    /// The embedded llama-server's binary, model, threads and context size.
    public var llamaServer: String?
    /// The 1.5B: replies a listener accepts far more often than the 0.5B's, a second slower on
    /// two cores (BENCHMARKS.md, "Replies a person would accept").
    public var llmModel = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
    /// A smaller GGUF of the same tokenizer that drafts tokens for `llmModel` (speculative
    /// decoding); nil: none.
    public var llmDraftModel: String?
    /// Most tokens the draft model proposes at a time.
    public var llmDraftMax = 8
    public var llmThreads = 2
    public var llmContextSize = 4096
    /// Prompt tokens the embedded llama-server reads per step (`--batch-size`, `--ubatch-size`).
    public var llmBatchSize = EmbeddedLLMServer.Settings.defaultBatchSize
    /// A JSON file `{"id","name","instructions"}` adding a custom persona.
    public var customPersonaPath: String?
    public var reply = ReplySettings()
    /// Most sessions or turns one history request returns.
    public var historyMaxPage = 1_000
    /// Rooms of several participants (`/ws/rooms`).
    public var rooms = RoomSettings()
    /// Where conversations and rooms are kept (`storage.url`): nil is `history.sqlite` in the
    /// data folder; `postgres://...` shares a PostgreSQL server with other instances.
    public var storageURL: String?
    /// Timeouts, heartbeats and limits of a PostgreSQL store.
    public var postgres = PostgresSettings()
    /// The voice emotion model.
    public var voice = VoiceSettings()
    /// The face channel: frames, detection and the expression model.
    public var face = FaceSettings()
    /// The Socket.IO video API at `/socket.io/`.
    public var socketIO = SocketIOSettings()
    /// `POST /api/converse` and the reply audio it keeps.
    public var converse = ConverseSettings()

    public init() {}

    public var llamaServerPath: URL {
        URL(fileURLWithPath: llamaServer ?? AttuneConfiguration.defaultCacheDirectory + "/llama/bin/llama-server")
    }

    public var llmModelPath: URL { modelFile(llmModel) }

    public var llmDraftModelPath: URL? { llmDraftModel.map(modelFile) }

    /// A file in the models folder, or a path.
    func modelFile(_ name: String) -> URL {
        URL(fileURLWithPath: name.contains("/") ? name : modelsDirectory + "/" + name)
    }

    /// The Piper voice folder (setup writes `piper-en_US-joe-medium` in the models folder).
    public var piperDirectory: String?
    public var piperVoiceDirectory: String { piperDirectory ?? modelsDirectory + "/piper-en_US-joe-medium" }
    /// The voice emotion model to load: `voice.model_path`, or the file of `voice.builtin` (nil: the
    /// bundled feature model).
    public var voiceModelPath: String? {
        if let path = voice.modelPath { return path }
        switch voice.model {
        case .whisper: return modelsDirectory + "/voice-emotion-whisper.onnx"
        case .features: return nil
        }
    }

    /// The whisper.cpp model file this configuration names.
    public var whisperModelPath: String {
        whisperModel.contains("/") ? whisperModel : modelsDirectory + "/ggml-\(whisperModel).bin"
    }

    /// Smart Turn's model file (setup puts it in the models folder).
    public var smartTurnModelPath: String { modelsDirectory + "/smart-turn-v3.2-cpu.onnx" }

    public static var defaultCacheDirectory: String {
        let environment = ProcessInfo.processInfo.environment
        return environment["ATTUNE_CACHE"] ?? NSHomeDirectory() + "/.cache/attune"
    }

    public static var defaultDataDirectory: String {
        let environment = ProcessInfo.processInfo.environment
        let base = environment["XDG_DATA_HOME"] ?? NSHomeDirectory() + "/.local/share"
        return base + "/attune"
    }
}

// MARK: - Settings table

extension AttuneConfiguration {
    /// One configurable key: its name, what it means and how to apply a textual value.
    public struct Setting: Sendable {
        public let key: String
        public let summary: String
        /// Other environment variables that also set this key (the key's own one wins, then the first).
        public var environmentAliases: [String] = []
        let apply: @Sendable (inout AttuneConfiguration, String) throws -> Void

        /// The environment variable that sets this key.
        public var environmentName: String {
            "ATTUNE_" + key.uppercased().replacingOccurrences(of: ".", with: "_")
        }
    }

    public static let settings: [Setting] = [
        Setting(key: "host", summary: "address to bind; 0.0.0.0 serves other machines") { $0.host = $1 },
        Setting(key: "port", summary: "TCP port; 0 picks a free one") { $0.port = try parse($1, as: "port", in: 0...65_535) },
        Setting(key: "max_body_bytes", summary: "largest request body accepted, in bytes") {
            $0.maxRequestBodyBytes = try parse($1, as: "max_body_bytes", in: 1...Int(Int32.max))
        },
        Setting(key: "public_dir", summary: "folder of the web UI (default: the bundled one)") { $0.publicDirectory = $1 },
        Setting(key: "models_dir", summary: "folder of model weights written by setup") { $0.modelsDirectory = $1 },
        Setting(key: "data_dir", summary: "folder for Attune's own state") { $0.dataDirectory = $1 },
        Setting(key: "log_level", summary: "trace, debug, info, notice, warning, error or critical") {
            guard let level = Logger.Level(rawValue: $1.lowercased()) else {
                throw ConfigurationError("log_level: '\($1)' is not one of trace, debug, info, notice, warning, error, critical")
            }
            $0.logLevel = level
        },
        Setting(key: "server.allowed_origins", summary: "comma-separated origins (scheme://host:port) allowed besides the served one; * allows any") {
            $0.server.allowedOrigins = ServerSettings.list($1)
        },
        Setting(key: "server.allowed_hosts", summary: "comma-separated Host names allowed besides IP addresses, localhost and host; * allows any") {
            $0.server.allowedHosts = ServerSettings.list($1)
        },
        Setting(
            key: "server.api_token", summary: "when set, every /api/* route and WebSocket needs it (Authorization: Bearer, or ?token=)",
            environmentAliases: ["ATTUNE_API_TOKEN"]
        ) {
            $0.server.apiToken = $1.isEmpty ? nil : $1
        },
        .decimal("server.shutdown_timeout_s", "seconds from SIGTERM to exit, however busy", \.server.shutdownTimeout, 1...600),
        .integer("speech.workers", "threads decoding uploads and running their voice activity detection", \.speechWorkers, 1...64),
        .integer("speech.queue_limit", "upload jobs that may wait before callers get 'busy'", \.speechQueueLimit, 0...10_000),
        .integer("listen.workers", "threads running live sessions' voice activity detection", \.listenWorkers, 1...64),
        .integer("listen.queue_limit", "live frames that may wait before a session gets 'busy'", \.listenQueueLimit, 0...10_000),
        .integer("emotion.workers", "threads reading emotion in text", \.emotionWorkers, 1...64),
        .integer("emotion.queue_limit", "text emotion jobs that may wait before callers get 'busy'", \.emotionQueueLimit, 0...10_000),
        Setting(key: "whisper.model", summary: "tiny.en, base, tiny.en-q8_0, tiny.en-q5_1 (quantized by setup), or a path to a whisper.cpp model") { $0.whisperModel = $1 },
        .integer("whisper.threads", "threads per Whisper decode", \.whisper.threadsPerDecode, 1...64),
        .integer("whisper.parallel", "Whisper decodes that run at once", \.whisper.parallelDecodes, 1...16),
        .integer("whisper.queue_limit", "Whisper decodes that may wait before callers get 'busy'", \.whisper.queueLimit, 0...1_000),
        .decimal("whisper.no_speech_threshold", "drop segments Whisper thinks are not speech above this", \.whisper.noSpeechThreshold, 0...1),
        .decimal("whisper.min_window_s", "shortest encoder window for finals; 0 keeps 30 s", \.whisper.minimumWindowSeconds, 0...30),
        .milliseconds("turn.silence_ms", "silence that ends a turn", \.turn.trailingSilence, 50...60_000),
        .milliseconds("turn.min_speech_ms", "shortest sound that starts a turn", \.turn.minSpeech, 50...5_000),
        .decimal("turn.max_utterance_s", "longest utterance before it is cut", \.turn.maxUtterance, 1...28),
        Setting(key: "turn.end_of_turn", summary: "silence (the silence_ms pause ends a turn) or smart_turn (Smart Turn v3.2 reads each pause)") {
            guard let mode = TurnSettings.EndOfTurn(rawValue: $1) else {
                throw ConfigurationError("turn.end_of_turn: '\($1)' is not silence or smart_turn")
            }
            $0.turn.endOfTurn = mode
        },
        .milliseconds("turn.smart_turn_pause_ms", "with smart_turn: the pause after which the model is asked", \.turn.semanticPause, 50...5_000),
        .decimal("turn.smart_turn_threshold", "with smart_turn: probability of 'complete' that ends the turn", \.turn.completeThreshold, 0...1),
        .milliseconds("turn.smart_turn_max_silence_ms", "with smart_turn: the silence that ends a turn the model called incomplete", \.turn.maxSilence, 100...60_000),
        .flag("turn.hold_unfinished", "true: hold a pause whose transcript stops mid-sentence ('by the', 'and') until turn.unfinished_silence_ms", \.turn.holdUnfinished),
        .milliseconds("turn.unfinished_silence_ms", "the silence that ends a turn whose pause stopped mid-sentence", \.turn.unfinishedSilence, 100...60_000),
        .flag("turn.await_pause_transcript", "true: with hold_unfinished, a pause ends the turn only once its transcript is read (at most turn.unfinished_silence_ms)", \.turn.awaitPauseTranscript),
        .milliseconds("stream.partial_interval_ms", "how often partial transcripts are decoded", \.stream.partialInterval, 100...60_000),
        .decimal("stream.partial_backoff", "a partial waits at least this many times the last partial's decode time", \.stream.partialBackoff, 0...100),
        .integer("stream.max_frame_bytes", "largest audio frame accepted on the WebSocket", \.stream.maxFrameBytes, 2...16_777_216),
        .decimal("stream.max_realtime_factor", "audio seconds accepted per wall-clock second", \.stream.maxRealtimeFactor, 1...1_000),
        .decimal("stream.max_messages_per_s", "text messages (pings, settings, typed text, bad input) accepted per second", \.stream.maxMessagesPerSecond, 1...10_000),
        .integer("stream.max_text_bytes", "longest user_text, in UTF-8 bytes", \.stream.maxTextBytes, 1...1_000_000),
        .integer("stream.max_sessions", "live WebSocket sessions at once; more get 503", \.stream.maxSessions, 1...100_000),
        .decimal("stream.idle_timeout_s", "a session that sends nothing this long is closed", \.stream.idleTimeout, 1...86_400),
        .integer("stream.max_outbound_messages", "events waiting for a slow client before it is disconnected", \.stream.maxOutboundMessages, 8...1_000_000),
        .integer("stream.max_outbound_bytes", "bytes waiting for a slow client before it is disconnected", \.stream.maxOutboundBytes, 65_536...1_073_741_824),
        .integer("stream.max_pending_turns", "finished turns waiting for an answer before more get 'busy'", \.stream.maxPendingTurns, 1...1_000),
        .decimal("transcribe.max_seconds", "longest uploaded recording", \.upload.maxSeconds, 1...86_400),
        .integer("transcribe.max_samples", "most samples (frames × channels) an upload may hold", \.upload.maxSamples, 1_000...2_000_000_000),
        .integer("transcribe.max_channels", "most channels an uploaded recording may have", \.upload.maxChannels, 1...64),
        .integer("transcribe.max_sample_rate", "highest sample rate of an upload, in Hz", \.upload.maxSampleRate, 8_000...768_000),
        .decimal("transcribe.ffmpeg_timeout_s", "seconds ffmpeg may take to decode one upload", \.upload.ffmpegTimeout, 1...3_600),
        .integer("emotion.max_text_bytes", "longest text read for emotion, in bytes", \.maxEmotionTextBytes, 1...1_000_000),
        .decimal("fusion.half_life_s", "emotion evidence loses half its weight in this many seconds", \.fusion.halfLife, 0.1...3_600),
        .decimal("fusion.smoothing", "weight of the newest reading in the fused state (lower is smoother)", \.fusion.smoothing, 0.01...1),
        .decimal("fusion.change_threshold", "probability change (L1) that triggers emotion_update", \.fusion.changeThreshold, 0...2),
        Setting(key: "transcribe.ffmpeg_path", summary: "ffmpeg for WebM/M4A (default: from PATH)") { $0.ffmpegPath = $1 },
        Setting(key: "llm.base_url", summary: "OpenAI-compatible API root (e.g. http://127.0.0.1:11434/v1); unset starts the embedded llama-server") {
            $0.llm.baseURL = $1.isEmpty ? nil : $1
        },
        Setting(key: "llm.model", summary: "model name sent to the LLM server") { $0.llm.model = $1 },
        .flag("llm.embedded", "true: start llama-server when llm.base_url is unset; false: no LLM", \.llmEmbedded),
        Setting(key: "llm.api_key", summary: "bearer token for the LLM server") { $0.llm.apiKey = $1 },
        .decimal("llm.connect_timeout_s", "seconds to wait for the LLM connection", \.llm.connectTimeout, 0.1...600),
        .decimal("llm.first_token_timeout_s", "seconds to the first token before the spoken apology", \.llm.firstTokenTimeout, 0.1...600),
        .decimal("llm.total_timeout_s", "seconds a whole reply may take", \.llm.totalTimeout, 0.5...3_600),
        .decimal("llm.temperature", "sampling temperature", \.llm.temperature, 0...2),
        .decimal("llm.top_p", "nucleus sampling", \.llm.topP, 0...1),
        .integer("llm.max_tokens", "longest reply in tokens", \.llm.maxTokens, 1...4_096),
        Setting(key: "llm.server_path", summary: "llama-server binary (default: the one setup builds)") { $0.llamaServer = $1 },
        Setting(key: "llm.model_file", summary: "GGUF for the embedded server: a file in models_dir or a path") { $0.llmModel = $1 },
        Setting(key: "llm.draft_model_file", summary: "GGUF drafting tokens for llm.model_file (speculative decoding; same tokenizer); empty: none") {
            $0.llmDraftModel = $1.isEmpty ? nil : $1
        },
        .integer("converse.max_audio_bytes", "largest spoken reply /api/converse returns, in bytes of 16-bit audio", \.converse.maxReplyAudioBytes, 1_000...256 << 20),
        .integer("converse.audio_entries", "replies whose audio /api/converse/audio keeps for download", \.converse.audioEntries, 1...10_000),
        .decimal("converse.audio_seconds", "seconds a reply's audio stays downloadable", \.converse.audioSeconds, 1...86_400),
        .integer("llm.draft_max", "most tokens the draft model proposes at a time", \.llmDraftMax, 1...64),
        .integer("llm.threads", "threads of the embedded llama-server", \.llmThreads, 1...64),
        .integer("llm.context", "context window of the embedded llama-server, in tokens", \.llmContextSize, 256...131_072),
        .integer("llm.batch_size", "prompt tokens the embedded llama-server reads per step (a dropped request stops after its step)", \.llmBatchSize, 8...4096),
        Setting(key: "persona.file", summary: "JSON file {id, name, instructions} adding a custom persona") { $0.customPersonaPath = $1 },
        .integer("memory.recent_turns", "turns kept verbatim in the prompt", \.reply.memory.recentTurns, 0...100),
        .integer("memory.history_tokens", "token budget of the conversation history in the prompt", \.reply.memory.historyTokens, 0...100_000),
        .integer("memory.summary_tokens", "token budget of the summary of older turns", \.reply.memory.summaryTokens, 0...100_000),
        .integer("memory.max_turns", "turns a live session remembers; older ones are forgotten", \.reply.memory.maxTurns, 1...10_000),
        .integer("rooms.max_rooms", "rooms open at once; a join that would open another gets too_many_rooms", \.rooms.limits.maxRooms, 1...100_000),
        .integer("rooms.max_participants", "participants per room", \.rooms.limits.maxParticipantsPerRoom, 1...1_000),
        .integer("rooms.max_tracks", "audio tracks per participant", \.rooms.limits.maxTracksPerParticipant, 1...64),
        Setting(key: "rooms.token_secret", summary: "when set, join_room needs a JWT (HS256) signed with it naming the room and user (attune token mints one)") {
            if !$1.isEmpty { _ = try RoomTokens(secret: $1) }  // refuses a secret too short for HS256
            $0.rooms.tokenSecret = $1.isEmpty ? nil : $1
        },
        Setting(key: "voice.builtin", summary: "the built-in voice emotion model: whisper (more accurate) or features (faster)") {
            guard let model = VoiceSettings.Model(rawValue: $1.lowercased()) else {
                throw ConfigurationError("voice.builtin: '\($1)' is not one of whisper, features")
            }
            $0.voice.model = model
        },
        Setting(
            key: "voice.model_path", summary: "ONNX voice emotion model (features [N, 56] or waveform [N, samples] in, [N, 7] scores out); default: voice.builtin's",
            environmentAliases: ["ATTUNE_VOICE_MODEL", "MODEL_PATH"]
        ) {
            $0.voice.modelPath = $1.isEmpty ? nil : $1
        },
        .integer("voice.threads", "threads one voice model run uses", \.voice.threads, 1...64),
        .integer("voice.workers", "voice model runs at once", \.voice.workers, 1...64),
        .decimal("voice.stream_seconds", "seconds of speech between the companion's streaming voice estimates of an utterance in progress", \.voice.streamSeconds, 0.5...30),
        .integer("voice.max_pending_chunks", "chunks of a companion session waiting for the voice model before more are skipped with 'busy'", \.voice.maxPendingChunks, 1...100),
        .integer("voice.queue_limit", "voice model runs that may wait before callers get 'busy'", \.voice.queueLimit, 0...10_000),
        Setting(
            key: "face.model_path", summary: "ONNX facial expression model ([N, 1, S, S] grayscale face in 0-1, [N, 7] scores out); default: the bundled one",
            environmentAliases: ["ATTUNE_FACE_MODEL"]
        ) {
            $0.face.modelPath = $1.isEmpty ? nil : $1
        },
        Setting(key: "face.detector_path", summary: "RetinaFace ONNX model; default: retinaface-mnet025.onnx in the models folder") {
            $0.face.detectorPath = $1.isEmpty ? nil : $1
        },
        Setting(key: "face.framing", summary: "how a face is cut out for the expression model: box (as FER2013 frames faces) or landmarks (rotated by the eyes and mouth)") {
            guard let framing = FaceAnalyzer.Framing(rawValue: $1) else { throw ConfigurationError("face.framing: '\($1)' is not one of box, landmarks") }
            $0.face.framing = framing
        },
        .integer("face.max_frame_bytes", "largest encoded camera frame accepted, in bytes", \.face.limits.maxBytes, 1_000...50_000_000),
        .integer("face.max_frame_pixels", "largest camera frame accepted, in pixels (width x height, read from the header before decoding)", \.face.limits.maxPixels, 1_000...100_000_000),
        .decimal("face.min_score", "lowest detector score that counts as a face", \.face.detection.minScore, 0.05...1),
        .decimal("face.nms_threshold", "box overlap (IoU) above which the weaker of two faces is dropped", \.face.detection.nmsThreshold, 0.05...1),
        .integer("face.detect_max_side", "frames are scaled down to this longer side before detection", \.face.detection.maxSide, 64...4_096),
        .integer("face.max_faces", "most faces reported per frame, largest first", \.face.detection.maxFaces, 1...100),
        .decimal("face.max_fps", "camera frames analysed per second per connection; more are dropped and counted", \.face.maxFramesPerSecond, 0.1...60),
        .integer("face.threads", "threads one face model run uses", \.face.threads, 1...64),
        .integer("face.workers", "frames analysed at once", \.face.workers, 1...64),
        .integer("face.queue_limit", "frames that may wait for analysis before callers get 'busy'", \.face.queueLimit, 0...10_000),
        .decimal("socketio.ping_interval_s", "seconds between the server's pings of a Socket.IO client", \.socketIO.pingInterval, 1...600),
        .decimal("socketio.ping_timeout_s", "seconds a Socket.IO client has to answer a ping before it is dropped", \.socketIO.pingTimeout, 1...600),
        .integer("socketio.max_payload", "largest Socket.IO message or polling request, in bytes", \.socketIO.maxPayload, 1_000...50_000_000),
        .integer("socketio.max_queued_packets", "packets waiting for a Socket.IO client before it is dropped as too slow", \.socketIO.maxQueuedPackets, 1...100_000),
        .integer("socketio.max_sessions", "Socket.IO sessions at once", \.socketIO.maxSessions, 1...100_000),
        .decimal("rooms.chunk_seconds", "seconds of a participant's speech read by the voice model at a time", \.rooms.chunkSeconds, 0.5...5),
        .integer("rooms.max_pending_chunks", "chunks and utterances waiting for voice analysis per connection before more are skipped", \.rooms.maxPendingChunks, 1...1_000),
        .integer("rooms.keep_emotions", "emotions stored per participant and room (the newest)", \.rooms.keepEmotions, 1...100_000),
        .flag("rooms.transcribe", "true: transcribe each participant's utterances, broadcast the transcripts and read their emotion", \.rooms.transcribe),
        .integer("history.max_page", "most turns or sessions one history request returns", \.historyMaxPage, 1...100_000),
        Setting(key: "storage.url", summary: "sqlite:PATH (default sqlite:history.sqlite in data_dir) or postgres://user:password@host:port/database[?sslmode=disable|prefer|require]") {
            _ = try StorageLocation(url: $1)
            $0.storageURL = $1
        },
        .decimal("storage.timeout_s", "longest wait for one PostgreSQL operation before it fails as unavailable", \.postgres.timeout, 0.1...600),
        .decimal("storage.heartbeat_interval_s", "seconds between an instance's heartbeats in PostgreSQL", \.postgres.heartbeatInterval, 0.1...600),
        .decimal("storage.instance_timeout_s", "silence after which an instance counts as dead and its participants leave their rooms", \.postgres.instanceTimeout, 0.5...3_600),
        .decimal("storage.event_retention_s", "seconds room events stay for listeners catching up after a reconnection", \.postgres.eventRetention, 10...604_800),
        .integer("storage.max_connections", "PostgreSQL connections an instance's pool may open (the room listener has one more)", \.postgres.maxConnections, 1...1_000),
        .decimal("storage.reconnect_max_s", "longest pause between the room listener's reconnection attempts", \.postgres.maxReconnectDelay, 0.1...600),
        .integer("storage.remembered_events", "room event ids a listener remembers to deliver each once across a reconnection", \.postgres.rememberedEvents, 1_000...10_000_000),
        .decimal("reply.mismatch_threshold", "reply-sentence emotion probability that counts as contradicting the person", \.reply.mismatchThreshold, 0...1),
        .decimal("reply.joy_mismatch_threshold", "reply-sentence joy probability that counts as contradicting a painful feeling", \.reply.joyMismatchThreshold, 0...1),
        .flag("reply.speculative_start", "true: start the reply on a pause's transcript, kept if the turn ends with the same words", \.reply.speculativeStart),
        .flag("reply.warm_history", "true: after each reply, have the model read the conversation so far into its prompt cache for the next turn", \.reply.warmHistory),
        .flag("reply.read_ahead", "true: in a pause held because the words stop mid-sentence, have the model read the words so far into its prompt cache", \.reply.readAhead),
        .flag("reply.plan_in_start", "true: every feeling's treatment sits in the prompt's cached start and each turn only names the feeling; false: each turn gets its plan's instructions", \.reply.planInStart),
        .flag("reply.opener", "true: say a few words that fit the feeling (\"Oh, I'm so sorry.\") the moment the turn ends, and have the model go on from them", \.reply.opener),
        .integer("reply.second_try_words", "ask the model once more when the guard leaves fewer of its own words than this (0: never)", \.reply.secondTryWords, 0...100),
        .integer("reply.second_try_after_rejections", "stop the model's first try once the guard has rejected this many of its sentences and approved none, and ask once more at once (0: never stop early)", \.reply.secondTryAfterRejections, 0...100),
        .flag("reply.second_try_unmentioned", "true: ask the model once more when its reply mentions nothing of what the person told about", \.reply.secondTryUnmentioned),
        Setting(key: "tts.voice", summary: "default voice: " + Voice.all.map(\.id).joined(separator: ", ")) {
            guard Voice.named($1) != nil else { throw ConfigurationError("tts.voice: unknown voice '\($1)'") }
            $0.synthesis.defaultVoice = $1
        },
        .decimal("tts.rate", "speaking rate, 0.5-2", \.synthesis.rate, SynthesisSettings.rates),
        Setting(key: "tts.piper_dir", summary: "Piper voice folder (model.onnx, tokens.txt)") { $0.piperDirectory = $1 },
        .integer("tts.max_characters", "longest text one synthesis accepts", \.synthesis.maxCharacters, 1...100_000),
        .integer("tts.queue_limit", "syntheses that may wait before callers get 'busy'", \.synthesis.queueLimit, 0...10_000),
        .integer("tts.cached_phrases", "short phrases (openers, repairs) whose speech is kept to be said again at once (0: none)", \.synthesis.cachedPhrases, 0...10_000),
        .integer("tts.cached_phrase_characters", "longest phrase whose speech is kept, in characters", \.synthesis.cachedPhraseCharacters, 1...1_000),
    ]

    /// Builds a configuration from a file, the environment and flag overrides, in that order.
    /// - Parameters:
    ///   - file: a JSON object of `key: value`; nil reads `ATTUNE_CONFIG` if set.
    ///   - environment: usually `ProcessInfo.processInfo.environment`.
    ///   - overrides: values from the command line, by key.
    public static func load(
        file: String? = nil, environment: [String: String], overrides: [String: String] = [:]
    ) throws -> AttuneConfiguration {
        var configuration = AttuneConfiguration()
        let byKey = Dictionary(uniqueKeysWithValues: settings.map { ($0.key, $0) })

        if let path = file ?? environment["ATTUNE_CONFIG"] {
            for (key, value) in try readFile(path) {
                guard let setting = byKey[key] else {
                    throw ConfigurationError("\(path): unknown key '\(key)'; known keys: \(settings.map(\.key).joined(separator: ", "))")
                }
                try setting.apply(&configuration, value)
            }
        }
        for setting in settings {
            if let value = ([setting.environmentName] + setting.environmentAliases).lazy.compactMap({ environment[$0] }).first {
                try setting.apply(&configuration, value)
            }
        }
        for (key, value) in overrides.sorted(by: { $0.key < $1.key }) {
            guard let setting = byKey[key] else {
                throw ConfigurationError("unknown setting '\(key)'; known keys: \(settings.map(\.key).joined(separator: ", "))")
            }
            try setting.apply(&configuration, value)
        }
        return configuration
    }

    private static func readFile(_ path: String) throws -> [String: String] {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ConfigurationError("cannot read configuration file \(path): \(error.localizedDescription)")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ConfigurationError("\(path) is not a JSON object of settings")
        }
        return try object.mapValues { value in
            switch value {
            case let text as String: return text
            case let number as NSNumber: return number.stringValue
            default: throw ConfigurationError("\(path): values must be strings, numbers or booleans")
            }
        }
    }

    fileprivate static func parse(_ text: String, as key: String, in range: ClosedRange<Double>) throws -> Double {
        guard let value = Double(text.trimmingCharacters(in: .whitespaces)), range.contains(value) else {
            throw ConfigurationError("\(key): '\(text)' is not a number in \(range.lowerBound)...\(range.upperBound)")
        }
        return value
    }

    fileprivate static func parse(_ text: String, as key: String, in range: ClosedRange<Int>) throws -> Int {
        guard let value = Int(text.trimmingCharacters(in: .whitespaces)), range.contains(value) else {
            throw ConfigurationError("\(key): '\(text)' is not a whole number in \(range.lowerBound)...\(range.upperBound)")
        }
        return value
    }
}

extension AttuneConfiguration.Setting {
    typealias Path<Value> = WritableKeyPath<AttuneConfiguration, Value> & Sendable

    static func integer(_ key: String, _ summary: String, _ path: Path<Int>, _ range: ClosedRange<Int>) -> Self {
        Self(key: key, summary: summary) { $0[keyPath: path] = try AttuneConfiguration.parse($1, as: key, in: range) }
    }

    static func flag(_ key: String, _ summary: String, _ path: Path<Bool>) -> Self {
        Self(key: key, summary: summary) {
            guard let value = Bool($1.lowercased()) else { throw ConfigurationError("\(key): expected true or false, got '\($1)'") }
            $0[keyPath: path] = value
        }
    }

    static func decimal(_ key: String, _ summary: String, _ path: Path<Double>, _ range: ClosedRange<Double>) -> Self {
        Self(key: key, summary: summary) { $0[keyPath: path] = try AttuneConfiguration.parse($1, as: key, in: range) }
    }

    /// A duration given in milliseconds and kept in seconds.
    static func milliseconds(_ key: String, _ summary: String, _ path: Path<Double>, _ range: ClosedRange<Double>) -> Self {
        Self(key: key, summary: summary) { $0[keyPath: path] = try AttuneConfiguration.parse($1, as: key, in: range) / 1_000 }
    }
}

/// Limits and pacing of the live audio stream.
public struct StreamSettings: Sendable, Equatable {
    /// How often the utterance in progress is re-decoded for a partial transcript, in seconds.
    public var partialInterval = 0.7
    /// A partial waits at least this many times as long as the last one took to decode.
    public var partialBackoff = 3.0
    /// Largest binary or decoded `audio_data` frame, in bytes.
    public var maxFrameBytes = 64 * 1024
    /// Audio seconds a client may send per wall-clock second, averaged over a few seconds;
    /// faster clients get an error and the excess frames are refused.
    public var maxRealtimeFactor = 10.0
    /// Text messages other than audio (pings, settings, playback reports, typed text, and
    /// malformed ones) accepted per second, with twice that as a burst.
    public var maxMessagesPerSecond = 20.0
    /// Longest `user_text`, in UTF-8 bytes.
    public var maxTextBytes = 4_000
    /// Live sessions at once; further upgrades get 503.
    public var maxSessions = 32
    /// Seconds without any message from the client before the session is closed.
    public var idleTimeout = 300.0
    /// Events (and their bytes) queued for a client that does not read, before it is disconnected.
    public var maxOutboundMessages = 1_024
    public var maxOutboundBytes = 16 * 1024 * 1024
    /// Finished turns waiting for the responder; more are refused with `busy`.
    public var maxPendingTurns = 4

    public init() {}
}

/// Who may use the server, and how long it may take to stop.
public struct ServerSettings: Sendable, Equatable {
    /// Origins allowed to open WebSockets and call the API besides the page's own; `*` allows any.
    public var allowedOrigins: [String] = []
    /// `Host` names accepted besides IP addresses, `localhost` and the bound host; `*` allows any.
    public var allowedHosts: [String] = []
    /// When set, `/api/*` and WebSockets need this token.
    public var apiToken: String?
    /// Seconds from SIGTERM or SIGINT to exit, even with sessions that never close.
    public var shutdownTimeout = 10.0

    public init() {}

    static func list(_ text: String) -> [String] {
        text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }
}

public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    public let description: String

    init(_ description: String) {
        self.description = description
    }
}

/// Emotion in the voice.
public struct VoiceSettings: Sendable, Equatable {
    /// The built-in voice emotion models.
    public enum Model: String, Sendable, CaseIterable {
        /// Smart Turn's Whisper encoder with Attune's head (`voice-emotion-whisper.onnx`, built
        /// by setup): the more accurate.
        case whisper
        /// The acoustic-feature ensemble bundled in the binary: about five times faster.
        case features
    }

    /// Which built-in model reads the voice when ``modelPath`` is unset.
    public var model = Model.whisper
    /// An ONNX model to use instead of the built-in ones.
    public var modelPath: String?
    /// Threads one run uses (ONNX Runtime's intra-op threads).
    public var threads = 1
    /// Runs at once, and runs that may wait.
    public var workers = 1
    public var queueLimit = 32
    /// How often the companion reads the voice of an utterance in progress, in seconds of speech.
    public var streamSeconds = 3.0
    /// Chunks of a companion session waiting for the voice model before more are skipped.
    public var maxPendingChunks = 2

    public init() {}
}

/// Emotion in the face.
public struct FaceSettings: Sendable, Equatable {
    /// An ONNX expression model to use instead of the bundled one.
    public var modelPath: String?
    /// The RetinaFace model; nil: `retinaface-mnet025.onnx` in the models folder (setup extracts it).
    public var detectorPath: String?
    public var limits = ImageLimits()
    public var detection = FaceDetectionSettings()
    /// How a detected face is cut out for the expression model.
    public var framing = FaceAnalyzer.Framing.box
    /// Frames analysed per second per connection (the page sends 2); more are dropped and counted.
    public var maxFramesPerSecond = 5.0
    /// Threads one model run uses, runs at once, and runs that may wait.
    public var threads = 1
    public var workers = 1
    public var queueLimit = 8

    public init() {}

    /// The whole face path with these settings.
    public func analyzer(models: String) throws -> FaceAnalyzer {
        try analyzer(models: models, threads: threads)
    }

    public func analyzer(models: String, threads: Int) throws -> FaceAnalyzer {
        let detector = URL(fileURLWithPath: detectorPath ?? models + "/retinaface-mnet025.onnx")
        return FaceAnalyzer(
            decoder: ImageDecoder(limits: limits),
            detector: try RetinaFaceDetector(path: detector, settings: detection, threads: threads),
            expression: try FaceExpressionModel(path: modelPath.map { URL(fileURLWithPath: $0) }, threads: threads), framing: framing)
    }
}

public struct RoomSettings: Sendable, Equatable {
    public var limits = RoomLimits()
    /// Transcribe each participant's utterances, broadcast the transcripts and read their emotion.
    public var transcribe = true
    /// Emotions stored per participant and room (the newest).
    public var keepEmotions = 100
    /// Seconds of speech the voice model reads at a time, while a participant speaks.
    public var chunkSeconds = 1.5
    /// Chunks and utterances waiting for voice analysis per connection before more are skipped.
    public var maxPendingChunks = 8
    /// When set, `join_room` needs a JWT (HS256) signed with this secret naming the room and user.
    public var tokenSecret: String?

    public init() {}
}
