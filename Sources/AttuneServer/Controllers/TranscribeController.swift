import AttuneAudio
import AttuneCore
import AttuneSpeech
import Foundation
import Hummingbird

/// `POST /api/transcribe`: a whole audio file in, its text and timed segments out.
struct TranscribeController: Sendable {
    let components: ServerComponents
    let maxBodyBytes: Int

    struct Result: ResponseEncodable {
        let text: String
        let durationSeconds: Double
        let confidence: Double
        let segments: [TranscriptSegment]

        enum CodingKeys: String, CodingKey {
            case text, confidence, segments
            case durationSeconds = "duration_s"
        }
    }

    func addRoutes(to router: Router<some RequestContext>, catalog: RouteCatalog) {
        router.on("/api/transcribe", method: .post, catalog: catalog) { request, _ in
            var request = request
            let transcriber = try components.requireTranscriber()
            let audio = try await components.decodeUpload(try await request.collectBody(upTo: maxBodyBytes))
            let transcript = try await transcriber.transcribe(audio.samples, pass: .final)
            return Result(
                text: transcript.text, durationSeconds: audio.duration,
                confidence: transcript.confidence, segments: transcript.segments)
        }
    }
}
