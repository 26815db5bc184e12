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

    public init(path: URL) throws {
        guard FileManager.default.isReadableFile(atPath: path.path) else {
            throw WhisperError(description: "Whisper model not found at \(path.path); run `make setup`")
        }
        Self.silenceNativeLogs
        var params = whisper_context_default_params()
        params.use_gpu = false
        params.flash_attn = true
        guard let context = whisper_init_from_file_with_params_no_state(path.path, params) else {
            throw WhisperError(description: "whisper.cpp could not load \(path.path)")
        }
        self.context = context
        self.path = path
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
        guard !samples.isEmpty else { return .empty }
        let model = self.model
        let settings = self.settings
        let states = self.states
        return try await pool.run {
            let state = try states.take()
            defer { states.give(state) }
            return try Self.decode(samples, model: model, state: state, settings: settings, pass: pass)
        }
    }

    private static func decode(
        _ samples: [Float], model: WhisperModel, state: OpaquePointer, settings: WhisperSettings, pass: TranscriptionPass
    ) throws -> Transcript {
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
        let language = model.isMultilingual ? settings.language : "en"
        let result = (language ?? "auto").withCString { code -> Int32 in
            params.language = code
            params.detect_language = language == nil
            return samples.withUnsafeBufferPointer {
                whisper_full_with_state(model.context, state, params, $0.baseAddress, Int32($0.count))
            }
        }
        guard result == 0 else { throw WhisperError(description: "whisper.cpp failed to decode (code \(result))") }
        var transcript = transcript(from: state, model: model, noSpeechThreshold: settings.noSpeechThreshold)
        // Timestamps can run to the end of the (padded) window; no segment outlasts the audio.
        for index in transcript.segments.indices {
            transcript.segments[index].end = min(transcript.segments[index].end, seconds)
            transcript.segments[index].start = min(transcript.segments[index].start, transcript.segments[index].end)
        }
        return transcript
    }

    private static func transcript(from state: OpaquePointer, model: WhisperModel, noSpeechThreshold: Double) -> Transcript {
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
            segments.append(TranscriptSegment(
                start: Double(whisper_full_get_segment_t0_from_state(state, index)) / 100,
                end: Double(whisper_full_get_segment_t1_from_state(state, index)) / 100,
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
