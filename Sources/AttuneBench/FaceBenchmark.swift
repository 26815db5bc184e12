import AttuneCore
import AttuneFace
import Foundation

/// The face channel on labelled images.
///
/// - Crops (`--data`): a folder of class subfolders of face crops (FER2013's layout: `angry`,
///   `disgust`, `fear`, `happy`, `neutral`, `sad`, `surprise`). Each crop is read whole by the
///   expression model (no detection): accuracy, macro-F1 and milliseconds per face.
/// - Frames (`--frames`): camera-sized JPEGs, optionally in the same class subfolders, through
///   the whole path (decode, RetinaFace, alignment, expression): how often a face is found,
///   milliseconds per frame, and, when labelled, the accuracy of the largest face.
///
/// ``makeFrames(from:to:count:)`` builds such frames from crops: each crop scaled up at a
/// random size and place on a 640×480 grey frame, saved as JPEG quality 80 (as the page sends).
public struct FaceBenchmark {
    public static let folders = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]

    public struct CropReport: Codable, Sendable {
        public let images: Int
        public let accuracy: Double
        public let macroF1: Double
        public let classifyMsP50: Double
        public let classifyMsP95: Double
        public let perClass: [String: [String: Double]]?

        enum CodingKeys: String, CodingKey {
            case images, accuracy
            case macroF1 = "macro_f1"
            case classifyMsP50 = "classify_ms_p50"
            case classifyMsP95 = "classify_ms_p95"
            case perClass = "per_class"
        }
    }

    public struct FrameReport: Codable, Sendable {
        public let frames: Int
        public let faceFoundRate: Double
        public let frameMsP50: Double
        public let frameMsP95: Double
        /// Of the largest face, on labelled frames (a frame without a face counts as wrong;
        /// nil without labels).
        public let accuracy: Double?
        /// The same, over the frames where a face was found.
        public let accuracyWhereFound: Double?

        enum CodingKeys: String, CodingKey {
            case frames, accuracy
            case faceFoundRate = "face_found_rate"
            case frameMsP50 = "frame_ms_p50"
            case frameMsP95 = "frame_ms_p95"
            case accuracyWhereFound = "accuracy_where_found"
        }
    }

    let analyzer: FaceAnalyzer
    let progress: (String) -> Void

    public init(analyzer: FaceAnalyzer, progress: @escaping (String) -> Void = { _ in }) {
        self.analyzer = analyzer
        self.progress = progress
    }

    /// Labelled files of a folder of class subfolders, or unlabelled files of a flat folder.
    public static func images(in directory: String, limitPerClass: Int = 0) throws -> [(url: URL, label: EmotionLabel?)] {
        let root = URL(fileURLWithPath: directory)
        let manager = FileManager.default
        func files(_ folder: URL) throws -> [URL] {
            try manager.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)
                .filter { ["jpg", "jpeg", "png"].contains($0.pathExtension.lowercased()) }
                .sorted { $0.lastPathComponent < $1.lastPathComponent }
        }
        var result: [(URL, EmotionLabel?)] = []
        for (index, folder) in folders.enumerated() where manager.fileExists(atPath: root.appendingPathComponent(folder).path) {
            var found = try files(root.appendingPathComponent(folder))
            if limitPerClass > 0 { found = Array(found.prefix(limitPerClass)) }
            result += found.map { ($0, EmotionLabel.allCases[index]) }
        }
        if result.isEmpty { result = try files(root).map { ($0, nil) } }
        guard !result.isEmpty else { throw FaceBenchmarkError("no JPEG or PNG images in \(directory)") }
        return result
    }

    public func runCrops(_ images: [(url: URL, label: EmotionLabel?)], details: Bool = false) throws -> CropReport {
        var scores = ClassificationScores()
        var times: [Double] = []
        let model = analyzer.expression
        for (number, (url, label)) in images.enumerated() {
            guard let label else { throw FaceBenchmarkError("\(url.path) has no class folder") }
            let image = try analyzer.decoder.decode([UInt8](try Data(contentsOf: url)))
            let started = ContinuousClock.now
            let crop = FaceAligner.crop(image, box: Box(x: 0, y: 0, width: Double(image.width), height: Double(image.height)), size: model.size)
            let probabilities = try model.probabilities(crop)
            times.append((ContinuousClock.now - started).milliseconds)
            scores.add(truth: label, predicted: probabilities.max { $0.value < $1.value }!.key)
            if number % 500 == 499 { progress("\(number + 1)/\(images.count) faces, accuracy so far \(String(format: "%.3f", scores.accuracy))") }
        }
        return CropReport(
            images: scores.count, accuracy: scores.accuracy.rounded(to: 4), macroF1: scores.macroF1.rounded(to: 4),
            classifyMsP50: percentile(times, 0.5).rounded(to: 2), classifyMsP95: percentile(times, 0.95).rounded(to: 2),
            perClass: details ? scores.perClass : nil)
    }

    public func runFrames(_ frames: [(url: URL, label: EmotionLabel?)]) throws -> FrameReport {
        var times: [Double] = []
        var found = 0, correct = 0
        for (number, (url, label)) in frames.enumerated() {
            let bytes = [UInt8](try Data(contentsOf: url))
            let started = ContinuousClock.now
            let reading = try analyzer.read(bytes)
            times.append((ContinuousClock.now - started).milliseconds)
            if let face = reading.faces.first {
                found += 1
                if face.emotion == label { correct += 1 }
            }
            if number % 100 == 99 { progress("\(number + 1)/\(frames.count) frames") }
        }
        let labelled = frames.allSatisfy { $0.label != nil }
        return FrameReport(
            frames: frames.count, faceFoundRate: (Double(found) / Double(max(frames.count, 1))).rounded(to: 4),
            frameMsP50: percentile(times, 0.5).rounded(to: 1), frameMsP95: percentile(times, 0.95).rounded(to: 1),
            accuracy: labelled ? (Double(correct) / Double(max(frames.count, 1))).rounded(to: 4) : nil,
            accuracyWhereFound: labelled ? (Double(correct) / Double(max(found, 1))).rounded(to: 4) : nil)
    }

    /// Writes `count` frames per class (all crops when 0) under `output`/<class>/, from `images`.
    public static func makeFrames(from images: [(url: URL, label: EmotionLabel?)], to output: String, seed: UInt64 = 1) throws -> Int {
        var generator = SplitMix64(seed: seed)
        let decoder = ImageDecoder()
        var written = 0
        for (url, label) in images {
            let folder = label.map { folders[EmotionLabel.allCases.firstIndex(of: $0)!] } ?? "unlabelled"
            let directory = URL(fileURLWithPath: output).appendingPathComponent(folder)
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let face = try decoder.decode([UInt8](try Data(contentsOf: url)))
            let side = Int(generator.next() % 201) + 140  // 140…340 px: a face near or far from the camera
            let x = Int(generator.next() % UInt64(640 - side + 1)), y = Int(generator.next() % UInt64(480 - side + 1))
            let frame = face.placed(inFrameOf: 640, 480, side: side, x: x, y: y)
            let name = url.deletingPathExtension().lastPathComponent + ".jpg"
            try Data(try JPEGEncoder.encode(frame, quality: 80)).write(to: directory.appendingPathComponent(name))
            written += 1
        }
        return written
    }
}

public struct FaceBenchmarkError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// A small deterministic generator, so frames are the same on every machine.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
