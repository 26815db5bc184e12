import AttuneAudio
import AttuneSpeech
import AttuneTestSupport
import Foundation
import Synchronization
import Testing

/// The phrase cache in front of the real Piper voice.
@Suite struct SpokenPhrasesTests {
    /// The Piper synthesizer, counting the texts it is asked to speak.
    final class CountingSynthesizer: SpeechSynthesizing {
        let piper: SpeechSynthesizer
        let asked = Mutex<[String]>([])

        init() throws {
            piper = try SpeechSynthesizer(piperDirectory: TestData.models.appendingPathComponent("piper-en_US-joe-medium"))
        }

        var voices: [Voice] { piper.voices }

        func synthesize(_ text: String, voice: String, rate: Double) async throws -> AudioBuffer {
            asked.withLock { $0.append(text) }
            return try await piper.synthesize(text, voice: voice, rate: rate)
        }
    }

    /// Runs `body` with a fresh counting synthesizer and stops its worker in every outcome.
    func withPiper(_ body: (CountingSynthesizer) async throws -> Void) async throws {
        let counting = try CountingSynthesizer()
        do {
            try await body(counting)
        } catch {
            try await counting.piper.pool.shutdown()
            throw error
        }
        try await counting.piper.pool.shutdown()
    }

    @Test func aKeptPhraseIsSaidAgainWithoutSynthesis() async throws {
        try await withPiper { counting in
        let phrases = SpokenPhrases(counting, capacity: 2, maxCharacters: 30)
        let first = try await phrases.synthesize("Oh, I'm so sorry.", voice: "joe", rate: 1)
        #expect(first.duration > 0.5)
        #expect(try await phrases.synthesize("Oh, I'm so sorry.", voice: "joe", rate: 1) == first)
        #expect(counting.asked.withLock { $0 } == ["Oh, I'm so sorry."])
        // Another voice or rate is another phrase.
        _ = try await phrases.synthesize("Oh, I'm so sorry.", voice: "joe", rate: 1.5)
        #expect(counting.asked.withLock { $0.count } == 2)
        }
    }

    @Test func theCacheStaysWithinItsLimits() async throws {
        try await withPiper { counting in
        let phrases = SpokenPhrases(counting, capacity: 2, maxCharacters: 30)
        await phrases.prepare(["Okay.", "Oh.", "Oh, wow!"], voice: "joe", rate: 1)
        #expect(phrases.count == 2)
        // The least recently used ("Okay.") went; the two newest are kept.
        _ = try await phrases.synthesize("Oh, wow!", voice: "joe", rate: 1)
        _ = try await phrases.synthesize("Oh.", voice: "joe", rate: 1)
        _ = try await phrases.synthesize("Okay.", voice: "joe", rate: 1)
        #expect(counting.asked.withLock { $0 } == ["Okay.", "Oh.", "Oh, wow!", "Okay."])
        // A text longer than the limit is spoken but not kept.
        let long = "This sentence is longer than thirty characters."
        _ = try await phrases.synthesize(long, voice: "joe", rate: 1)
        _ = try await phrases.synthesize(long, voice: "joe", rate: 1)
        #expect(counting.asked.withLock { $0.filter { $0 == long }.count } == 2)
        #expect(phrases.count == 2)
        // Nothing is kept with a capacity of 0, and a failed synthesis is not kept either.
        let none = SpokenPhrases(counting, capacity: 0, maxCharacters: 30)
        _ = try await none.synthesize("Okay.", voice: "joe", rate: 1)
        #expect(none.count == 0)
        await #expect(throws: SynthesisError.self) { try await phrases.synthesize("Okay.", voice: "nobody", rate: 1) }
        }
    }
}
