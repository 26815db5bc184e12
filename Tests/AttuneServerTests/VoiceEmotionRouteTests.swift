import AttuneAudio
import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import AttuneServer

/// `POST /api/emotion/audio` on the default voice model.
@Suite struct VoiceEmotionRouteTests {
    @Test func aClipGetsTheVoiceOfTheWholeAndOfEachChunk() async throws {
        let speech = try ravdessSamples("03-01-05-02-02-01-02")
        let app = try await TestSupport.application()
        try await app.test(.router) { client in
            try await client.execute(
                uri: "/api/emotion/audio", method: .post, body: ByteBuffer(data: WAVFile.encode(AudioBuffer(samples: speech, sampleRate: 16_000)))
            ) { response in
                #expect(response.status == .ok)
                let body = try #require(try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any])
                #expect(abs((body["duration_s"] as? Double ?? 0) - Double(speech.count) / 16_000) < 0.01)
                let whole = try #require(body["whole"] as? [String: Any])
                #expect(whole["channel"] as? String == "voice")
                let chunks = try #require(body["chunks"] as? [[String: Any]])
                #expect(!chunks.isEmpty)
                for chunk in chunks {
                    let (start, end) = (chunk["start"] as? Double ?? -1, chunk["end"] as? Double ?? -1)
                    #expect(start >= 0 && end > start && end - start <= 1.5 + 1e-9)
                    #expect((chunk["estimate"] as? [String: Any])?["label"] != nil)
                }
            }
            // Silence says nothing; a file that is not audio is refused.
            let silence = AudioBuffer(samples: [Float](repeating: 0, count: 32_000), sampleRate: 16_000)
            try await client.execute(uri: "/api/emotion/audio", method: .post, body: ByteBuffer(data: WAVFile.encode(silence))) { response in
                #expect(response.status == .ok)
                let body = try #require(try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any])
                #expect(body["whole"] is NSNull && (body["chunks"] as? [Any])?.isEmpty == true)
            }
            try await client.execute(uri: "/api/emotion/audio", method: .post, body: ByteBuffer(string: "not audio at all")) { response in
                #expect(response.status == .unsupportedMediaType)
            }
        }
    }
}
