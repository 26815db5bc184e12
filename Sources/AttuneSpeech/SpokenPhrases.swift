import AttuneAudio
import Foundation
import Synchronization

/// A synthesizer that keeps the speech of short phrases it has made (the replies' openers and
/// repairs: "Oh, I'm so sorry."), so that saying one again costs nothing. Longer texts pass
/// straight through. The cache holds at most `capacity` phrases; when full, the phrase used
/// least recently goes.
public final class SpokenPhrases: SpeechSynthesizing {
    private struct Key: Hashable {
        let text: String
        let voice: String
        let rate: Double
    }
    private struct Cache {
        var audio: [Key: AudioBuffer] = [:]
        /// Keys from least to most recently used.
        var order: [Key] = []

        mutating func use(_ key: Key) -> AudioBuffer? {
            guard let kept = audio[key] else { return nil }
            order.removeAll { $0 == key }
            order.append(key)
            return kept
        }

        mutating func keep(_ buffer: AudioBuffer, for key: Key, capacity: Int) {
            if audio.updateValue(buffer, forKey: key) == nil { order.append(key) }
            while order.count > capacity { audio.removeValue(forKey: order.removeFirst()) }
        }
    }

    private let base: any SpeechSynthesizing
    /// Most phrases kept (`tts.cached_phrases`; 0 keeps none).
    public let capacity: Int
    /// Longest text kept, in characters (`tts.cached_phrase_characters`).
    public let maxCharacters: Int
    private let cache = Mutex(Cache())

    public init(_ base: any SpeechSynthesizing, capacity: Int, maxCharacters: Int) {
        self.base = base
        self.capacity = capacity
        self.maxCharacters = maxCharacters
    }

    public var voices: [Voice] { base.voices }

    public func synthesize(_ text: String, voice: String, rate: Double) async throws -> AudioBuffer {
        let key = Key(text: text.trimmingCharacters(in: .whitespacesAndNewlines), voice: voice, rate: rate)
        guard capacity > 0, key.text.count <= maxCharacters else {
            return try await base.synthesize(text, voice: voice, rate: rate)
        }
        if let kept = cache.withLock({ $0.use(key) }) { return kept }
        let audio = try await base.synthesize(text, voice: voice, rate: rate)
        cache.withLock { $0.keep(audio, for: key, capacity: capacity) }
        return audio
    }

    /// Phrases kept now.
    public var count: Int { cache.withLock { $0.audio.count } }

    /// Synthesises `phrases` not kept yet, one after another (a failure is skipped: the phrase
    /// is synthesised, or fails, again when it is said). Stops when the calling task is cancelled.
    public func prepare(_ phrases: [String], voice: String, rate: Double) async {
        for phrase in phrases {
            guard !Task.isCancelled else { return }
            _ = try? await synthesize(phrase, voice: voice, rate: rate)
        }
    }
}
