import AttuneFace
import AttuneTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import AttuneServer

/// The video API: `POST /api/process_frame` and `GET /api/emotion`, on real FER2013 faces in
/// camera-sized JPEG frames.
@Suite struct FaceRouteTests {
    static func frame(_ folder: String, index: Int = 0) throws -> [UInt8] {
        let url = try TestData.ferImages(folder: folder)[index]
        let face = try ImageDecoder().decode([UInt8](Data(contentsOf: url)))
        return try JPEGEncoder.encode(face.placed(inFrameOf: 640, 480, side: 240, x: 200, y: 120), quality: 80)
    }

    static func body(_ frame: String, timestamp: Any = 1_700_000_000_123) throws -> ByteBuffer {
        ByteBuffer(data: try JSONSerialization.data(withJSONObject: ["frame": frame, "timestamp": timestamp]))
    }

    @Test func aFrameGetsItsFacesAndTheLatestIsKept() async throws {
        let app = try await TestSupport.application()
        try await app.test(.router) { client in
            try await client.execute(uri: "/api/emotion", method: .get) { response in
                #expect(response.status == .notFound)
            }
            let jpeg = try Self.frame("happy")
            let url = "data:image/jpeg;base64," + Data(jpeg).base64EncodedString()
            var first: [String: Any] = [:]
            try await client.execute(uri: "/api/process_frame", method: .post, body: try Self.body(url)) { response in
                #expect(response.status == .ok)
                first = try #require(try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any])
            }
            #expect(first["face_detected"] as? Bool == true)
            #expect(first["timestamp"] as? Double == 1_700_000_000_123)
            #expect((first["width"] as? Int, first["height"] as? Int) == (640, 480))
            let faces = try #require(first["faces"] as? [[String: Any]])
            let face = try #require(faces.first)
            let box = try #require(face["box"] as? [String: Double])
            #expect(abs((box["x"] ?? 0) + (box["width"] ?? 0) / 2 - 320) < 60 && abs((box["y"] ?? 0) + (box["height"] ?? 0) / 2 - 240) < 60)
            #expect((face["landmarks"] as? [[String: Double]])?.count == 5)
            let scores = try #require(face["scores"] as? [String: Double])
            #expect(Set(scores.keys) == ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"])
            #expect(first["emotion"] as? String == face["emotion"] as? String)
            #expect(first["confidence"] as? Double == face["confidence"] as? Double)

            // Bare base64 works too; the latest reading is what GET /api/emotion returns.
            let frame = try Self.frame("surprise")
            try await client.execute(uri: "/api/process_frame", method: .post, body: try Self.body(Data(frame).base64EncodedString(), timestamp: "42")) { response in
                #expect(response.status == .ok)
            }
            try await client.execute(uri: "/api/emotion", method: .get) { response in
                #expect(response.status == .ok)
                let latest = try #require(try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any])
                #expect(latest["timestamp"] as? Double == 42)
            }

            // A frame without a face: no emotion, and the session goes on.
            let empty = try JPEGEncoder.encode(RGBImage(gray: [UInt8](repeating: 120, count: 320 * 240), width: 320, height: 240))
            try await client.execute(uri: "/api/process_frame", method: .post, body: try Self.body(Data(empty).base64EncodedString())) { response in
                #expect(response.status == .ok)
                let body = try #require(try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any])
                #expect(body["face_detected"] as? Bool == false && body["emotion"] is NSNull && (body["faces"] as? [Any])?.isEmpty == true)
            }
        }
    }

    @Test func badFramesGetClearErrors() async throws {
        let app = try await TestSupport.application()
        try await app.test(.router) { client in
            func status(_ body: ByteBuffer) async throws -> HTTPResponse.Status {
                try await client.execute(uri: "/api/process_frame", method: .post, body: body) { $0.status }
            }
            #expect(try await status(ByteBuffer(string: "not json")) == .badRequest)
            #expect(try await status(ByteBuffer(string: #"{"image": "x"}"#)) == .badRequest)
            #expect(try await status(try Self.body("data:image/gif;base64,R0lGODlh")) == .unsupportedMediaType)
            #expect(try await status(try Self.body(Data("hello, not an image".utf8).base64EncodedString())) == .unsupportedMediaType)
            // Truncated JPEG: undecodable.
            let jpeg = try Self.frame("sad")
            #expect(try await status(try Self.body(Data(jpeg.prefix(300)).base64EncodedString())) == .badRequest)
            // A 20000x20000 header is refused before decoding.
            var huge = try JPEGEncoder.encode(RGBImage(gray: [UInt8](repeating: 90, count: 64), width: 8, height: 8))
            let sof = try #require(huge.indices.dropLast().first { huge[$0] == 0xFF && huge[$0 + 1] == 0xC0 })
            huge.replaceSubrange((sof + 5)...(sof + 8), with: [0x4E, 0x20, 0x4E, 0x20])
            #expect(try await status(try Self.body(Data(huge).base64EncodedString())) == .contentTooLarge)
            // Still serving.
            #expect(try await status(try Self.body(Data(jpeg).base64EncodedString())) == .ok)
        }
    }
}
