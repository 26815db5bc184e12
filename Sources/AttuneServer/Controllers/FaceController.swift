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

    func addRoutes(to router: Router<some RequestContext>, catalog: RouteCatalog) {
        router.on("/api/process_frame", method: .post, catalog: catalog) { request, _ -> FrameResult in
            var request = request
            let channel = try components.requireFace()
            let data = Data(buffer: try await request.collectBody(upTo: maxBodyBytes))
            guard let body = try? JSONDecoder().decode(FrameRequest.self, from: data), body.isObject else {
                throw HTTPError(.badRequest, message: #"send JSON {"frame": "data:image/jpeg;base64,...", "timestamp": ...}"#)
            }
            let result = try await read(body, channel: channel)
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

    /// Reads a frame; bad frames become 400, 413 or 415.
    private func read(_ request: FrameRequest, channel: FaceChannel) async throws -> FrameResult {
        do {
            return FrameResult(try await channel.read(request.frame), timestamp: request.timestamp ?? Date().timeIntervalSince1970)
        } catch let error as ImageError {
            switch error.kind {
            case .unsupported: throw HTTPError(.unsupportedMediaType, message: "frame refused: \(error)")
            case .tooLarge: throw HTTPError(.contentTooLarge, message: "frame refused: \(error)")
            case .corrupt: throw HTTPError(.badRequest, message: "frame refused: \(error)")
            }
        }
    }
}

/// A frame as the video design's clients send it: `{"frame": "data:image/jpeg;base64,...",
/// "timestamp": …}` (the timestamp a number or a numeric string, optional), or, over Socket.IO,
/// the data URL alone.
struct FrameRequest: Decodable {
    let frame: String
    let timestamp: Double?
    /// Whether it came as an object (the REST route takes nothing else).
    let isObject: Bool

    private enum CodingKeys: String, CodingKey { case frame, timestamp }

    init(from decoder: any Decoder) throws {
        if let bare = try? decoder.singleValueContainer().decode(String.self) {
            (frame, timestamp, isObject) = (bare, nil, false)
            return
        }
        let container = try decoder.container(keyedBy: CodingKeys.self)
        frame = try container.decode(String.self, forKey: .frame)
        if let number = try? container.decodeIfPresent(Double.self, forKey: .timestamp) {
            timestamp = number
        } else {
            timestamp = try container.decodeIfPresent(String.self, forKey: .timestamp).flatMap(Double.init)
        }
        isObject = true
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
                box: face.box.rounded, landmarks: face.landmarks.map(\.rounded), detectionScore: face.score.rounded(to: 3),
                emotion: face.emotion.rawValue, confidence: face.confidence.rounded(to: 4),
                scores: Dictionary(uniqueKeysWithValues: face.scores.map { ($0.key.rawValue, $0.value.rounded(to: 4)) }))
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
        Box(x: x.rounded(to: 1), y: y.rounded(to: 1), width: width.rounded(to: 1), height: height.rounded(to: 1))
    }
}

extension Point {
    var rounded: Point { Point(x: x.rounded(to: 1), y: y.rounded(to: 1)) }
}
