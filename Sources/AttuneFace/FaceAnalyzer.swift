import AttuneCore
import Foundation

/// One face of a frame, as the video API reports it.
public struct FaceReading: Sendable {
    public let box: Box
    public let landmarks: [Point]
    /// The detector's score.
    public let score: Double
    public let scores: [EmotionLabel: Double]

    public var emotion: EmotionLabel { scores.max { $0.value < $1.value }?.key ?? .neutral }
    public var confidence: Double { scores[emotion] ?? 0 }
}

/// What a frame shows: its faces, largest first. The largest is the person's `face` channel.
public struct FrameReading: Sendable {
    public let width: Int
    public let height: Int
    public let faces: [FaceReading]

    public var faceDetected: Bool { !faces.isEmpty }

    /// The face channel's estimate: the largest face's expression, or nil without a face.
    public func estimate(subject: String, time: Double = Date().timeIntervalSince1970) -> EmotionEstimate? {
        faces.first.map { EmotionEstimate(scores: $0.scores, channel: .face, subject: subject, time: time) }
    }
}

/// Frames to faces to expressions: decode (JPEG or PNG, within limits), detect with RetinaFace,
/// cut each face out as the model's training crops were framed, classify its expression.
/// Blocking: run it on a pool.
public final class FaceAnalyzer: Sendable {
    public let decoder: ImageDecoder
    public let detector: RetinaFaceDetector
    public let expression: FaceExpressionModel

    /// How a detected face is cut out for the expression model.
    public enum Framing: String, Sendable, CaseIterable {
        /// Upright, framed from the detection box as FER2013's crops frame faces (the default:
        /// more accurate on camera-sized frames, see BENCHMARKS.md).
        case box
        /// Rotated and scaled by the five landmarks onto their FER2013 positions.
        case landmarks
    }

    public let framing: Framing

    public init(decoder: ImageDecoder, detector: RetinaFaceDetector, expression: FaceExpressionModel, framing: Framing = .box) {
        self.decoder = decoder
        self.detector = detector
        self.expression = expression
        self.framing = framing
    }

    /// Reads a frame's encoded bytes.
    public func read(_ bytes: [UInt8]) throws -> FrameReading {
        try read(try decoder.decode(bytes))
    }

    public func read(_ image: RGBImage) throws -> FrameReading {
        let faces = try detector.detect(image).map { face in
            let crop = switch framing {
            case .box: FaceAligner.crop(image, detectedBox: face.box, size: expression.size)
            case .landmarks: FaceAligner.crop(image, landmarks: face.landmarks, size: expression.size)
            }
            return FaceReading(box: face.box, landmarks: face.landmarks, score: face.score, scores: try expression.probabilities(crop))
        }
        return FrameReading(width: image.width, height: image.height, faces: faces)
    }
}
