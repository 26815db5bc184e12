import AttuneAudio
import CSherpaOnnx
import Foundation

/// A stretch of speech, in seconds from the start of the stream.
public struct SpeechSegment: Codable, Sendable, Equatable {
    public var start: Double
    public var end: Double

    public init(start: Double, end: Double) {
        self.start = start
        self.end = end
    }

    public var duration: Double { end - start }
}

/// Tuning of the Silero voice activity detector.
public struct VoiceActivitySettings: Sendable, Equatable {
    /// Speech probability above which a window counts as speech.
    public var threshold: Float = 0.5
    /// Silence that closes a segment, in seconds.
    public var minSilence: Double = 0.25
    /// Shorter bursts (clicks, coughs) are dropped, in seconds.
    public var minSpeech: Double = 0.25
    /// Segments longer than this are split, in seconds.
    public var maxSpeech: Double = 20
    /// Samples per inference window; Silero expects 512 at 16 kHz.
    public var windowSize: Int = 512
    /// The only rate Silero VAD runs at; callers resample to it.
    public static let sampleRate = 16_000

    public init() {}

    /// Settings for turn detection: speech must last `minSpeech` to count, and the detector
    /// closes a segment after a short pause, leaving the end-of-turn silence to ``TurnDetector``.
    public static func forTurns(_ turn: TurnSettings) -> VoiceActivitySettings {
        var settings = VoiceActivitySettings()
        settings.minSpeech = turn.minSpeech
        settings.minSilence = 0.1
        settings.maxSpeech = max(turn.maxUtterance, 1) + 5
        return settings
    }
}

/// Finds speech in a stream of 16 kHz mono samples.
public protocol VoiceActivityDetecting {
    /// Feeds samples; returns the segments that closed with them.
    mutating func accept(_ samples: [Float]) -> [SpeechSegment]
    /// Ends the stream; returns the segment that was still open, if any.
    mutating func flush() -> [SpeechSegment]
    /// Whether the detector is inside speech right now.
    var isSpeaking: Bool { get }
}

public struct VoiceActivityError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// Silero VAD run by sherpa-onnx on ONNX Runtime.
///
/// One instance serves one stream: it keeps the model's recurrent state between calls.
public final class SileroVoiceActivityDetector: VoiceActivityDetecting {
    private let handle: OpaquePointer
    private let settings: VoiceActivitySettings

    /// - Parameter model: path to `silero_vad.onnx`.
    public init(model: URL, settings: VoiceActivitySettings = .init()) throws {
        // sherpa-onnx logs and aborts on some unreadable models, so check the file first.
        guard FileManager.default.isReadableFile(atPath: model.path) else {
            throw VoiceActivityError(description: "Silero VAD model not found at \(model.path); run `make setup`")
        }
        self.settings = settings
        let created = model.path.withCString { modelPath in
            "cpu".withCString { provider in
                var config = SherpaOnnxVadModelConfig()
                config.silero_vad.model = modelPath
                config.silero_vad.threshold = settings.threshold
                config.silero_vad.min_silence_duration = Float(settings.minSilence)
                config.silero_vad.min_speech_duration = Float(settings.minSpeech)
                config.silero_vad.max_speech_duration = Float(settings.maxSpeech)
                config.silero_vad.window_size = Int32(settings.windowSize)
                config.sample_rate = Int32(VoiceActivitySettings.sampleRate)
                config.num_threads = 1
                config.provider = provider
                return NativeRuntime.onnxLifecycle.withLock {
                    SherpaOnnxCreateVoiceActivityDetector(&config, Float(settings.maxSpeech) + 10)
                }
            }
        }
        guard let created else {
            throw VoiceActivityError(description: "sherpa-onnx could not load the Silero VAD model at \(model.path)")
        }
        handle = created
    }

    deinit {
        NativeRuntime.onnxLifecycle.withLock { SherpaOnnxDestroyVoiceActivityDetector(handle) }
    }

    public func accept(_ samples: [Float]) -> [SpeechSegment] {
        // sherpa-onnx mis-segments when handed seconds of audio in one call (a 3 s clip with
        // speech at 1.0-2.4 s came back as 2.97-3.30 s), so feed it one model window at a time.
        var segments: [SpeechSegment] = []
        samples.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            for start in stride(from: 0, to: buffer.count, by: settings.windowSize) {
                let count = min(settings.windowSize, buffer.count - start)
                SherpaOnnxVoiceActivityDetectorAcceptWaveform(handle, base + start, Int32(count))
                segments += drain()
            }
        }
        return segments
    }

    public func flush() -> [SpeechSegment] {
        SherpaOnnxVoiceActivityDetectorFlush(handle)
        return drain()
    }

    public var isSpeaking: Bool {
        SherpaOnnxVoiceActivityDetectorDetected(handle) != 0
    }

    private func drain() -> [SpeechSegment] {
        var segments: [SpeechSegment] = []
        let rate = Double(VoiceActivitySettings.sampleRate)
        while SherpaOnnxVoiceActivityDetectorEmpty(handle) == 0 {
            if let segment = SherpaOnnxVoiceActivityDetectorFront(handle) {
                let start = Double(segment.pointee.start) / rate
                segments.append(SpeechSegment(start: start, end: start + Double(segment.pointee.n) / rate))
                SherpaOnnxDestroySpeechSegment(segment)
            }
            SherpaOnnxVoiceActivityDetectorPop(handle)
        }
        return segments
    }
}

extension VoiceActivityDetecting {
    /// Runs the detector over a whole recording.
    public mutating func segments(in audio: AudioBuffer) throws -> [SpeechSegment] {
        guard audio.sampleRate == VoiceActivitySettings.sampleRate else {
            throw VoiceActivityError(
                description: "voice activity detection needs 16000 Hz audio, got \(audio.sampleRate) Hz")
        }
        return accept(audio.samples) + flush()
    }
}
