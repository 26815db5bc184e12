import AttuneCore
import AttuneONNX
import Foundation

/// Cuts a face out of an image as the expression models saw faces in training: grayscale,
/// square, with its five landmarks moved (by the similarity transform that fits them best) to
/// where RetinaFace finds them on FER2013's crops.
public enum FaceAligner {
    /// Landmark positions in a FER2013 crop, as fractions of its side: the medians of what
    /// RetinaFace finds on 600 training crops (583 found), made left-right symmetric.
    public static let template: [Point] = [
        Point(x: 0.318, y: 0.391), Point(x: 0.682, y: 0.391), Point(x: 0.5, y: 0.597),
        Point(x: 0.354, y: 0.768), Point(x: 0.646, y: 0.768),
    ]

    /// The face as `size × size` grayscale values in 0…1 (bilinear; outside the image is edge-extended).
    public static func crop(_ image: RGBImage, landmarks: [Point], size: Int) -> [Float] {
        let target = template.map { Point(x: $0.x * Double(size), y: $0.y * Double(size)) }
        return resample(image, size: size, transform: Similarity.fitting(landmarks, to: target).inverse)
    }

    /// Output pixel centres mapped through `transform` (output to image), each output pixel the
    /// mean of n × n bilinear samples spread over its footprint, n the scale rounded up (at most
    /// 8): a camera face is often five times the model's side, and one sample per pixel would alias.
    static func resample(_ image: RGBImage, size: Int, transform: Similarity) -> [Float] {
        let scale = (transform.a * transform.a + transform.b * transform.b).squareRoot()
        let n = min(max(1, Int(scale.rounded(.up))), 8)
        var values = [Float](repeating: 0, count: size * size)
        for v in 0..<size {
            for u in 0..<size {
                var total: Float = 0
                for j in 0..<n {
                    for i in 0..<n {
                        let point = Point(x: Double(u) + (Double(i) + 0.5) / Double(n), y: Double(v) + (Double(j) + 0.5) / Double(n))
                        let source = transform.apply(point)
                        total += sample(image, x: source.x - 0.5, y: source.y - 0.5)
                    }
                }
                values[v * size + u] = total / Float(n * n) / 255
            }
        }
        return values
    }

    /// Where RetinaFace's box lies in a FER2013 crop, as fractions of the crop's side: the
    /// medians over 586 training crops (centre x, centre y, width, height).
    public static let boxInCrop = (centerX: 0.508, centerY: 0.524, width: 0.789, height: 1.02)

    /// The face as `size × size` grayscale values in 0…1, framed from its detection box as
    /// FER2013's crops frame faces (upright; the box's size and centre give the crop's).
    public static func crop(_ image: RGBImage, detectedBox box: Box, size: Int) -> [Float] {
        let side = (box.width / boxInCrop.width + box.height / boxInCrop.height) / 2
        let centerX = box.x + box.width / 2 - (boxInCrop.centerX - 0.5) * side
        let centerY = box.y + box.height / 2 - (boxInCrop.centerY - 0.5) * side
        return crop(image, box: Box(x: centerX - side / 2, y: centerY - side / 2, width: side, height: side), size: size)
    }

    /// A box as a square grayscale crop around its centre (side: the box's longer side).
    public static func crop(_ image: RGBImage, box: Box, size: Int) -> [Float] {
        let side = max(box.width, box.height)
        let (x0, y0) = (box.x + box.width / 2 - side / 2, box.y + box.height / 2 - side / 2)
        let scale = side / Double(size)
        return resample(image, size: size, transform: Similarity(a: scale, b: 0, tx: x0, ty: y0))
    }

    @inline(__always)
    private static func sample(_ image: RGBImage, x: Double, y: Double) -> Float {
        let cx = min(max(x, 0), Double(image.width - 1)), cy = min(max(y, 0), Double(image.height - 1))
        let x0 = Int(cx), y0 = Int(cy)
        let x1 = min(x0 + 1, image.width - 1), y1 = min(y0 + 1, image.height - 1)
        let fx = Float(cx - Double(x0)), fy = Float(cy - Double(y0))
        let top = image.luma(x0, y0) * (1 - fx) + image.luma(x1, y0) * fx
        let bottom = image.luma(x0, y1) * (1 - fx) + image.luma(x1, y1) * fx
        return top * (1 - fy) + bottom * fy
    }
}

/// `p ↦ [a −b; b a]·p + t`: rotation, uniform scale and translation.
struct Similarity {
    var a: Double, b: Double, tx: Double, ty: Double

    func apply(_ p: Point) -> Point {
        Point(x: a * p.x - b * p.y + tx, y: b * p.x + a * p.y + ty)
    }

