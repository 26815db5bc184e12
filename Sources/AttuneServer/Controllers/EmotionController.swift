import AttuneCore
import AttuneEmotion
import AttuneVoice
import Foundation
import Hummingbird

/// `POST /api/emotion/text`: `{"text": "..."}` in, the text channel's emotion estimate out.
/// `POST /api/emotion/audio`: an audio file in, the voice channel's estimate of the whole clip
/// and of each `rooms.chunk_seconds` chunk out.
struct EmotionController: Sendable {
    let components: ServerComponents
    let maxBodyBytes: Int

    struct Body: Decodable {
        let text: String
    }

    struct Estimate: ResponseEncodable {
        let estimate: EmotionEstimate

        func encode(to encoder: any Encoder) throws {
            try estimate.encode(to: encoder)
        }
    }

    struct AudioEmotion: ResponseEncodable {
        let reading: VoiceReading

        func encode(to encoder: any Encoder) throws {
            try reading.encode(to: encoder)
        }
    }

    func addRoutes(to router: Router<some RequestContext>, catalog: RouteCatalog) {
        router.on("/api/emotion/audio", method: .post, catalog: catalog) { request, _ in
            var request = request
            guard let model = components.voiceEmotion else {
                let reason = components.statuses.first { $0.name == "voice-emotion" }?.error ?? "not loaded"
                throw HTTPError(.serviceUnavailable, message: "voice emotion is unavailable: \(reason)")
            }
            let audio = try await components.decodeUpload(try await request.collectBody(upTo: maxBodyBytes))
            let chunkSeconds = components.roomSettings.chunkSeconds
            let samples = audio.samples
            return AudioEmotion(reading: try await components.voicePool.run { try model.read(samples, chunkSeconds: chunkSeconds) })
        }

        router.on("/api/emotion/text", method: .post, catalog: catalog) { request, _ in
            var request = request
            let model = try components.requireTextEmotion()
            let data = Data(buffer: try await request.collectBody(upTo: maxBodyBytes))
            guard String(data: data, encoding: .utf8) != nil else {
                throw HTTPError(.badRequest, message: "the body is not valid UTF-8")
            }
            guard let body = try? JSONDecoder().decode(Body.self, from: data) else {
                throw HTTPError(.badRequest, message: #"send JSON {"text": "..."}"#)
            }
            do {
                let estimate = try await components.emotionPool.run { try model.estimate(body.text, subject: "request") }
                return Estimate(estimate: estimate)
            } catch let error as TextEmotionError {
                throw HTTPError(.unprocessableContent, message: error.description)
            }
        }
    }
}
