import AttuneAudio
import AttuneCore
import CEspeakNG
import CSherpaOnnx
import Foundation

/// A voice Attune can speak with.
public struct Voice: Codable, Sendable, Equatable, Identifiable {
    public enum Engine: String, Codable, Sendable {
        /// A Piper neural voice run by sherpa-onnx, phonemized by espeak-ng.
        case piper
        /// espeak-ng's own formant synthesis: robotic, but many voices and no model.
        case espeak
    }

    public var id: String
    public var name: String
    public var gender: String
    public var engine: Engine
    /// espeak-ng's voice name (`en-us+f3`): the language for Piper, the whole voice for espeak.
    public var espeakVoice: String

    public static let joe = Voice(id: "joe", name: "Joe (Piper, US English)", gender: "male", engine: .piper, espeakVoice: "en-us")
    public static let all: [Voice] = [
        .joe,
        Voice(id: "ava", name: "Ava (espeak-ng, US English)", gender: "female", engine: .espeak, espeakVoice: "en-us+f3"),
        Voice(id: "maya", name: "Maya (espeak-ng, British English)", gender: "female", engine: .espeak, espeakVoice: "en+f4"),
        Voice(id: "sam", name: "Sam (espeak-ng, US English)", gender: "male", engine: .espeak, espeakVoice: "en-us+m3"),
    ]

    public static func named(_ id: String) -> Voice? { all.first { $0.id == id } }
}

public struct SynthesisError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// Settings of speech synthesis.
public struct SynthesisSettings: Sendable, Equatable {
    /// The voice used unless a session picks another.
    public var defaultVoice = Voice.joe.id
    /// Speaking rate: 1 is the voice's own pace, 0.5 half as fast, 2 twice as fast.
    public var rate = 1.0
    /// Allowed range of `rate`.
    public static let rates = 0.5...2.0
    /// Longest text one request may synthesise, in characters.
    public var maxCharacters = 2_000
    /// Syntheses that may wait for the engine before callers get a "busy" error.
    public var queueLimit = 16
    /// Threads ONNX Runtime uses for one Piper synthesis.
    public var threads = 1
    /// Short phrases whose speech is kept to be said again at once (``SpokenPhrases``).
    public var cachedPhrases = 64
    /// Longest phrase kept, in characters.
    public var cachedPhraseCharacters = 60

    public init() {}
}

/// Turns text into speech.
public protocol SpeechSynthesizing: Sendable {
    var voices: [Voice] { get }
    /// Speech for `text` (one sentence or a few), mono, at the voice's sample rate.
    func synthesize(_ text: String, voice: String, rate: Double) async throws -> AudioBuffer
    /// Makes `phrases` ready to be said at once, where the synthesizer keeps speech
    /// (``SpokenPhrases``); the others have nothing to prepare.
    func prepare(_ phrases: [String], voice: String, rate: Double) async
}

extension SpeechSynthesizing {
    public func prepare(_ phrases: [String], voice: String, rate: Double) async {}
}

/// Piper for its voice and espeak-ng for the others, on one bounded worker.
public final class SpeechSynthesizer: SpeechSynthesizing {
    public let settings: SynthesisSettings
    public let pool: InferencePool
    private let piper: PiperVoice?

    /// - Parameter piperDirectory: the folder setup writes (`model.onnx`, `tokens.txt`); nil or
    ///   missing leaves only the espeak-ng voices.
    public init(piperDirectory: URL?, settings: SynthesisSettings = .init()) throws {
        self.settings = settings
        self.pool = InferencePool(name: "tts", workers: 1, maxQueued: settings.queueLimit)
        if let piperDirectory {
            piper = try PiperVoice(directory: piperDirectory, threads: settings.threads)
        } else {
            piper = nil
        }
        try Espeak.shared.check()
    }

    public var voices: [Voice] { Voice.all.filter { $0.engine == .espeak || piper != nil } }

