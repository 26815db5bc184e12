import AttuneCore
import AttuneEmotion
import Foundation
import Hummingbird

/// `POST /api/emotion/text`: `{"text": "..."}` in, the text channel's emotion estimate out.
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

    func addRoutes(to router: Router<some RequestContext>, catalog: RouteCatalog) {
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
