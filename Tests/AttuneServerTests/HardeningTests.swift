import AsyncHTTPClient
import AttuneAudio
import AttuneBench
import AttuneConversation
import AttuneCore
import AttuneStorage
import AttuneTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing

@testable import AttuneServer

/// A live server whose components the test can reach (to occupy their inference pools).
func withLiveServer(
    components edit: (inout AttuneConfiguration) -> Void,
    _ body: @escaping @Sendable (ServerComponents, _ client: any TestClientProtocol) async throws -> Void
) async throws {
    let configuration = TestSupport.configuration(edit)
    let components = ServerComponents.load(configuration: configuration, logger: Logger(label: "test"))
    let app = try await buildApplication(configuration: configuration, components: components)
    try await app.test(.live) { client in
        try await body(components, client)
    }
}

/// Messages that used to crash the server or end the session.
@Suite struct HostileMessageTests {
    @Test func numbersOutOfRangeAreRefusedAndTheSessionGoesOn() async throws {
        let audio = try ravdessSamples("03-01-01-01-01-01-01")
        let hostile: [ConversationClient.Extra] = [
            .text(#"{"type":"configure","silence_ms":1e300}"#),  // crashed the server: Int(1e300) traps
            .text(#"{"type":"configure","silence_ms":-1e300}"#),
            .text(#"{"type":"configure","silence_ms":1.5}"#),
            .text(#"{"type":"configure","rate":true}"#),
            .text(#"{"type":"playback","reply":1e300,"played_ms":5}"#),
            .text(#"{"type":"playback","reply":1,"played_ms":1e300}"#),
            .text(#"{"type":"audio_data","audio_data":"AAAA","sample_rate":1e300}"#),
            .text(#"{"type":"audio_data","audio_data":"AAAA","sample_rate":-16000}"#),
            .text(#"{"type":"\#(String(repeating: "x", count: 5_000))"}"#),
            .text(#"{"type":"ping"}"#),
        ]
        try await withLiveServer { port in
            let events = try await ConversationClient(port: port).stream(audio, before: hostile)
            let errors = events.filter { $0.type == "error" }
            #expect(errors.compactMap { $0["code"] } == [
                "bad_setting", "bad_setting", "bad_setting", "bad_setting", "bad_message", "bad_message", "bad_message",
                "unsupported_sample_rate", "unknown_message",
            ])
            // Error messages repeat at most a short prefix of what was sent.
            #expect(errors.allSatisfy { ($0["message"] ?? "").count < 300 })
            #expect(events.contains { $0.type == "pong" })
            let final = try #require(events.first { $0.type == "transcript_final" })
            #expect(final["text"]?.lowercased().contains("kids are talking") == true)
        }
    }

    @Test func busyListeningThreadsRefuseOneFrameNotTheSession() async throws {
        // One listening thread and no queue, kept busy 80% of the time for the first seconds of
        // the session: most frames then are refused as busy, one at a time.
        let audio = try ravdessSamples("03-01-01-01-01-01-01")
        try await withLiveServer(components: { $0.listenWorkers = 1; $0.listenQueueLimit = 0 }) { components, client in
            let port = try #require(client.port)
            async let blocking: Void = {
                let end = ContinuousClock.now + .seconds(4)
                while ContinuousClock.now < end {
                    _ = try? await components.listenPool.run { usleep(40_000) }
                    try? await Task.sleep(for: .milliseconds(10))
                }
            }()
            let silence = [Float](repeating: 0, count: 16_000 * 5)
            // Done when the ping is answered and the sentence transcribed, in whichever order a
            // loaded machine gives them.
            let events = try await ConversationClient(port: port).stream(silence + audio, after: [.text(#"{"type":"ping"}"#)]) {
                $0.contains { $0.type == "pong" } && $0.contains { $0.type == "transcript_final" }
            }
            await blocking
            #expect(events.contains { $0.type == "error" && $0["code"] == "busy" }, "no frame was refused as busy")
            // The session went on: it heard the sentence after the busy spell, and answered the ping.
            let final = try #require(events.first { $0.type == "transcript_final" })
            #expect(final["text"]?.lowercased().contains("kids are talking") == true)
            #expect(events.contains { $0.type == "pong" })
        }
    }

    /// Uploads have their own threads: with every upload thread and queue place taken, uploads
    /// get 503 while a live session still hears and transcribes its speech.
    @Test func uploadLoadCannotStarveALiveSession() async throws {
        let audio = try ravdessSamples("03-01-01-01-01-01-01")
        try await withLiveServer(components: { $0.speechWorkers = 1; $0.speechQueueLimit = 1 }) { components, client in
            let port = try #require(client.port)
            // Hold the upload thread and its queue until the live session has its transcript.
            let release = Flag()
            let holders = (0..<2).map { _ in
                Task { try await components.speechPool.run { while !release.isSet { usleep(10_000) } } }
            }
            defer { release.set() }
            while components.speechPool.load < 2 { try await Task.sleep(for: .milliseconds(5)) }
            try await client.execute(uri: "/api/vad", method: .post, body: ByteBuffer(data: WAVFile.encode(AudioBuffer(samples: audio, sampleRate: 16_000)))) { response in
                #expect(response.status == .serviceUnavailable, "uploads should be refused while their threads are full")
            }
            let events = try await ConversationClient(port: port).stream(audio) { $0.contains { $0.type == "transcript_final" } }
            #expect(!events.contains { $0.type == "error" && $0["code"] == "busy" })
            let final = try #require(events.first { $0.type == "transcript_final" })
            #expect(final["text"]?.lowercased().contains("kids are talking") == true)
            release.set()
            for holder in holders { _ = try? await holder.value }
        }
    }

    @Test func textMessagesAreRateLimited() async throws {
        let pings = [ConversationClient.Extra](repeating: .text(#"{"type":"ping"}"#), count: 200)
        try await withLiveServer({ $0.stream.maxMessagesPerSecond = 10 }) { port in
            var client = ConversationClient(port: port)
            client.settleTimeout = .seconds(2)
            let events = try await client.stream([], before: pings) { _ in false }
            let pongs = events.filter { $0.type == "pong" }.count
            let limited = events.filter { $0.type == "error" && $0["code"] == "rate_limited" }.count
            #expect(pongs >= 20 && pongs < 60, "\(pongs) pongs for 200 pings at 10 per second")
            #expect(limited > 0 && limited <= 25, "\(limited) rate_limited errors: errors are rate limited too")
        }
    }
}

/// The responder's ownership of replies.
@Suite struct ResponderTests {
    private func turn(_ text: String) -> UserTurn {
        UserTurn(utterance: 0, text: text, textEmotion: nil, fused: nil, speechEndedAt: .now, transcribedAt: .now, startedAt: 0)
    }

    /// Collects the queue's events until `done` holds.
    private func events(of queue: OutboundQueue, until done: ([ServerEvent]) -> Bool) async -> [ServerEvent] {
        var seen: [ServerEvent] = []
        for await frame in queue.frames {
            queue.sent(frame)
            guard case .text(let json) = frame, let event = ServerEventDecoding.decode(json) else { continue }
            seen.append(event)
            if done(seen) { break }
        }
        return seen
    }

    @Test func aBargeInRightAfterTheTurnStopsTheReplyBeforeItSpeaks() async throws {
        let components = ServerComponents.load(configuration: TestSupport.configuration(), logger: .init(label: "test"))
        let queue = OutboundQueue(maxMessages: 1_000, maxBytes: 1 << 26)
        let responder = Responder(engines: components.companion.replies, settings: components.companion.replySettings, sessionID: UUID().uuidString.lowercased(), emit: queue, logger: .init(label: "test"))
        async let running: Void = responder.run()
        #expect(await responder.respond(to: turn("I lost my keys again.")))
        await responder.bargeIn()
        let seen = await events(of: queue) { $0.contains { if case .replyDone = $0 { true } else { false } } }
        await responder.close()
        await running
        #expect(seen.contains { if case .stopPlayback(reply: 1, _) = $0 { true } else { false } })
        #expect(!seen.contains { if case .replyAudio = $0 { true } else { false } }, "audio of a stopped reply: \(seen)")
        let done = seen.compactMap { if case let .replyDone(_, _, interrupted, _, _) = $0 { interrupted } else { nil } }
        #expect(done == [true])
    }

    @Test func aNewTurnStartsOnlyAfterThePreviousReplyHasEnded() async throws {
        let components = ServerComponents.load(configuration: TestSupport.configuration(), logger: .init(label: "test"))
        let queue = OutboundQueue(maxMessages: 10_000, maxBytes: 1 << 28)
        let responder = Responder(engines: components.companion.replies, settings: components.companion.replySettings, sessionID: UUID().uuidString.lowercased(), emit: queue, logger: .init(label: "test"))
        async let running: Void = responder.run()
        for text in ["Hello there.", "Are you still there?", "Say something."] { #expect(await responder.respond(to: turn(text))) }
        let seen = await events(of: queue) { $0.filter { if case .replyDone = $0 { true } else { false } }.count == 3 }
        await responder.close()
        await running
        // Every reply_started comes after the reply_done of the reply before it.
        var open: Int?
        for event in seen {
            switch event {
            case .replyStarted(let reply, _, _, _, _, _):
                #expect(open == nil, "reply \(reply) started while \(open ?? 0) was still running")
                open = reply
            case .replyDone(let reply, _, _, _, _):
                #expect(open == reply)
                open = nil
            default: break
            }
        }
    }

    @Test func aClientThatDoesNotReadOverflowsTheQueueInsteadOfGrowingIt() {
        let queue = OutboundQueue(maxMessages: 10, maxBytes: 1_000)
        for _ in 0..<10 { queue.yield(.pong) }
        #expect(!queue.overflowed)
        queue.yield(.pong)
        #expect(queue.overflowed)
        let big = OutboundQueue(maxMessages: 100, maxBytes: 1_000)
        big.yield(.audio([UInt8](repeating: 0, count: 2_000)))
        #expect(big.overflowed)
    }
}

/// Parses the JSON of an event back, for tests that read the outbound queue directly.
enum ServerEventDecoding {
    static func decode(_ json: String) -> ServerEvent? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else { return nil }
        let int = { (key: String) in (object[key] as? NSNumber)?.intValue ?? 0 }
        switch object["type"] as? String {
        case "reply_started":
            return .replyStarted(
                reply: int("reply"), utterance: int("utterance"), emotion: .neutral, intensity: "", crisis: object["crisis"] as? Bool ?? false,
                opener: object["opener"] as? String)
        case "reply_done":
            return .replyDone(reply: int("reply"), text: object["text"] as? String ?? "", interrupted: object["interrupted"] as? Bool ?? false, timings: [:], rejected: [])
        case "reply_audio":
            return .replyAudio(reply: int("reply"), sentence: int("sentence"), sampleRate: 0, samples: 0, startMilliseconds: 0)
        case "stop_playback":
            return .stopPlayback(reply: int("reply"), heard: object["heard"] as? String ?? "")
        default:
            return .pong
        }
    }
}

/// Uploads and other HTTP input that used to be accepted whole.
@Suite struct HostileUploadTests {
    /// A FLAC file of a few kilobytes whose header claims ten minutes of 8-channel 192 kHz audio.
    static func flacBomb() -> Data {
        var streamInfo = [UInt8]()
        streamInfo += [0x10, 0x00, 0x10, 0x00]  // block sizes 4096
        streamInfo += [0, 0, 0, 0, 0, 0]  // frame sizes unknown
        // 20 bits rate, 3 bits channels-1, 5 bits bits-per-sample-1, 36 bits total samples.
        let rate: UInt64 = 192_000, channels: UInt64 = 8, bits: UInt64 = 16, total: UInt64 = 600 * 192_000
        let packed = rate << 44 | (channels - 1) << 41 | (bits - 1) << 36 | total
        streamInfo += (0..<8).map { UInt8(truncatingIfNeeded: packed >> (56 - 8 * UInt64($0))) }
        streamInfo += [UInt8](repeating: 0, count: 16)  // MD5
        let padding = 7_000
        var file = Array("fLaC".utf8)
        file += [0x00, 0x00, 0x00, UInt8(streamInfo.count)] + streamInfo
        file += [0x81, UInt8(padding >> 16), UInt8((padding >> 8) & 0xFF), UInt8(padding & 0xFF)] + [UInt8](repeating: 0, count: padding)
        return Data(file)
    }

    /// A WAV whose header says 1 Hz.
    static func wavAtOneHertz() -> Data {
        var wav = WAVFile.encode(AudioBuffer(samples: [Float](repeating: 0.1, count: 800), sampleRate: 16_000))
        wav.replaceSubrange(24..<32, with: [1, 0, 0, 0, 2, 0, 0, 0])  // sample rate 1, byte rate 2
        return wav
    }

    @Test func aFLACClaimingHoursOfManyChannelsIsRefusedBeforeDecoding() async throws {
        let app = try await TestSupport.application()
        try await app.test(.router) { client in
            let bomb = Self.flacBomb()
            #expect(bomb.count < 8_000)
            for uri in ["/api/transcribe", "/api/vad"] {
                try await client.execute(uri: uri, method: .post, body: ByteBuffer(data: bomb)) { response in
                    #expect(response.status == .contentTooLarge, "\(uri): \(String(buffer: response.body))")
                    #expect(String(buffer: response.body).contains("transcribe.max_samples"))
                }
            }
            try await client.execute(uri: "/api/transcribe", method: .post, body: ByteBuffer(data: Self.wavAtOneHertz())) { response in
                #expect(response.status == .unsupportedMediaType, "\(String(buffer: response.body))")
                #expect(String(buffer: response.body).contains("Hz"))
            }
        }
    }

    @Test func ttsCountsCodePointsNotGraphemes() async throws {
        let app = try await TestSupport.application()
        try await app.test(.router) { client in
            // One grapheme cluster, 4001 code points: the old limit counted it as one character.
            let text = "a" + String(repeating: "\u{0301}", count: 4_000)
            let body = try JSONSerialization.data(withJSONObject: ["text": text])
            try await client.execute(uri: "/api/tts", method: .post, body: ByteBuffer(data: body)) { response in
                #expect(response.status == .unprocessableContent)
                #expect(String(buffer: response.body).contains("code points"))
            }
        }
    }

    @Test func unknownPathsAndMethodsAddNoMetricSeries() async throws {
        let app = try await TestSupport.application()
        try await app.test(.router) { client in
            func series() async throws -> Set<String> {
                try await client.execute(uri: "/metrics", method: .get) { response in
                    Set(String(buffer: response.body).split(separator: "\n").filter { !$0.hasPrefix("#") }
                        .map { String($0.split(separator: " ").first ?? "") })
                }
            }
            try await client.execute(uri: "/no/such/path", method: .get)
            try await client.execute(uri: "/api/nothing", method: .init("BREW")!)
            _ = try await series()
            let before = try await series()
            for index in 0..<50 {
                try await client.execute(uri: "/probe-\(index)-\(UUID().uuidString)", method: .get)
                try await client.execute(uri: "/api/nothing-\(index)", method: .init("BREW\(index)")!)
            }
            let after = try await series()
            #expect(after.subtracting(before).isEmpty, "new series from unknown paths and methods: \(after.subtracting(before).sorted())")
        }
    }

    @Test func historyPagesAreBounded() async throws {
        let data = TestData.temporaryDirectory()
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        let store = try HistoryStore(path: data + "/history.sqlite")
        let id = UUID().uuidString.lowercased()
        try await store.startSession(id: id, persona: "companion", voice: "joe", at: 0)
        for index in 1...5 {
            try await store.append(
                StoredTurn(index: index, startedAt: Double(index), userText: "turn \(index)", replyText: "ok", interrupted: false,
                           emotions: [:], fusedEmotion: nil, timings: TurnTimings()), to: id)
        }
        let app = try await TestSupport.application { $0.dataDirectory = data; $0.historyMaxPage = 2 }
        try await app.test(.router) { client in
            struct Page: Decodable {
                struct Turn: Decodable { let userText: String }
                let turns: [Turn]
                let next_offset: Int?
            }
            try await client.execute(uri: "/api/sessions/\(id)", method: .get) { response in
                let page = try JSONDecoder().decode(Page.self, from: response.body)
                #expect(page.turns.map(\.userText) == ["turn 1", "turn 2"])
                #expect(page.next_offset == 2)
            }
            try await client.execute(uri: "/api/sessions/\(id)?offset=4", method: .get) { response in
                let page = try JSONDecoder().decode(Page.self, from: response.body)
                #expect(page.turns.map(\.userText) == ["turn 5"])
                #expect(page.next_offset == nil)
            }
            for query in ["limit=3", "limit=0", "offset=-1", "limit=1e300", "offset=abc"] {
                try await client.execute(uri: "/api/sessions/\(id)?\(query)", method: .get) { response in
                    #expect(response.status == .badRequest, "\(query)")
                }
            }
            try await client.execute(uri: "/api/sessions?limit=99999999999999999999", method: .get) { response in
                #expect(response.status == .badRequest)
            }
        }
    }
}

/// Who may use the server.
@Suite struct StrangerTests {
    /// The status line and headers of a GET with these header lines ("" if the connection failed).
    static func get(_ port: Int, _ path: String, _ headers: [String]) -> String {
        guard let socket = try? RawSocket(port: port),
            (try? socket.send(Array((["GET \(path) HTTP/1.1"] + headers + ["Connection: close", "", ""]).joined(separator: "\r\n").utf8))) != nil
        else { return "" }
        return socket.receiveHead()
    }

    @Test func foreignHostsAndOriginsAreRefused() async throws {
        let get = Self.get
        try await withLiveServer { port in
            #expect(get(port, "/api/sessions", ["Host: evil.example"]).hasPrefix("HTTP/1.1 403"))
            #expect(get(port, "/", ["Host: evil.example:\(port)"]).hasPrefix("HTTP/1.1 403"))
            #expect(get(port, "/api/sessions", ["Host: 127.0.0.1:\(port)"]).hasPrefix("HTTP/1.1 200"))
            #expect(get(port, "/api/sessions", ["Host: localhost:\(port)", "Origin: http://evil.example"]).hasPrefix("HTTP/1.1 403"))
            #expect(get(port, "/api/sessions", ["Host: localhost:\(port)", "Origin: http://localhost:\(port + 1)"]).hasPrefix("HTTP/1.1 403"))
            #expect(get(port, "/api/sessions", ["Host: localhost:\(port)", "Origin: null"]).hasPrefix("HTTP/1.1 403"))
            #expect(get(port, "/api/sessions", ["Host: localhost:\(port)", "Origin: http://localhost:\(port)"]).hasPrefix("HTTP/1.1 200"))
        }
        try await withLiveServer({ $0.server.allowedHosts = ["attune.example"]; $0.server.allowedOrigins = ["https://app.example"] }) { port in
            #expect(get(port, "/api/voices", ["Host: attune.example", "Origin: https://app.example"]).hasPrefix("HTTP/1.1 200"))
            #expect(get(port, "/api/voices", ["Host: other.example", "Origin: https://app.example"]).hasPrefix("HTTP/1.1 403"))
        }
    }

    @Test func webSocketUpgradesCheckOriginHostTokenAndTheSessionCap() async throws {
        try await withLiveServer({ $0.server.apiToken = "s3cret"; $0.stream.maxSessions = 1 }) { port in
            func upgrade(_ query: String, _ headers: [String]) throws -> String {
                let connection = try RawSocket(port: port)
                let request = ([
                    "GET /ws/conversation\(query) HTTP/1.1", "Upgrade: websocket", "Connection: Upgrade",
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13",
                ] + headers + ["", ""]).joined(separator: "\r\n")
                try connection.send(Array(request.utf8))
                return connection.receiveHead()
            }
            #expect(try upgrade("?token=s3cret", ["Host: 127.0.0.1", "Origin: http://evil.example"]).hasPrefix("HTTP/1.1 403"))
            #expect(try upgrade("?token=s3cret", ["Host: evil.example"]).hasPrefix("HTTP/1.1 403"))
            #expect(try upgrade("", ["Host: 127.0.0.1"]).hasPrefix("HTTP/1.1 401"))
            #expect(try upgrade("?token=wrong", ["Host: 127.0.0.1"]).hasPrefix("HTTP/1.1 401"))
            // The right token opens a session; a second one is over stream.max_sessions.
            let first = try RawSocket(port: port)
            try first.send(Array(([
                "GET /ws/conversation?token=s3cret HTTP/1.1", "Host: 127.0.0.1:\(port)", "Origin: http://127.0.0.1:\(port)",
                "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13", "", "",
            ]).joined(separator: "\r\n").utf8))
            #expect(first.receiveHead().hasPrefix("HTTP/1.1 101"))
            // The session has claimed its place once it says it started.
            #expect(try first.receive(until: "session_started", timeout: 60))
            #expect(try upgrade("", ["Host: 127.0.0.1", "Authorization: Bearer s3cret"]).hasPrefix("HTTP/1.1 503"))
            // The API needs the token too; the page itself does not.
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/api/sessions")
            #expect(try await HTTPClient.shared.execute(request, timeout: .seconds(10)).status == .unauthorized)
            request.headers.add(name: "Authorization", value: "Bearer s3cret")
            #expect(try await HTTPClient.shared.execute(request, timeout: .seconds(10)).status == .ok)
            #expect(try await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/"), timeout: .seconds(10)).status == .ok)
        }
    }

    @Test func anIdleSessionIsClosed() async throws {
        try await withLiveServer({ $0.stream.idleTimeout = 1 }) { port in
            var client = ConversationClient(port: port)
            client.settleTimeout = .seconds(60)
            let started = ContinuousClock.now
            // Nothing is sent; the stream ends when the server closes the connection.
            _ = try await client.stream([], before: []) { _ in false }
            #expect(ContinuousClock.now - started < .seconds(30))
        }
    }

    @Test func healthShowsNoPathsPidsOrPortsOutsideDebug() async throws {
        for (level, reveals) in [(Logger.Level.info, false), (.debug, true)] {
            let app = try await TestSupport.application { $0.logLevel = level; $0.modelsDirectory = "/nonexistent/models" }
            try await app.test(.router) { client in
                try await client.execute(uri: "/api/health", method: .get) { response in
                    let body = String(buffer: response.body)
                    #expect(body.contains("/nonexistent") == reveals, "\(level): \(body)")
                    #expect(!body.contains(NSHomeDirectory() + "/"), "\(body)")
                }
            }
        }
    }
}
