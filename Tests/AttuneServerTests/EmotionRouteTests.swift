import AttuneServer
import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@Suite struct EmotionRouteTests {
    struct Estimate: Decodable {
        let label: String
        let confidence: Double
        let valence: Double
        let arousal: Double
        let channel: String
        let probabilities: [String: Double]
    }

    @Test func readsTheEmotionInAText() async throws {
        let app = try await TestSupport.application()
        try await app.test(.router) { client in
            let body = ByteBuffer(string: #"{"text": "I'm so scared, I don't know what will happen to us."}"#)
            try await client.execute(uri: "/api/emotion/text", method: .post, body: body) { response in
                #expect(response.status == .ok)
                let estimate = try JSONDecoder().decode(Estimate.self, from: response.body)
                #expect(estimate.label == "fear")
                #expect(estimate.channel == "text")
                #expect(Set(estimate.probabilities.keys) == ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"])
                #expect(estimate.valence < 0)
            }
        }
    }

    @Test func badTextsGetClearErrors() async throws {
        let app = try await TestSupport.application()
        let huge = #"{"text": ""# + String(repeating: "word ", count: 20_000) + #""}"#
        let cases: [(ByteBuffer, HTTPResponse.Status, String)] = [
            (ByteBuffer(string: #"{"text": "   "}"#), .unprocessableContent, "empty"),
            (ByteBuffer(string: "not json"), .badRequest, "JSON"),
            (ByteBuffer(bytes: [0x7B, 0x22, 0x74, 0xFF, 0xFE, 0x7D]), .badRequest, "UTF-8"),
            (ByteBuffer(string: huge), .unprocessableContent, "emotion.max_text_bytes"),
        ]
        try await app.test(.router) { client in
            for (body, status, phrase) in cases {
                try await client.execute(uri: "/api/emotion/text", method: .post, body: body) { response in
                    #expect(response.status == status)
                    let reply = try JSONDecoder().decode(ErrorReply.self, from: response.body)
                    #expect(reply.error.message.contains(phrase), "\(reply.error.message)")
                }
            }
            let emoji = ByteBuffer(string: #"{"text": "😂😂😂"}"#)
            try await client.execute(uri: "/api/emotion/text", method: .post, body: emoji) { #expect($0.status == .ok) }
        }
    }
}