    var inverse: Similarity {
        let norm = a * a + b * b
        let (ia, ib) = (a / norm, -b / norm)
        return Similarity(a: ia, b: ib, tx: -(ia * tx - ib * ty), ty: -(ib * tx + ia * ty))
    }

    /// The least-squares similarity taking `source` points to `target` points.
    static func fitting(_ source: [Point], to target: [Point]) -> Similarity {
        let n = Double(source.count)
        let (sx, sy) = (source.map(\.x).reduce(0, +) / n, source.map(\.y).reduce(0, +) / n)
        let (dx, dy) = (target.map(\.x).reduce(0, +) / n, target.map(\.y).reduce(0, +) / n)
        var (dot, cross, norm) = (0.0, 0.0, 0.0)
        for (s, d) in zip(source, target) {
            let (px, py, qx, qy) = (s.x - sx, s.y - sy, d.x - dx, d.y - dy)
            dot += px * qx + py * qy
            cross += px * qy - py * qx
            norm += px * px + py * py
        }
        guard norm > 1e-9 else { return Similarity(a: 1, b: 0, tx: dx - sx, ty: dy - sy) }
        let (a, b) = (dot / norm, cross / norm)
        return Similarity(a: a, b: b, tx: dx - (a * sx - b * sy), ty: dy - (b * sx + a * sy))
    }
}

/// A facial expression classifier on ONNX Runtime. Any model of this signature plugs in
/// (`face.model_path`): one float input [N, 1, S, S], an aligned grayscale face in 0…1 (S is
/// read from the model; the bundled one takes 48); one float output [N, 7] of scores in
/// Attune's class order (probabilities, or logits that get a softmax here). Each face is read together with
/// its mirror image and the two readings averaged (+0.018 accuracy on FER2013 PublicTest).
public final class FaceExpressionModel: Sendable {
    public let path: URL
    /// The side of the square face the model reads.
    public let size: Int
    private let model: OnnxModel
    private let inputName: String
    private let outputName: String

    public static var bundledModel: URL? { Bundle.module.url(forResource: "face-expression", withExtension: "onnx") }

    public init(path: URL? = nil, threads: Int = 1) throws {
        guard let path = path ?? Self.bundledModel else { throw OnnxError(message: "the bundled face-expression.onnx is missing from the build") }
        let model = try OnnxModel(path: path, threads: threads)
        guard model.inputs.count == 1, let input = model.inputs.first, input.element == .float, input.shape.count == 4,
            input.shape[1] == 1, let side = input.shape[2], side > 0, input.shape[3] == side
        else {
            throw OnnxError(message: "\(path.path) is not a face expression model: it needs one float input [N, 1, S, S]; it has \(model.inputs.map(\.description).joined(separator: "; "))")
        }
        guard let output = model.outputs.first(where: { $0.element == .float && $0.shape.count == 2 && ($0.shape[1] == 7 || $0.shape[1] == nil) }) else {
            throw OnnxError(message: "\(path.path) is not a face expression model: it needs a float output [N, 7]; it has \(model.outputs.map(\.description).joined(separator: "; "))")
        }
        self.path = path
        self.model = model
        size = side
        inputName = input.name
        outputName = output.name
    }

    /// The seven probabilities of an aligned `size × size` face (values in 0…1).
    public func probabilities(_ face: [Float]) throws -> [EmotionLabel: Double] {
        precondition(face.count == size * size, "a face crop holds size × size values")
        var mirrored = face
        for row in 0..<size {
            mirrored[(row * size)..<((row + 1) * size)].reverse()
        }
        let result = try model.run([inputName: FloatTensor(shape: [2, 1, size, size], values: face + mirrored)], outputs: [outputName])
        guard let scores = result[outputName]?.values, scores.count == 14 else {
            throw OnnxError(message: "\(path.lastPathComponent): output \(outputName) did not hold 7 scores per face")
        }
        let averaged = zip(Self.probabilities(scores[0..<7]), Self.probabilities(scores[7..<14])).map { ($0 + $1) / 2 }
        return Dictionary(uniqueKeysWithValues: zip(EmotionLabel.allCases, averaged))
    }

    /// Scores as probabilities: kept (normalised) when they already are, otherwise a softmax of logits.
    static func probabilities(_ scores: ArraySlice<Float>) -> [Double] {
        let values = scores.map(Double.init)
        let total = values.reduce(0, +)
        if values.allSatisfy({ $0 >= 0 }), abs(total - 1) < 0.01 { return values.map { $0 / total } }
        let top = values.max() ?? 0
        let exps = values.map { exp($0 - top) }
        let sum = exps.reduce(0, +)
        return exps.map { $0 / sum }
    }
}
