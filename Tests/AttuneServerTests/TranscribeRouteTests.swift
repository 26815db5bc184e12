import AttuneAudio
import AttuneServer
import AttuneTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// Encodes a RAVDESS clip into another container with ffmpeg (installed by `make test`).
func encoded(_ clip: String, as format: String) throws -> Data {
    let output = TestData.scratch.appendingPathComponent("attune-\(UUID().uuidString).\(format)")
    defer { try? FileManager.default.removeItem(at: output) }
    let codec: [String] = switch format {
    case "ogg": ["-c:a", "libopus"]
    case "webm": ["-c:a", "libopus"]
    case "m4a": ["-c:a", "aac"]
    default: []
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/ffmpeg")
    process.arguments = ["-nostdin", "-loglevel", "error", "-y", "-i", TestData.ravdess(clip).path] + codec + [output.path]
    try process.run()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { throw CocoaError(.fileWriteUnknown) }
    return try Data(contentsOf: output)
}

@Suite struct TranscribeRouteTests {
    struct Result: Decodable {
        struct Segment: Decodable {
            let start: Double
            let end: Double
            let text: String
        }

        let text: String
        let duration_s: Double
        let confidence: Double
        let segments: [Segment]
    }

    @Test(arguments: ["wav", "flac", "ogg", "mp3", "webm", "m4a"])
    func transcribesEveryContainer(format: String) async throws {
        let clip = "03-01-01-01-01-01-01"
        let body = format == "wav" ? try Data(contentsOf: TestData.ravdess(clip)) : try encoded(clip, as: format)
        let app = try await TestSupport.application()
        try await app.test(.router) { client in
            try await client.execute(uri: "/api/transcribe", method: .post, body: ByteBuffer(bytes: body)) { response in
                #expect(response.status == .ok)
                let result = try JSONDecoder().decode(Result.self, from: response.body)
                #expect(result.text.lowercased().contains("kids are talking by the door"), "\(format): \(result.text)")
                #expect(abs(result.duration_s - 3.3) < 0.2)
                #expect(result.confidence > 0.5)
                #expect(result.segments.count >= 1)
            }
        }
    }

    @Test func silenceIsNotTranscribed() async throws {
        var generator = SystemRandomNumberGenerator()
        let noise = (0..<64_000).map { _ in Float.random(in: -0.003...0.003, using: &generator) }
        let wav = WAVFile.encode(AudioBuffer(samples: noise, sampleRate: 16_000))
        let app = try await TestSupport.application()
        try await app.test(.router) { client in
            try await client.execute(uri: "/api/transcribe", method: .post, body: ByteBuffer(bytes: wav)) { response in
                #expect(response.status == .ok)
                let result = try JSONDecoder().decode(Result.self, from: response.body)
                #expect(result.text.isEmpty, "hallucinated: \(result.text)")
            }
        }
    }

    @Test func badUploadsGetClearErrors() async throws {
        let wav = try Data(contentsOf: TestData.ravdess("03-01-01-01-01-01-01"))
        let app = try await TestSupport.application { $0.ffmpegPath = "/nonexistent/ffmpeg" }
        try await app.test(.router) { client in
            let cases: [(Data, HTTPResponse.Status, String)] = [
                (Data("just some text, not audio".utf8), .unsupportedMediaType, "not a supported audio file"),
                (wav.prefix(40), .unsupportedMediaType, "cannot decode"),
                (Data([0x1A, 0x45, 0xDF, 0xA3, 0, 0, 0, 0]), .unsupportedMediaType, "ffmpeg"),
                (Data(), .badRequest, "empty body"),
            ]
            for (body, status, phrase) in cases {
                try await client.execute(uri: "/api/transcribe", method: .post, body: ByteBuffer(bytes: body)) { response in
                    #expect(response.status == status)
                    let reply = try JSONDecoder().decode(ErrorReply.self, from: response.body)
                    #expect(reply.error.message.contains(phrase), "\(reply.error.message)")
                }
            }
            try await client.execute(uri: "/api/transcribe", method: .post, body: ByteBuffer(bytes: wav)) { response in
                #expect(response.status == .ok)
            }
        }
    }
}
