import AttuneONNX
import Foundation

/// A point in image pixels.
public struct Point: Codable, Sendable, Equatable {
    public var x: Double
    public var y: Double

    public init(x: Double, y: Double) {
        self.x = x
        self.y = y
    }
}

/// A box in image pixels: its top-left corner and size.
public struct Box: Codable, Sendable, Equatable {
    public var x: Double
    public var y: Double
    public var width: Double
    public var height: Double

    public init(x: Double, y: Double, width: Double, height: Double) {
        self.x = x
        self.y = y
        self.width = width
        self.height = height
    }

    public var area: Double { max(0, width) * max(0, height) }

    func intersectionOverUnion(_ other: Box) -> Double {
        let width = min(x + self.width, other.x + other.width) - max(x, other.x)
        let height = min(y + self.height, other.y + other.height) - max(y, other.y)
        guard width > 0, height > 0 else { return 0 }
        let overlap = width * height
        return overlap / (area + other.area - overlap)
    }
}

/// A face found in an image: its box, the detector's score and five landmarks (the eye on the
/// image's left, the other eye, the nose tip, the mouth corner on the image's left, the other).
public struct DetectedFace: Sendable, Equatable {
    public let box: Box
    public let score: Double
    public let landmarks: [Point]
}

/// Settings of face detection.
public struct FaceDetectionSettings: Sendable, Equatable {
    /// Lowest detector score that counts as a face (`face.min_score`).
    public var minScore = 0.8
    /// Overlap (IoU) above which the weaker of two boxes is dropped (`face.nms_threshold`).
    public var nmsThreshold = 0.4
    /// Frames are scaled down so that their longer side is at most this many pixels before
    /// detection (`face.detect_max_side`); boxes are reported in the frame's own pixels.
    public var maxSide = 640
    /// Most faces reported per frame, largest first (`face.max_faces`).
    public var maxFaces = 5

    public init() {}
}

/// RetinaFace (MobileNet-0.25 backbone) on ONNX Runtime: any input size; outputs, for every
/// prior box of strides 8, 16 and 32 (two sizes each), box offsets `loc` [1, A, 4], class
/// probabilities `conf` [1, A, 2] and landmark offsets `landmarks` [1, A, 10], decoded here
/// as in RetinaFace (centre variance 0.1, size variance 0.2), then thresholded and suppressed.
/// The input is BGR minus the channel means (104, 117, 127), NCHW.
public final class RetinaFaceDetector: Sendable {
    public let path: URL
    public let settings: FaceDetectionSettings
    private let model: OnnxModel
    private static let strides = [8, 16, 32]
    private static let anchorSizes: [[Double]] = [[16, 32], [64, 128], [256, 512]]
    private static let means: [Float] = [104, 117, 127]  // B, G, R

    public init(path: URL, settings: FaceDetectionSettings = .init(), threads: Int = 1) throws {
        let model = try OnnxModel(path: path, threads: threads)
        try model.expect(
            inputs: [TensorSpec("input", shape: [nil, 3, nil, nil])],
            outputs: [
                TensorSpec("loc", shape: [nil, nil, 4]), TensorSpec("conf", shape: [nil, nil, 2]),
                TensorSpec("landmarks", shape: [nil, nil, 10]),
            ])
        self.model = model
        self.path = path
        self.settings = settings
    }

