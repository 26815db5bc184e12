import AttuneCore
import CWhisper
import Foundation

public struct WhisperError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// Settings of Whisper decoding.
public struct WhisperSettings: Sendable, Equatable {
    /// Threads one decode uses.
    public var threadsPerDecode = 2
    /// Decodes that may run at once (each holds its own whisper.cpp state, ~tens of MB).
    public var parallelDecodes = 1
    /// Decodes that may wait for a free state before callers get a "busy" error.
    public var queueLimit = 8
    /// Segments whose no-speech probability exceeds this are dropped.
    public var noSpeechThreshold = 0.6
    /// Language code, or nil to detect (multilingual models only).
    public var language: String? = "en"
    /// Shortest encoder window for final transcripts, in seconds; 0 keeps Whisper's 30 s.
    public var minimumWindowSeconds = 10.0

    public init() {}
}

/// A whisper.cpp model loaded into memory.
///
/// `@unchecked Sendable`: after loading, the context holds only read-only weights and
/// vocabulary; every decode runs with its own `whisper_state`, so concurrent decodes on
/// different states are safe (whisper.cpp's documented use of `whisper_full_with_state`).
public final class WhisperModel: @unchecked Sendable {
    let context: OpaquePointer
    public let path: URL

    /// Whether token timings come from cross-attention alignment (DTW): set by `wordTimings`.
    public let alignsWords: Bool

    /// - Parameter wordTimings: load the model for ``WhisperTranscriber/words(_:)``: token times
    ///   aligned with dynamic time warping over the model's alignment heads (whisper.cpp's
    ///   `dtw_token_timestamps`, without flash attention), which transcription does not need.
    public init(path: URL, wordTimings: Bool = false) throws {
        guard FileManager.default.isReadableFile(atPath: path.path) else {
            throw WhisperError(description: "Whisper model not found at \(path.path); run `make setup`")
        }
        Self.silenceNativeLogs
        var params = whisper_context_default_params()
        params.use_gpu = false
        params.flash_attn = !wordTimings
        if wordTimings {
            params.dtw_token_timestamps = true
            params.dtw_aheads_preset = Self.alignmentHeads(forFile: path.lastPathComponent)
            params.dtw_n_top = 2
        }
        guard let context = whisper_init_from_file_with_params_no_state(path.path, params) else {
            throw WhisperError(description: "whisper.cpp could not load \(path.path)")
        }
        self.context = context
        self.path = path
        self.alignsWords = wordTimings
    }

    /// The alignment heads whisper.cpp knows for a model, from the file's name
    /// (`ggml-tiny.en-q8_0.bin` → tiny.en); other models use the top text layers' heads.
    static func alignmentHeads(forFile name: String) -> whisper_alignment_heads_preset {
        let presets: [(String, whisper_alignment_heads_preset)] = [
            ("tiny.en", WHISPER_AHEADS_TINY_EN), ("tiny", WHISPER_AHEADS_TINY),
            ("base.en", WHISPER_AHEADS_BASE_EN), ("base", WHISPER_AHEADS_BASE),
            ("small.en", WHISPER_AHEADS_SMALL_EN), ("small", WHISPER_AHEADS_SMALL),
            ("medium.en", WHISPER_AHEADS_MEDIUM_EN), ("medium", WHISPER_AHEADS_MEDIUM),
        ]
        let model = name.replacingOccurrences(of: "ggml-", with: "")
        return presets.first { model.hasPrefix($0.0 + "-") || model.hasPrefix($0.0 + ".bin") }?.1 ?? WHISPER_AHEADS_N_TOP_MOST
    }

    deinit {
        whisper_free(context)
    }

    public var isMultilingual: Bool { whisper_is_multilingual(context) != 0 }

    /// whisper.cpp and ggml log every load and decode to stderr; Attune reports through its own logs.
    private static let silenceNativeLogs: Void = {
        whisper_log_set({ _, _, _ in }, nil)
    }()
}

/// The question whisper.cpp's abort callback asks, kept alive for the decode's length.
private final class AbandonCheck {
    let abandon: @Sendable () -> Bool
    init(_ abandon: @escaping @Sendable () -> Bool) { self.abandon = abandon }
}

/// A word of a transcript and where it was heard, in seconds from the start of the audio.
public struct TimedWord: Sendable, Equatable {
    public var text: String
    public var start: Double
    public var end: Double

    public init(text: String, start: Double, end: Double) {
        self.text = text
        self.start = start
        self.end = end
    }
}