    public func synthesize(_ text: String, voice: String, rate: Double) async throws -> AudioBuffer {
        guard let chosen = Voice.named(voice), voices.contains(chosen) else {
            throw SynthesisError(description: "unknown voice '\(voice)'; voices: \(voices.map(\.id).joined(separator: ", "))")
        }
        guard Self.isRateAllowed(rate) else {
            throw SynthesisError(description: "rate \(rate) is outside \(SynthesisSettings.rates.lowerBound)-\(SynthesisSettings.rates.upperBound)")
        }
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw SynthesisError(description: "there is no text to speak") }
        // Unicode scalars, not grapheme clusters: one letter with thousands of combining marks
        // is one "character" to Swift but thousands of code points for the synthesizer.
        let length = trimmed.unicodeScalars.count
        guard length <= settings.maxCharacters else {
            throw SynthesisError(description: "text is \(length) Unicode code points; the limit is \(settings.maxCharacters) (setting tts.max_characters)")
        }
        let piper = self.piper
        return try await pool.run {
            switch chosen.engine {
            case .piper:
                guard let piper else { throw SynthesisError(description: "the Piper voice is not installed") }
                return try piper.speak(Espeak.shared.phonemes(trimmed, voice: chosen.espeakVoice), rate: rate)
            case .espeak:
                return try Espeak.shared.speak(trimmed, voice: chosen.espeakVoice, rate: rate)
            }
        }
    }

    static func isRateAllowed(_ rate: Double) -> Bool { rate.isFinite && SynthesisSettings.rates.contains(rate) }
}

/// A Piper (VITS) voice run by sherpa-onnx's offline TTS, fed IPA phonemes.
///
/// `@unchecked Sendable`: the handle is only used by ``SpeechSynthesizer``'s single worker.
final class PiperVoice: @unchecked Sendable {
    private let handle: OpaquePointer
    let sampleRate: Int

    init(directory: URL, threads: Int) throws {
        let model = directory.appendingPathComponent("model.onnx").path
        let tokens = directory.appendingPathComponent("tokens.txt").path
        for path in [model, tokens] where !FileManager.default.isReadableFile(atPath: path) {
            throw SynthesisError(description: "Piper voice file missing: \(path); run `make setup`")
        }
        let created = model.withCString { model in
            tokens.withCString { tokens in
                "cpu".withCString { provider in
                    var config = SherpaOnnxOfflineTtsConfig()
                    config.model.vits.model = model
                    config.model.vits.tokens = tokens
                    config.model.vits.noise_scale = 0.667
                    config.model.vits.noise_scale_w = 0.8
                    config.model.vits.length_scale = 1
                    config.model.num_threads = Int32(threads)
                    config.model.provider = provider
                    config.max_num_sentences = 1
                    return NativeRuntime.onnxLifecycle.withLock { SherpaOnnxCreateOfflineTts(&config) }
                }
            }
        }
        guard let created else { throw SynthesisError(description: "sherpa-onnx could not load the Piper voice in \(directory.path)") }
        handle = created
        sampleRate = Int(SherpaOnnxOfflineTtsSampleRate(handle))
    }

    deinit {
        NativeRuntime.onnxLifecycle.withLock { SherpaOnnxDestroyOfflineTts(handle) }
    }

    /// Speech for phonemized sentences (IPA strings, one per sentence).
    func speak(_ sentences: [String], rate: Double) throws -> AudioBuffer {
        let codepoints = sentences.map { $0.unicodeScalars.map { Int32($0.value) } }.filter { !$0.isEmpty }
        guard !codepoints.isEmpty else { return AudioBuffer(samples: [], sampleRate: sampleRate) }
        let flat = codepoints.flatMap { $0 }
        let lengths = codepoints.map { Int32($0.count) }
        let audio = flat.withUnsafeBufferPointer { flat in
            lengths.withUnsafeBufferPointer { lengths in
                var config = SherpaOnnxGenerationConfig()
                config.speed = Float(rate)
                config.sid = 0
                config.silence_scale = 0.2
                config.phoneme_codepoints = flat.baseAddress
                config.phoneme_codepoints_lens = lengths.baseAddress
                config.phoneme_codepoints_num_sentences = Int32(lengths.count)
                return SherpaOnnxOfflineTtsGenerateWithConfig(handle, "", &config, nil, nil)
            }
        }
        guard let audio else { throw SynthesisError(description: "sherpa-onnx failed to synthesise speech") }
        defer { SherpaOnnxDestroyOfflineTtsGeneratedAudio(audio) }
        let samples = Array(UnsafeBufferPointer(start: audio.pointee.samples, count: Int(audio.pointee.n)))
        return AudioBuffer(samples: samples, sampleRate: Int(audio.pointee.sample_rate))
    }
}