    /// The faces in `image`, largest first, at most `settings.maxFaces`.
    public func detect(_ image: RGBImage) throws -> [DetectedFace] {
        let scale = min(1, Double(settings.maxSide) / Double(max(image.width, image.height)))
        let width = max(1, Int((Double(image.width) * scale).rounded()))
        let height = max(1, Int((Double(image.height) * scale).rounded()))
        let input = Self.tensor(image, width: width, height: height)
        let outputs = try model.run(["input": input], outputs: ["loc", "conf", "landmarks"])
        guard let loc = outputs["loc"]?.values, let conf = outputs["conf"]?.values, let marks = outputs["landmarks"]?.values else {
            throw OnnxError(message: "\(path.lastPathComponent) gave no detections")
        }
        var candidates: [DetectedFace] = []
        var index = 0
        for (stride, sizes) in zip(Self.strides, Self.anchorSizes) {
            let columns = (width + stride - 1) / stride
            let rows = (height + stride - 1) / stride
            for row in 0..<rows {
                for column in 0..<columns {
                    for size in sizes {
                        defer { index += 1 }
                        guard index * 2 + 1 < conf.count else { continue }
                        let score = Double(conf[index * 2 + 1])
                        guard score >= settings.minScore else { continue }
                        // The prior, in input pixels.
                        let cx = (Double(column) + 0.5) * Double(stride)
                        let cy = (Double(row) + 0.5) * Double(stride)
                        let d = loc[(index * 4)..<(index * 4 + 4)].map(Double.init)
                        let centerX = cx + size * d[0] * 0.1
                        let centerY = cy + size * d[1] * 0.1
                        let boxWidth = size * exp(d[2] * 0.2)
                        let boxHeight = size * exp(d[3] * 0.2)
                        let points = (0..<5).map { point in
                            Point(
                                x: (cx + size * Double(marks[index * 10 + point * 2]) * 0.1) / scale,
                                y: (cy + size * Double(marks[index * 10 + point * 2 + 1]) * 0.1) / scale)
                        }
                        candidates.append(DetectedFace(
                            box: Box(x: (centerX - boxWidth / 2) / scale, y: (centerY - boxHeight / 2) / scale, width: boxWidth / scale, height: boxHeight / scale),
                            score: score, landmarks: points))
                    }
                }
            }
        }
        return Array(Self.suppress(candidates, threshold: settings.nmsThreshold)
            .map { $0.clipped(width: image.width, height: image.height) }
            .sorted { $0.box.area > $1.box.area }
            .prefix(settings.maxFaces))
    }

    /// Greedy non-maximum suppression, strongest first.
    static func suppress(_ faces: [DetectedFace], threshold: Double) -> [DetectedFace] {
        var kept: [DetectedFace] = []
        for face in faces.sorted(by: { $0.score > $1.score }) where !kept.contains(where: { $0.box.intersectionOverUnion(face.box) > threshold }) {
            kept.append(face)
        }
        return kept
    }

    /// The image scaled (bilinear) to `width × height`, as the detector's BGR-minus-mean NCHW tensor.
    static func tensor(_ image: RGBImage, width: Int, height: Int) -> FloatTensor {
        let plane = width * height
        var values = [Float](repeating: 0, count: 3 * plane)
        if width == image.width, height == image.height {
            // Full size (a 640×480 camera frame): the pixels themselves, no interpolation.
            image.pixels.withUnsafeBufferPointer { pixels in
                values.withUnsafeMutableBufferPointer { out in
                    for index in 0..<plane {
                        for channel in 0..<3 {
                            let bgr = 2 - channel
                            out[bgr * plane + index] = Float(pixels[index * 3 + channel]) - means[bgr]
                        }
                    }
                }
            }
            return FloatTensor(shape: [1, 3, height, width], values: values)
        }
        let scaleX = Float(image.width) / Float(width)
        let scaleY = Float(image.height) / Float(height)
        image.pixels.withUnsafeBufferPointer { pixels in
            values.withUnsafeMutableBufferPointer { out in
                for y in 0..<height {
                    let sy = min(max((Float(y) + 0.5) * scaleY - 0.5, 0), Float(image.height - 1))
                    let y0 = Int(sy), y1 = min(y0 + 1, image.height - 1)
                    let fy = sy - Float(y0)
                    for x in 0..<width {
                        let sx = min(max((Float(x) + 0.5) * scaleX - 0.5, 0), Float(image.width - 1))
                        let x0 = Int(sx), x1 = min(x0 + 1, image.width - 1)
                        let fx = sx - Float(x0)
                        for channel in 0..<3 {
                            let a = Float(pixels[(y0 * image.width + x0) * 3 + channel])
                            let b = Float(pixels[(y0 * image.width + x1) * 3 + channel])
                            let c = Float(pixels[(y1 * image.width + x0) * 3 + channel])
                            let d = Float(pixels[(y1 * image.width + x1) * 3 + channel])
                            let value = (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy
                            // RGB in, BGR out.
                            let bgr = 2 - channel
                            out[bgr * plane + y * width + x] = value - means[bgr]
                        }
                    }
                }
            }
        }
        return FloatTensor(shape: [1, 3, height, width], values: values)
    }
}

extension DetectedFace {
    /// The box cut to the image's bounds (landmarks are kept as found).
    func clipped(width: Int, height: Int) -> DetectedFace {
        let x0 = min(max(box.x, 0), Double(width)), y0 = min(max(box.y, 0), Double(height))
        let x1 = min(max(box.x + box.width, 0), Double(width)), y1 = min(max(box.y + box.height, 0), Double(height))
        return DetectedFace(box: Box(x: x0, y: y0, width: x1 - x0, height: y1 - y0), score: score, landmarks: landmarks)
    }
}