/// Whisper decoding on a bounded pool of threads, one whisper.cpp state per worker.
public final class WhisperTranscriber: SpeechTranscribing {
    public let model: WhisperModel
    public let settings: WhisperSettings
    /// The threads decodes run on; the application runs it as a service.
    public let pool: InferencePool
    private let states: StatePool

    public init(model: WhisperModel, settings: WhisperSettings = .init()) {
        self.model = model
        self.settings = settings
        self.pool = InferencePool(name: "whisper", workers: settings.parallelDecodes, maxQueued: settings.queueLimit)
        self.states = StatePool(model: model)
    }

    public func transcribe(_ samples: [Float], pass: TranscriptionPass) async throws -> Transcript {
        try await transcribe(samples, pass: pass) { false }
    }

    /// Asks `abandon` before the decode and from whisper.cpp's abort callback, which ggml calls
    /// before each of its computations (the encoder, each decoder step).
    public func transcribe(_ samples: [Float], pass: TranscriptionPass, abandonIf abandon: @escaping @Sendable () -> Bool) async throws -> Transcript {
        guard !samples.isEmpty else { return .empty }
        let (model, settings) = (self.model, self.settings)
        return try await withState { state in
            if abandon() { throw TranscriptionAbandoned() }
            try Self.decode(samples, model: model, state: state, settings: settings, pass: pass, abandon: abandon)
            return Self.transcript(
                from: state, model: model, seconds: Double(samples.count) / 16_000, noSpeechThreshold: settings.noSpeechThreshold)
        }
    }

    /// The words of `samples` and where each was heard. With a model loaded for word timings
    /// (``WhisperModel/init(path:wordTimings:)``) a word ends at its last token's aligned time
    /// (the alignment marks a token about where it has been said) and starts where the word
    /// before it ended; otherwise whisper.cpp's rougher token times are used. The turn-taking
    /// benchmark cuts utterances at these boundaries.
    public func words(_ samples: [Float]) async throws -> [TimedWord] {
        guard !samples.isEmpty else { return [] }
        let (model, settings) = (self.model, self.settings)
        return try await withState { state in
            try Self.decode(samples, model: model, state: state, settings: settings, pass: .final, wordTimings: true)
            return Self.words(from: state, model: model, seconds: Double(samples.count) / 16_000)
        }
    }

    /// Runs `work` on the pool with a decoding state of its own.
    private func withState<Result: Sendable>(_ work: @escaping @Sendable (OpaquePointer) throws -> Result) async throws -> Result {
        let states = self.states
        return try await pool.run {
            let state = try states.take()
            defer { states.give(state) }
            return try work(state)
        }
    }

    /// Tokens grouped into words: a token whose text starts with a space begins a word.
    private static func words(from state: OpaquePointer, model: WhisperModel, seconds: Double) -> [TimedWord] {
        let endOfText = whisper_token_eot(model.context)
        var words: [TimedWord] = []
        for segment in 0..<whisper_full_n_segments_from_state(state) {
            for index in 0..<whisper_full_n_tokens_from_state(state, segment) {
                let data = whisper_full_get_token_data_from_state(state, segment, index)
                guard data.id < endOfText else { continue }
                let text = String(cString: whisper_full_get_token_text_from_state(model.context, state, segment, index))
                let end = min(seconds, Double(model.alignsWords ? data.t_dtw : data.t1) / 100)
                if text.hasPrefix(" ") || words.isEmpty {
                    let start = model.alignsWords ? (words.last?.end ?? min(end, Double(data.t0) / 100)) : min(seconds, Double(data.t0) / 100)
                    words.append(TimedWord(text: text.trimmingCharacters(in: .whitespaces), start: min(start, end), end: end))
                } else {
                    words[words.count - 1].text += text
                    words[words.count - 1].end = max(words[words.count - 1].end, end)
                }
            }
        }
        return words.filter { !$0.text.isEmpty }
    }

