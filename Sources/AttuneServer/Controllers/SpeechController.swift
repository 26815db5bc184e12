import AttuneAgent
import AttuneAudio
import AttuneSpeech
import Foundation
import Hummingbird

/// Speech out and what a session can choose: `POST /api/tts` `{"text", "voice"?, "rate"?}` →
/// WAV; `GET /api/voices`; `GET /api/personas`.
struct SpeechController: Sendable {
    let components: ServerComponents
    let maxBodyBytes: Int

    struct Body: Decodable {
        let text: String
        let voice: String?
        let rate: Double?
    }

    struct Voices: ResponseEncodable {
        let voices: [Voice]
        let defaultVoice: String

        enum CodingKeys: String, CodingKey {
            case voices
            case defaultVoice = "default"
        }
    }

    struct Personas: ResponseEncodable {
        let personas: [Persona]
    }

    func addRoutes(to router: Router<some RequestContext>, catalog: RouteCatalog) {
        router.on("/api/tts", method: .post, catalog: catalog) { request, _ in
            var request = request
            let synthesizer = try requireSynthesizer()
            let data = Data(buffer: try await request.collectBody(upTo: maxBodyBytes))
            guard let body = try? JSONDecoder().decode(Body.self, from: data) else {
                throw HTTPError(.badRequest, message: #"send JSON {"text": "...", "voice": "joe", "rate": 1.0}"#)
            }
            let audio: AudioBuffer
            do {
                audio = try await synthesizer.synthesize(
                    body.text, voice: body.voice ?? components.synthesis.defaultVoice, rate: body.rate ?? components.synthesis.rate)
            } catch let error as SynthesisError {
                throw HTTPError(.unprocessableContent, message: error.description)
            }
            return Response(
                status: .ok, headers: [.contentType: "audio/wav"],
                body: .init(byteBuffer: ByteBuffer(data: WAVFile.encode(audio))))
        }
        router.on("/api/voices", method: .get, catalog: catalog) { _, _ in
            Voices(voices: try requireSynthesizer().voices, defaultVoice: components.synthesis.defaultVoice)
        }
        router.on("/api/personas", method: .get, catalog: catalog) { _, _ in
            Personas(personas: components.personas)
        }
    }

    private func requireSynthesizer() throws -> any SpeechSynthesizing {
        guard let synthesizer = components.synthesizer else {
            throw HTTPError(.serviceUnavailable, message: "speech synthesis is unavailable: \(components.ttsUnavailableReason)")
        }
        return synthesizer
    }
}
