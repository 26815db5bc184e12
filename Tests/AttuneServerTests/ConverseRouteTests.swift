import AsyncHTTPClient
import AttuneAudio
import AttuneBench
import AttuneServer
import AttuneTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import NIOHTTP1
import Testing

/// Upload and reply: `POST /api/converse` with a real recorded clip and with typed text, through
/// Whisper, the emotion models, the embedded LLM, Piper and the history database.
@Suite(.serialized) struct ConverseRouteTests {
    static func json(_ response: TestResponse) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any], "\(String(buffer: response.body))")
    }

    static func body(_ object: [String: Any]) throws -> ByteBuffer {
        ByteBuffer(data: try JSONSerialization.data(withJSONObject: object))
    }

    static let jsonHeaders: HTTPFields = [.contentType: "application/json"]

    /// A request that waits for the language model: the live test client gives up after 20 s,
    /// which a loaded machine's reply can take, so these go through AsyncHTTPClient with a
    /// generous deadline.
    static func converse(port: Int, _ uri: String, json: Bool = false, body: ByteBuffer) async throws -> (HTTPResponseStatus, [String: Any]) {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(uri)")
        request.method = .POST
        if json { request.headers.add(name: "Content-Type", value: "application/json") }
        request.body = .bytes(body)
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(180))
        let data = try await response.body.collect(upTo: 16 << 20)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(buffer: data)) as? [String: Any], "\(String(buffer: data))")
        return (response.status, object)
    }

    @Test func aRecordedClipGetsTranscriptEmotionReplyAndSpeechAndTheSessionGoesOn() async throws {
        let clip = try Data(contentsOf: TestData.ravdess("03-01-01-01-01-01-01"))
        let app = try await TestSupport.application { $0.llmEmbedded = true }
        try await app.test(.live) { client in
            _ = try await ReplyTests().waitForLLM(client)
            let port = try #require(client.port)

            // 1. A WAV upload: what Whisper heard, the emotion of words and voice, the reply and its audio URL.
            let (firstStatus, first) = try await Self.converse(port: port, "/api/converse?persona=companion", body: ByteBuffer(data: clip))
            #expect(firstStatus == .ok)
            let transcript = try #require(first["transcript"] as? String)
            #expect(transcript.lowercased().contains("kids are talking"), "\(transcript)")
            let emotion = try #require(first["emotion"] as? [String: Any])
            #expect(Set((emotion["probabilities"] as? [String: Double] ?? [:]).keys) == ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"])
            #expect(emotion["channel"] as? String == "fused")
            let channels = try #require(first["emotions"] as? [String: Any])
            #expect(Set(channels.keys) == ["text", "voice"])
            let reply = try #require(first["reply"] as? String)
            #expect(!reply.isEmpty)
            #expect((first["warnings"] as? [String])?.isEmpty == true, "\(first["warnings"] ?? "")")
            let session = try #require(first["session_id"] as? String)
            let audio = try #require(first["audio"] as? [String: Any])
            let url = try #require(audio["url"] as? String)
            #expect(audio["format"] as? String == "wav" && audio["sample_rate"] as? Int == 22_050)
            let wav = try await client.execute(uri: url, method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "audio/wav")
                return Data(buffer: response.body)
            }
            // The spoken reply says the reply text (Whisper reads it back).
            let spoken = try AudioFileDecoder().decode(wav)
            #expect(abs(spoken.duration - (audio["duration_s"] as? Double ?? 0)) < 0.01)
            let heard = try await ReplyTests().transcribe(spoken, client: client)
            let (errors, words) = WordErrorRate.errors(reference: reply, hypothesis: heard)
            #expect(Double(errors) / Double(max(words, 1)) < 0.5, "said \(reply), heard \(heard)")

            // 2. Typed text continues the same session, audio inline as base64.
            let (secondStatus, second) = try await Self.converse(
                port: port, "/api/converse", json: true,
                body: try Self.body(["text": "I just passed my driving test!", "session_id": session, "audio": "base64"]))
            #expect(secondStatus == .ok)
            #expect(second["session_id"] as? String == session)
            #expect(second["transcript"] as? String == "I just passed my driving test!")
            #expect((second["emotion"] as? [String: Any])?["label"] as? String == "joy")
            let inline = try #require((second["audio"] as? [String: Any])?["data"] as? String)
            #expect(inline.hasPrefix("data:audio/wav;base64,"))
            let decoded = try #require(Data(base64Encoded: String(inline.dropFirst("data:audio/wav;base64,".count))))
            #expect(try AudioFileDecoder().decode(decoded).duration > 0.3)

            // 3. The history holds both turns in one session, numbered in order.
            try await client.execute(uri: "/api/sessions/\(session)", method: .get) { response in
                #expect(response.status == .ok)
                let turns = try Self.json(response)["turns"] as? [[String: Any]] ?? []
                #expect(turns.map { $0["index"] as? Int } == [1, 2], "\(turns)")
                #expect(turns.first?["userText"] as? String == transcript)
                #expect(turns.last?["replyText"] as? String == second["reply"] as? String)
            }
        }
    }

    @Test func badRequestsGetClearErrorsAndTheApologyStillSpeaks() async throws {
        let app = try await TestSupport.application {
            $0.llm.baseURL = "http://127.0.0.1:9/v1"
            $0.llm.connectTimeout = 1
        }
        try await app.test(.live) { client in
            func status(_ uri: String, json: [String: Any]? = nil, raw: [UInt8]? = nil) async throws -> (HTTPResponse.Status, String) {
                let body = try json.map(Self.body) ?? ByteBuffer(bytes: raw ?? [])
                return try await client.execute(uri: uri, method: .post, headers: json == nil ? [:] : Self.jsonHeaders, body: body) {
                    ($0.status, String(buffer: $0.body))
                }
            }
            #expect(try await status("/api/converse", json: ["persona": "companion"]).0 == .badRequest)
            #expect(try await status("/api/converse", json: ["text": "   "]).0 == .badRequest)
            let persona = try await status("/api/converse", json: ["text": "hello", "persona": "pirate"])
            #expect(persona.0 == .badRequest && persona.1.contains("companion"), "\(persona)")
            #expect(try await status("/api/converse", json: ["text": "hello", "session_id": "no such session"]).0 == .badRequest)
            #expect(try await status("/api/converse", json: ["text": "hello", "session_id": "missing-session"]).0 == .notFound)
            #expect(try await status("/api/converse", json: ["text": String(repeating: "a", count: 5_000)]).0 == .contentTooLarge)
            #expect(try await status("/api/converse?audio=mp4", raw: [1, 2, 3]).0 == .badRequest)
            #expect(try await status("/api/converse", raw: Array("not audio at all".utf8)).0 == .unsupportedMediaType)
            #expect(try await status("/api/converse", raw: []).0 == .badRequest)
            // A second of silence has no words to answer.
            let silence = WAVFile.encode(AudioBuffer(samples: [Float](repeating: 0, count: 16_000), sampleRate: 16_000))
            #expect(try await status("/api/converse", raw: [UInt8](silence)).0 == .unprocessableContent)
            try await client.execute(uri: "/api/converse/audio/unknown.wav", method: .get) { #expect($0.status == .notFound) }

            // Without the language model the person still hears the apology, and is told why.
            let apology = try await client.execute(
                uri: "/api/converse", method: .post, headers: Self.jsonHeaders, body: try Self.body(["text": "How are you today?"])
            ) { response in
                #expect(response.status == .ok)
                return try Self.json(response)
            }
            #expect((apology["reply"] as? String)?.hasSuffix(ReplySettings().apology) == true, "\(apology["reply"] ?? "")")
            #expect((apology["warnings"] as? [String] ?? []).contains { $0.contains("language model") })
            #expect(apology["audio"] is [String: Any])
        }
    }
}