    /// Decodes `samples` into `state`; its segments and tokens are read from there.
    private static func decode(
        _ samples: [Float], model: WhisperModel, state: OpaquePointer, settings: WhisperSettings, pass: TranscriptionPass,
        wordTimings: Bool = false, abandon: (@Sendable () -> Bool)? = nil
    ) throws {
        var params = whisper_full_default_params(WHISPER_SAMPLING_GREEDY)
        params.n_threads = Int32(settings.threadsPerDecode)
        params.print_progress = false
        params.print_realtime = false
        params.print_timestamps = false
        params.print_special = false
        params.no_context = true
        params.suppress_blank = true
        params.suppress_nst = true
        params.no_speech_thold = Float(settings.noSpeechThreshold)
        params.token_timestamps = wordTimings
        let seconds = Double(samples.count) / 16_000
        if settings.minimumWindowSeconds > 0 {
            // Whisper pads every input to a 30 s window; a shorter encoder window is several
            // times faster. Below about 10 s the decoder starts to loop (BENCHMARKS.md), so the
            // window never shrinks under `minimumWindowSeconds`.
            let window = max(settings.minimumWindowSeconds, seconds + 1)
            params.audio_ctx = window >= 30 ? 0 : Int32((window * 50).rounded(.up))
        }
        if pass == .partial {
            // A quick look, not the record: one segment, one pass at temperature 0 and a length
            // bound, so an unclear start of speech can neither send the decoder through its
            // fallbacks nor into a long repetition.
            params.single_segment = true
            params.temperature_inc = 0
            params.max_tokens = Int32(8 + seconds * 6)
        }
        let check = abandon.map(AbandonCheck.init)
        if let check {
            params.abort_callback = { data in
                guard let data else { return false }
                return Unmanaged<AbandonCheck>.fromOpaque(data).takeUnretainedValue().abandon()
            }
            params.abort_callback_user_data = Unmanaged.passUnretained(check).toOpaque()
        }
        let language = model.isMultilingual ? settings.language : "en"
        let result = withExtendedLifetime(check) {
            (language ?? "auto").withCString { code -> Int32 in
                params.language = code
                params.detect_language = language == nil
                return samples.withUnsafeBufferPointer {
                    whisper_full_with_state(model.context, state, params, $0.baseAddress, Int32($0.count))
                }
            }
        }
        if result != 0, abandon?() == true { throw TranscriptionAbandoned() }
        guard result == 0 else { throw WhisperError(description: "whisper.cpp failed to decode (code \(result))") }
    }

    /// The decoded segments of `seconds` of audio. Timestamps can run to the end of the (padded)
    /// window; no segment outlasts the audio.
    private static func transcript(from state: OpaquePointer, model: WhisperModel, seconds: Double, noSpeechThreshold: Double) -> Transcript {
        let endOfText = whisper_token_eot(model.context)
        var segments: [TranscriptSegment] = []
        var probabilitySum = 0.0
        var tokenCount = 0
        for index in 0..<whisper_full_n_segments_from_state(state) {
            let noSpeech = Double(whisper_full_get_segment_no_speech_prob_from_state(state, index))
            let text = String(cString: whisper_full_get_segment_text_from_state(state, index))
                .trimmingCharacters(in: .whitespacesAndNewlines)
            guard noSpeech <= noSpeechThreshold, !text.isEmpty else { continue }
            var segmentSum = 0.0
            var segmentTokens = 0
            for token in 0..<whisper_full_n_tokens_from_state(state, index) {
                let data = whisper_full_get_token_data_from_state(state, index, token)
                guard data.id < endOfText else { continue }  // timestamps and other special tokens
                segmentSum += Double(data.p)
                segmentTokens += 1
            }
            probabilitySum += segmentSum
            tokenCount += segmentTokens
            let end = min(seconds, Double(whisper_full_get_segment_t1_from_state(state, index)) / 100)
            segments.append(TranscriptSegment(
                start: min(end, Double(whisper_full_get_segment_t0_from_state(state, index)) / 100),
                end: end,
                text: text,
                confidence: segmentTokens > 0 ? segmentSum / Double(segmentTokens) : 0,
                noSpeechProbability: noSpeech
            ))
        }
        return Transcript(
            text: segments.map(\.text).joined(separator: " "),
            segments: segments,
            confidence: tokenCount > 0 ? probabilitySum / Double(tokenCount) : 0
        )
    }
}

/// whisper.cpp decoding states, created on first need and reused. The pool's worker count
/// bounds how many exist.
///
/// `@unchecked Sendable`: the free list is guarded by a lock, and a state is used by one
/// worker at a time between `take()` and `give(_:)`.
private final class StatePool: @unchecked Sendable {
    private let model: WhisperModel
    private let lock = NSLock()
    private var free: [OpaquePointer] = []

    init(model: WhisperModel) {
        self.model = model
    }

    func take() throws -> OpaquePointer {
        if let state = lock.withLock({ free.popLast() }) { return state }
        guard let state = whisper_init_state(model.context) else {
            throw WhisperError(description: "whisper.cpp could not allocate a decoding state")
        }
        return state
    }

    func give(_ state: OpaquePointer) {
        lock.withLock { free.append(state) }
    }

    deinit {
        for state in free { whisper_free_state(state) }
    }
}
