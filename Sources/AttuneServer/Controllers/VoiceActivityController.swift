import AttuneAudio
import AttuneCore
import AttuneSpeech
import Foundation
import Hummingbird

/// `POST /api/vad`: an audio file in, the speech segments Silero VAD finds out.
struct VoiceActivityController: Sendable {
    let components: ServerComponents
    let maxBodyBytes: Int

    struct Result: ResponseEncodable {
        let sampleRate: Int
        let durationSeconds: Double
        let segments: [SpeechSegment]

        enum CodingKeys: String, CodingKey {
            case segments
            case sampleRate = "sample_rate"
            case durationSeconds = "duration_s"
        }
    }

    func addRoutes(to router: Router<some RequestContext>, catalog: RouteCatalog) {
        router.on("/api/vad", method: .post, catalog: catalog) { request, _ in
            var request = request
            let body = try await request.collectBody(upTo: maxBodyBytes)
            guard body.readableBytes > 0 else {
                throw HTTPError(.badRequest, message: "empty body: send a WAV file")
            }
            let audio = try await components.decodeUpload(body)
            let model = components.vadModel
            let settings = components.vadSettings
            let segments = try await components.speechPool.run {
                var detector = try SileroVoiceActivityDetector(model: model, settings: settings)
                return try detector.segments(in: audio)
            }
            return Result(sampleRate: audio.sampleRate, durationSeconds: audio.duration, segments: segments)
        }
    }
}
