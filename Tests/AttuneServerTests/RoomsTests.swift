import AsyncHTTPClient
import AttuneBench
import AttuneConversation
import AttuneTestSupport
import Foundation
import NIOCore
import Testing

@testable import AttuneServer

/// `/ws/rooms` through real sockets, several clients at once, on the real models.
@Suite struct RoomsTests {
    static func join(_ client: RoomsClient, room: String, user: String) async throws {
        client.send(["type": "join_room", "room_id": room, "user_id": user, "user_info": ["name": user.capitalized]])
        try await client.waitFor(type: "room_joined")
    }

    /// GETs `path` until its JSON satisfies `done`.
    static func poll(_ what: String, port: Int, path: String, _ done: ([String: Any]) -> Bool) async throws -> [String: Any] {
        var found: [String: Any]?
        let appeared = try await TestData.eventually(within: 30, every: .milliseconds(100)) {
            let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)"), timeout: .seconds(10))
            let body = try await response.body.collect(upTo: 1 << 20)
            guard response.status == .ok, let object = try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any] else { return false }
            found = object
            return done(object)
        }
        if !appeared { Issue.record("\(path) never showed \(what)") }
        return appeared ? found ?? [:] : [:]
    }

    static func data(_ message: [String: Any]) -> [String: Any] { message["data"] as? [String: Any] ?? [:] }

    /// A participant's camera frame: the face channel, fused and broadcast to the room with its
    /// source; a bad frame gets `bad_frame` and the connection goes on.
    @Test func aParticipantsFaceReachesTheRoom() async throws {
        let jpeg = try FaceRouteTests.frame("happy")
        try await withLiveServer { port in
            let ann = try await RoomsClient.connect(port: port)
            let bob = try await RoomsClient.connect(port: port)
            try await Self.join(ann, room: "faces", user: "ann")
            try await Self.join(bob, room: "faces", user: "bob")
            ann.send(["type": "video_frame", "frame": "data:image/gif;base64,R0lGODlh"])
            let error = Self.data(try await ann.waitFor(type: "error"))
            #expect(error["code"] as? String == "bad_frame")
            ann.send(["type": "video_frame", "frame": "data:image/jpeg;base64," + Data(jpeg).base64EncodedString(), "timestamp": 1_700_000_000.25])
            for client in [ann, bob] {
                let update = Self.data(try await client.waitFor(type: "emotion_update"))
                #expect(update["user_id"] as? String == "ann")
                let source = update["source"] as? [String: Any] ?? [:]
                #expect(source["channel"] as? String == "face" && source["kind"] as? String == "frame")
                #expect(source["timestamp"] as? Double == 1_700_000_000.25 && source["track_id"] == nil)
            }
            await ann.close()
            await bob.close()
        }
    }

    @Test func aParticipantsEmotionReachesTheirRoomAndNoOther() async throws {
        let speech = try ravdessSamples("03-01-01-01-01-01-01") + [Float](repeating: 0, count: 16_000 * 2)
        try await withLiveServer { port in
            let ann = try await RoomsClient.connect(port: port)
            let bob = try await RoomsClient.connect(port: port)
            let cy = try await RoomsClient.connect(port: port)
            try await Self.join(ann, room: "r1", user: "ann")
            try await Self.join(bob, room: "r1", user: "bob")
            try await Self.join(cy, room: "r2", user: "cy")
            let joined = try await ann.waitFor(type: "participant_joined")
            #expect(Self.data(joined)["user_id"] as? String == "bob")

            ann.send(["type": "audio_track_added", "track_id": "mic"])
            try await ann.stream(speech, track: "mic")
            for client in [ann, bob] {
                let transcript = try await client.waitFor(type: "transcript")
                #expect(Self.data(transcript)["user_id"] as? String == "ann")
                #expect((Self.data(transcript)["text"] as? String ?? "").lowercased().contains("kids are talking"))
                let update = Self.data(try await client.waitFor(type: "emotion_update"))
                #expect(update["user_id"] as? String == "ann" && update["room_id"] as? String == "r1")
                #expect((update["emotion_scores"] as? [String: Double])?.keys.sorted()
                    == ["anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"])
                #expect((update["timestamp"] as? String)?.hasSuffix("Z") == true)
            }
            // The status names both participants, ann's track and her latest emotion.
            bob.send(["type": "get_room_status"])
            let status = Self.data(try await bob.waitFor(type: "room_status"))
            let participants = status["participants"] as? [[String: Any]] ?? []
            #expect(participants.compactMap { $0["user_id"] as? String } == ["ann", "bob"])
            #expect(participants.first?["tracks"] as? [String] == ["mic"])
            #expect((participants.first?["emotion"] as? [String: Any])?["emotion"] != nil)
            #expect((participants.first?["user_info"] as? [String: Any])?["name"] as? String == "Ann")

            // The room's repository keeps the membership and the emotion (written in the background).
            let stored = try await Self.poll("ann's stored emotion", port: port, path: "/api/rooms/r1/emotions?user_id=ann") {
                ($0["emotions"] as? [[String: Any]])?.isEmpty == false
            }
            #expect((stored["emotions"] as? [[String: Any]])?.first?["user_id"] as? String == "ann")
            let detail = try await Self.poll("room r1", port: port, path: "/api/rooms/r1") { ($0["members"] as? [Any])?.count == 2 }
            #expect(detail["open"] as? Bool == true)
            let list = try await Self.poll("the room list", port: port, path: "/api/rooms") { ($0["rooms"] as? [Any])?.count == 2 }
            #expect((list["rooms"] as? [[String: Any]])?.compactMap { $0["room_id"] as? String }.sorted() == ["r1", "r2"])

            // Nothing of room r1 reached room r2.
            #expect(await cy.messages().compactMap { $0["type"] as? String } == ["room_joined"])

            // Leaving tells the room; a closed connection leaves too.
            bob.send(["type": "leave_room"])
            try await ann.waitFor("bob leaving") { $0["type"] as? String == "participant_left" && Self.data($0)["user_id"] as? String == "bob" }
            await cy.close()
            for client in [ann, bob] { await client.close() }
        }
    }

    @Test func badMessagesGetTheirErrorAndTheSessionGoesOn() async throws {
        try await withLiveServer { port in
            let client = try await RoomsClient.connect(port: port)
            func expectError(_ code: String, after send: () -> Void) async throws {
                let before = await client.messages().count
                send()
                let error = try await client.waitFor(type: "error", skip: before)
                #expect(Self.data(error)["code"] as? String == code, "\(error)")
            }
            try await expectError("not_joined") { client.send(["type": "get_room_status"]) }
            try await expectError("bad_message") { client.send(text: "{not json") }
            try await expectError("unknown_message") { client.send(["type": "dance"]) }
            try await expectError("bad_message") { client.send(["type": "join_room", "room_id": "a room", "user_id": "u"]) }
            try await Self.join(client, room: "r1", user: "ann")
            try await expectError("already_joined") { client.send(["type": "join_room", "room_id": "r2", "user_id": "ann"]) }
            try await expectError("unknown_track") {
                client.send(["type": "audio_data", "track_id": "mic", "audio_data": "AAAA", "sample_rate": 16_000])
            }
            client.send(["type": "audio_track_added", "track_id": "mic"])
            try await expectError("unsupported_sample_rate") {
                client.send(["type": "audio_data", "track_id": "mic", "audio_data": "AAAA", "sample_rate": 96_000])
            }
            try await expectError("odd_frame") {
                client.send(["type": "audio_data", "track_id": "mic", "audio_data": "AA==", "sample_rate": 16_000])
            }
            try await expectError("bad_message") { client.send(["type": "audio_data", "track_id": "mic", "audio_data": "AAAA", "sample_rate": 1e300]) }
            // Still in the room, still answering.
            client.send(["type": "ping"])
            try await client.waitFor(type: "pong")
            client.send(["type": "get_room_status"])
            let status = Self.data(try await client.waitFor(type: "room_status"))
            #expect((status["participants"] as? [[String: Any]])?.first?["tracks"] as? [String] == ["mic"])
            await client.close()
        }
    }

    /// A participant whose client stops reading fills only its own bounded queue: the server
    /// disconnects it, the room hears that it left, and everyone else receives every message.
    @Test func aSlowSubscriberIsDisconnectedWithoutSlowingTheRoom() async throws {
        try await withLiveServer({
            $0.stream.maxOutboundMessages = 1_000
            $0.stream.maxOutboundBytes = 1 << 20
            $0.stream.maxMessagesPerSecond = 10_000
        }) { port in
            let ann = try await RoomsClient.connect(port: port)
            try await Self.join(ann, room: "r1", user: "ann")
            // A raw client that joins and never reads again.
            let slow = try RawSocket(port: port)
            try slow.upgradeToWebSocket(path: "/ws/rooms")
            try slow.sendWebSocketText(#"{"type":"join_room","room_id":"r1","user_id":"slow"}"#)
            try await ann.waitFor("slow joining") { $0["type"] as? String == "participant_joined" && Self.data($0)["user_id"] as? String == "slow" }

            // A third participant joins and leaves again and again; each time its 4 KB user_info
            // goes to everyone in the room, until the slow client's kernel buffers and queue are full.
            let churn = try await RoomsClient.connect(port: port)
            let info = String(repeating: "x", count: 4_000)
            func slowLeft() async -> Bool {
                await ann.messages().contains { $0["type"] as? String == "participant_left" && Self.data($0)["user_id"] as? String == "slow" }
            }
            func churnEvents() async -> [String] {
                await ann.messages().filter { Self.data($0)["user_id"] as? String == "churn" }.compactMap { $0["type"] as? String }
            }
            // In batches of 10 cycles (40 KB, well inside the queue of a client that reads), each
            // awaited through ann, until the server gives up on the slow client.
            var cycles = 0
            while cycles < 4_000, await !ann.isClosed {
                for _ in 0..<10 {
                    churn.send(["type": "join_room", "room_id": "r1", "user_id": "churn", "user_info": ["note": info]])
                    churn.send(["type": "leave_room"])
                }
                cycles += 10
                let deadline = ContinuousClock.now + .seconds(60)
                while await churnEvents().count < 2 * cycles, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
                if await slowLeft() { break }
            }
            try await ann.waitFor("the slow client's removal") { $0["type"] as? String == "participant_left" && Self.data($0)["user_id"] as? String == "slow" }

            // ann missed nothing: every join and leave of the churning participant, in order.
            #expect(await churnEvents() == Array(repeating: ["participant_joined", "participant_left"], count: cycles).flatMap { $0 })
            #expect(cycles < 4_000, "the slow client was never disconnected")
            print("slow subscriber: disconnected after \(cycles) cycles")
            ann.send(["type": "get_room_status"])
            let status = Self.data(try await ann.waitFor(type: "room_status"))
            #expect((status["participants"] as? [[String: Any]])?.compactMap { $0["user_id"] as? String } == ["ann"])
            await churn.close()
            await ann.close()
        }
    }

    @Test func aDisconnectedParticipantLeavesAndCanComeBack() async throws {
        try await withLiveServer { port in
            let ann = try await RoomsClient.connect(port: port)
            try await Self.join(ann, room: "r1", user: "ann")
            let bob = try await RoomsClient.connect(port: port)
            try await Self.join(bob, room: "r1", user: "bob")
            await bob.close()
            try await ann.waitFor("bob's disconnect") { $0["type"] as? String == "participant_left" && Self.data($0)["user_id"] as? String == "bob" }
            let again = try await RoomsClient.connect(port: port)
            try await Self.join(again, room: "r1", user: "bob")
            let joined = Self.data(try await again.waitFor(type: "room_joined"))
            #expect((joined["participants"] as? [[String: Any]])?.compactMap { $0["user_id"] as? String } == ["ann", "bob"])
            await again.close()
            await ann.close()
        }
    }

    @Test func joinTokensAdmitTheirRoomAndUserOnly() async throws {
        let tokens = try RoomTokens(secret: Self.secret)
        let r1 = RoomID("r1")!, ann = ParticipantID("ann")!
        let valid = try await tokens.mint(room: r1, user: ann, lifetime: 60)
        try await tokens.authorize(token: valid, room: r1, user: ann)
        let refused: [(String?, RoomID, ParticipantID)] = [
            (nil, r1, ann), ("", r1, ann), ("garbage", r1, ann), (valid, RoomID("r2")!, ann), (valid, r1, ParticipantID("bob")!),
            (try await tokens.mint(room: r1, user: ann, lifetime: -1), r1, ann),
            (try await RoomTokens(secret: String(repeating: "o", count: 32)).mint(room: r1, user: ann, lifetime: 60), r1, ann),
        ]
        for (token, room, user) in refused {
            await #expect(throws: RoomError.self) { try await tokens.authorize(token: token, room: room, user: user) }
        }
    }

    /// With `rooms.token_secret`, a join without a valid token gets `unauthorized` and no room
    /// data; a token from `attune token` lets the participant in.
    @Test func aServerWithATokenSecretAdmitsOnlyTokenHolders() async throws {
        try await withLiveServer({ $0.rooms.tokenSecret = Self.secret }) { port in
            let client = try await RoomsClient.connect(port: port)
            client.send(["type": "join_room", "room_id": "r1", "user_id": "ann"])
            let error = Self.data(try await client.waitFor(type: "error"))
            #expect(error["code"] as? String == "unauthorized")
            let forBob = try Self.mint(room: "r1", user: "bob")
            client.send(["type": "join_room", "room_id": "r1", "user_id": "ann", "token": forBob])
            try await client.waitFor("a second refusal", skip: 1) { $0["type"] as? String == "error" }
            client.send(["type": "get_room_status"])
            try await client.waitFor("not_joined", skip: 2) { Self.data($0)["code"] as? String == "not_joined" }
            #expect(await client.messages().allSatisfy { $0["type"] as? String == "error" })

            client.send(["type": "join_room", "room_id": "r1", "user_id": "ann", "token": try Self.mint(room: "r1", user: "ann")])
            try await client.waitFor(type: "room_joined")
            await client.close()
        }
    }

    static let secret = "a-test-secret-of-more-than-32-bytes"

    @Test func aSecretTooShortForHS256IsRefused() {
        #expect(throws: ConfigurationError.self) { try AttuneConfiguration.load(environment: ["ATTUNE_ROOMS_TOKEN_SECRET": "short"]) }
        #expect(throws: (any Error).self) { try RoomTokens(secret: "short") }
    }

    /// `attune token`, as an operator would run it.
    static func mint(room: String, user: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            .deletingLastPathComponent().appendingPathComponent("attune")
        process.arguments = ["token", "--room", room, "--user", user, "--secret", secret]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// The rooms benchmark pairs every update with the chunk that ended its utterance (speed is
/// reported by `attune bench rooms`, never asserted here).
@Suite struct RoomsBenchmarkTests {
    @Test func everyUtteranceReachesEveryMemberAndIsMeasured() async throws {
        let clips = ["03-01-01-01-01-01-01", "03-01-05-02-02-01-02", "03-01-04-02-02-01-02", "03-01-03-02-01-01-02"]
        var benchmark = RoomsBenchmark(configuration: TestSupport.configuration()) { _ in }
        benchmark.seconds = 6
        let report = try await benchmark.run(participants: 4, audios: try clips.map(ravdessSamples))
        #expect(report.rooms == 1 && report.chunks > 4 * 60)
        #expect(report.utterances >= 4, "\(report)")
        // Four members receive each reading: the text of every utterance, the voice of every
        // utterance and of its chunks. A refused one would show as dropped.
        #expect(report.bySource["text utterance"]?.updates == 4 * report.utterances || report.droppedChunks > 0, "\(report)")
        #expect((report.bySource["voice utterance"]?.updates ?? 0) >= 4 * report.utterances || report.droppedChunks > 0, "\(report)")
        #expect((report.bySource["voice chunk"]?.updates ?? 0) > 0, "\(report)")
        #expect(report.chunkToBroadcastP50 > 0 && report.chunkToBroadcastP95 >= report.chunkToBroadcastP50)
    }
}
