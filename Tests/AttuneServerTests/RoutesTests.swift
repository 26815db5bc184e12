import AttuneServer
import AttuneTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@Suite struct HealthAndMetricsTests {
    struct Health: Decodable {
        struct Component: Decodable {
            let name: String
            let loaded: Bool
            let version: String?
            let load_ms: Double?
        }

        let status: String
        let components: [Component]
    }

    @Test func healthReportsEveryNativeComponentLoaded() async throws {
        let app = try await TestSupport.application()
        try await app.test(.router) { client in
            try await client.execute(uri: "/api/health", method: .get) { response in
                #expect(response.status == .ok)
                let health = try JSONDecoder().decode(Health.self, from: response.body)
                #expect(health.status == "ok")
                let byName = Dictionary(uniqueKeysWithValues: health.components.map { ($0.name, $0) })
                #expect(byName["whisper.cpp"]?.version == "1.8.5")
                #expect(byName["onnxruntime"]?.version == "1.28.2")
                #expect(byName["sherpa-onnx"]?.loaded == true)
                #expect(byName["silero-vad"]?.loaded == true)
                #expect(byName["silero-vad"]?.version == "6.2.3")
                #expect((byName["silero-vad"]?.load_ms ?? 0) > 0)
                #expect(health.components.allSatisfy { $0.loaded && $0.load_ms != nil })
            }
        }
    }

    @Test func healthIsDegradedWhenAModelIsMissing() async throws {
        let app = try await TestSupport.application { $0.modelsDirectory = "/nonexistent" }
        try await app.test(.router) { client in
            try await client.execute(uri: "/api/health", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                let health = try JSONDecoder().decode(Health.self, from: response.body)
                #expect(health.status == "degraded")
                #expect(health.components.first { $0.name == "silero-vad" }?.loaded == false)
            }
        }
    }

    @Test func metricsCountRequestsInPrometheusFormat() async throws {
        let app = try await TestSupport.application()
        try await app.test(.router) { client in
            for _ in 0..<3 {
                try await client.execute(uri: "/api/health", method: .get)
            }
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType]?.hasPrefix("text/plain") == true)
                let text = String(buffer: response.body)
                // Other tests share the process-wide registry, so look for this route's successes.
                let counter = text.split(separator: "\n").first {
                    $0.hasPrefix("hb_requests{") && $0.contains("http_route=\"/api/health\"")
                        && $0.contains("http_request_method=\"GET\"") && $0.contains("http_response_status_code=\"200\"")
                }
                let count = counter.flatMap { Double($0.split(separator: " ").last!) } ?? 0
                #expect(count >= 3)
                #expect(text.contains("# TYPE http_server_request_duration histogram"))
            }
        }
    }

    @Test func servesTheWebPage() async throws {
        let app = try await TestSupport.application()
        try await app.test(.router) { client in
            try await client.execute(uri: "/", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("<title>Attune</title>"))
            }
        }
    }
}

@Suite struct ErrorResponseTests {
    @Test func unknownRoutesGetJSON404() async throws {
        let app = try await TestSupport.application()
        try await app.test(.router) { client in
            try await client.execute(uri: "/api/nothing-here", method: .get) { response in
                #expect(response.status == .notFound)
                #expect(response.headers[.contentType]?.hasPrefix("application/json") == true)
                let reply = try JSONDecoder().decode(ErrorReply.self, from: response.body)
                #expect(reply.error.status == 404)
                #expect(reply.error.message.contains("/api/nothing-here"))
            }
        }
    }

    @Test func wrongMethodGets405WithAllow() async throws {
        let app = try await TestSupport.application()
        try await app.test(.router) { client in
            try await client.execute(uri: "/api/health", method: .post) { response in
                #expect(response.status == .methodNotAllowed)
                #expect(response.headers[.allow] == "GET")
                let reply = try JSONDecoder().decode(ErrorReply.self, from: response.body)
                #expect(reply.error.status == 405)
            }
            try await client.execute(uri: "/api/vad", method: .get) { response in
                #expect(response.status == .methodNotAllowed)
                #expect(response.headers[.allow] == "POST")
            }
        }
    }

    @Test func bodiesOverTheLimitGet413() async throws {
        let app = try await TestSupport.application { $0.maxRequestBodyBytes = 1_000 }
        try await app.test(.router) { client in
            let body = ByteBuffer(repeating: 0, count: 5_000)
            try await client.execute(uri: "/api/vad", method: .post, body: body) { response in
                #expect(response.status == .contentTooLarge)
                let reply = try JSONDecoder().decode(ErrorReply.self, from: response.body)
                #expect(reply.error.message.contains("max_body_bytes"))
            }
            // The server keeps serving after refusing.
            try await client.execute(uri: "/api/health", method: .get) { #expect($0.status == .ok) }
        }
    }
}

@Suite struct VoiceActivityRouteTests {
    struct Result: Decodable {
        struct Segment: Decodable {
            let start: Double
            let end: Double
        }

        let sample_rate: Int
        let duration_s: Double
        let segments: [Segment]
    }

    @Test func findsSpeechInAnUploadedClip() async throws {
        let app = try await TestSupport.application()
        let wav = try Data(contentsOf: TestData.ravdess("03-01-01-01-01-01-01"))
        try await app.test(.router) { client in
            try await client.execute(uri: "/api/vad", method: .post, body: ByteBuffer(bytes: wav)) { response in
                #expect(response.status == .ok)
                let result = try JSONDecoder().decode(Result.self, from: response.body)
                #expect(result.sample_rate == 16_000)
                try #require(result.segments.count == 1)
                #expect(abs(result.segments[0].start - 1.0) < 0.15)
                #expect(abs(result.segments[0].end - 2.35) < 0.2)
            }
        }
    }

    @Test func badUploadsGetClearErrorsAndTheServerGoesOn() async throws {
        let app = try await TestSupport.application()
        try await app.test(.router) { client in
            try await client.execute(uri: "/api/vad", method: .post) { response in
                #expect(response.status == .badRequest)
            }
            try await client.execute(uri: "/api/vad", method: .post, body: ByteBuffer(string: "not audio")) { response in
                #expect(response.status == .unsupportedMediaType)
                let reply = try JSONDecoder().decode(ErrorReply.self, from: response.body)
                #expect(reply.error.message.contains("not a supported audio file"))
            }
            try await client.execute(uri: "/api/health", method: .get) { #expect($0.status == .ok) }
        }
    }
}
