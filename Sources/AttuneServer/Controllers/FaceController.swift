import AttuneCore
import AttuneFace
import Foundation
import Hummingbird
import Synchronization

/// The video API of the design Attune's face channel comes from:
/// `POST /api/process_frame` `{"frame": "data:image/jpeg;base64,...", "timestamp": ...}` reads a
/// camera frame; `GET /api/emotion` returns the latest reading.
struct FaceController: Sendable {
    let components: ServerComponents
    let maxBodyBytes: Int

    struct Body: Decodable {
        let frame: String
        let timestamp: JSONNumberOrString?
    }

    func addRoutes(to router: Router<some RequestContext>, catalog: RouteCatalog) {
        router.on("/api/process_frame", method: .post, catalog: catalog) { request, _ -> FrameResult in
            var request = request
            let analyzer = try components.requireFace()
            let data = Data(buffer: try await request.collectBody(upTo: maxBodyBytes))
            let body: Body
            do {
                body = try JSONDecoder().decode(Body.self, from: data)
            } catch {
                throw HTTPError(.badRequest, message: #"send JSON {"frame": "data:image/jpeg;base64,...", "timestamp": ...}"#)
            }
            let result = try await read(body.frame, timestamp: body.timestamp?.value, analyzer: analyzer)
            components.latestFrame.set(result)
            return result
        }

        router.on("/api/emotion", method: .get, catalog: catalog) { _, _ -> FrameResult in
            guard let latest = components.latestFrame.value else {
                throw HTTPError(.notFound, message: "no frame has been processed yet; POST one to /api/process_frame")
            }
            return latest
        }
    }

    /// Reads a frame given as a data URL or base64; bad frames become 400, 413 or 415.
    func read(_ frame: String, timestamp: Double?, analyzer: FaceAnalyzer) async throws -> FrameResult {
        do {
            let bytes = try analyzer.decoder.frameBytes(frame)
            let reading = try await components.readFrame(bytes, analyzer: analyzer)
            return FrameResult(reading, timestamp: timestamp ?? Date().timeIntervalSince1970)
        } catch let error as ImageError {
            switch error.kind {
            case .unsupported: throw HTTPError(.unsupportedMediaType, message: "frame refused: \(error)")
            case .tooLarge: throw HTTPError(.contentTooLarge, message: "frame refused: \(error)")
            case .corrupt: throw HTTPError(.badRequest, message: "frame refused: \(error)")
            }
        }
    }
}

/// A `timestamp` as the design's clients send it: a number (milliseconds or seconds) or a string.
struct JSONNumberOrString: Decodable {
    let value: Double?

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let number = try? container.decode(Double.self) {
            value = number
        } else {
            value = Double(try container.decode(String.self))
        }
    }
}

/// One frame's reading, as the video API returns it: the largest face's `emotion` and
/// `confidence` (null and 0 without a face), `face_detected`, every face, and the frame's `timestamp`.
struct FrameResult: ResponseEncodable, Sendable {
    struct Face: Encodable, Sendable {
        let box: Box
        let landmarks: [Point]
        let detectionScore: Double
        let emotion: String
        let confidence: Double
        let scores: [String: Double]

        enum CodingKeys: String, CodingKey {
            case box, landmarks, emotion, confidence, scores
            case detectionScore = "detection_score"
        }
    }

    let emotion: String?
    let confidence: Double
    let faceDetected: Bool
    let faces: [Face]
    let width: Int
    let height: Int
    let timestamp: Double

    init(_ reading: FrameReading, timestamp: Double) {
        faces = reading.faces.map { face in
            Face(
                box: face.box.rounded, landmarks: face.landmarks.map(\.rounded), detectionScore: (face.score * 1_000).rounded() / 1_000,
                emotion: face.emotion.rawValue, confidence: (face.confidence * 10_000).rounded() / 10_000,
                scores: Dictionary(uniqueKeysWithValues: face.scores.map { ($0.key.rawValue, ($0.value * 10_000).rounded() / 10_000) }))
        }
        emotion = faces.first?.emotion
        confidence = faces.first?.confidence ?? 0
        faceDetected = !faces.isEmpty
        width = reading.width
        height = reading.height
        self.timestamp = timestamp
    }

    enum CodingKeys: String, CodingKey {
        case emotion, confidence, faces, width, height, timestamp
        case faceDetected = "face_detected"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(emotion, forKey: .emotion)  // null, not absent, without a face
        try container.encode(confidence, forKey: .confidence)
        try container.encode(faceDetected, forKey: .faceDetected)
        try container.encode(faces, forKey: .faces)
        try container.encode(width, forKey: .width)
        try container.encode(height, forKey: .height)
        try container.encode(timestamp, forKey: .timestamp)
    }
}

/// The latest frame reading of the server, for `GET /api/emotion`.
final class LatestFrame: Sendable {
    private let latest = Mutex<FrameResult?>(nil)
    func set(_ result: FrameResult) { latest.withLock { $0 = result } }
    var value: FrameResult? { latest.withLock { $0 } }
}

extension Box {
    /// To a tenth of a pixel.
    var rounded: Box {
        Box(x: (x * 10).rounded() / 10, y: (y * 10).rounded() / 10, width: (width * 10).rounded() / 10, height: (height * 10).rounded() / 10)
    }
}

extension Point {
    var rounded: Point { Point(x: (x * 10).rounded() / 10, y: (y * 10).rounded() / 10) }
}