/// libespeak-ng: phonemes for Piper, and speech for the espeak voices. It keeps global state,
/// so every call holds one lock.
final class Espeak: Sendable {
    static let shared = Espeak()
    private let lock = NSLock()
    /// Output rate of espeak-ng's synthesis, or nil when it failed to initialise.
    private let sampleRate: Int?

    private init() {
        let rate = attune_espeak_initialize()
        sampleRate = rate > 0 ? Int(rate) : nil
    }

    func check() throws {
        guard sampleRate != nil else {
            throw SynthesisError(description: "espeak-ng could not start (is espeak-ng-data installed?)")
        }
    }

    /// IPA phonemes per sentence, with the punctuation Piper's voices were trained with.
    func phonemes(_ text: String, voice: String) throws -> [String] {
        try check()
        return try lock.withLock {
            try select(voice)
            var sentences: [String] = []
            var current = ""
            try text.withCString { start in
                var cursor: UnsafePointer<CChar>? = start
                while let clauseStart = cursor {
                    guard let phonemes = attune_espeak_next_phonemes(&cursor) else { break }
                    // The clause's own punctuation: espeak drops it, Piper wants it.
                    let consumed = cursor.map { $0 - clauseStart } ?? strlen(clauseStart)
                    let clause = String(decoding: UnsafeRawBufferPointer(start: clauseStart, count: consumed), as: UTF8.self)
                    let mark = clause.trimmingCharacters(in: .whitespacesAndNewlines).last.flatMap { ".,;:!?".contains($0) ? $0 : nil }
                    current += String(cString: phonemes).replacingOccurrences(of: "\u{200D}", with: "")
                    if let mark { current.append(mark) }
                    if mark == nil || ".!?".contains(mark!) {
                        sentences.append(current.trimmingCharacters(in: .whitespaces))
                        current = ""
                    } else {
                        current += " "
                    }
                    if consumed == 0 { throw SynthesisError(description: "espeak-ng made no progress phonemizing the text") }
                }
            }
            if !current.trimmingCharacters(in: .whitespaces).isEmpty { sentences.append(current.trimmingCharacters(in: .whitespaces)) }
            return sentences.filter { !$0.isEmpty }
        }
    }

    /// espeak-ng's own speech.
    func speak(_ text: String, voice: String, rate: Double) throws -> AudioBuffer {
        guard let sampleRate else { throw SynthesisError(description: "espeak-ng could not start") }
        return try lock.withLock {
            try select(voice)
            espeak_SetParameter(espeakRATE, Int32((Double(espeakRATE_NORMAL) * rate).rounded()), 0)
            var sink = AttuneEspeakSamples()
            defer { attune_espeak_free(&sink) }
            let status = text.withCString { attune_espeak_synthesize($0, &sink) }
            guard status == 0 else { throw SynthesisError(description: "espeak-ng failed to synthesise (error \(status))") }
            let samples = (0..<Int(sink.count)).map { Float(sink.data[$0]) / 32_768 }
            return AudioBuffer(samples: samples, sampleRate: sampleRate)
        }
    }

    private func select(_ voice: String) throws {
        guard espeak_SetVoiceByName(voice) == EE_OK else {
            throw SynthesisError(description: "espeak-ng has no voice '\(voice)'")
        }
    }
}
