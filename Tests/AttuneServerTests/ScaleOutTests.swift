import AsyncHTTPClient
import AttuneAgent
import AttuneBench
import AttuneTestSupport
import Foundation
import HummingbirdTesting
import NIOCore
import Testing

/// Two real `attune serve` processes on one real PostgreSQL database (the throw-away server of
/// `scripts/run_tests.py`), alone and behind a real nginx.
@Suite(.serialized) struct ScaleOutTests {
    /// Flags that put an instance on `database`, with a short heartbeat so a killed one is noticed fast.
    static func arguments(_ database: PostgresTestDatabase) -> [String] {
        [
            "--set", "llm.embedded=false", "--set", "storage.url=\(database.url)",
            "--set", "storage.heartbeat_interval_s=0.5", "--set", "storage.instance_timeout_s=4",
        ]
    }

    static func data(_ message: [String: Any]) -> [String: Any] { message["data"] as? [String: Any] ?? [:] }

    static func getJSON(port: Int, _ path: String) async throws -> (Int, [String: Any]) {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)"), timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1 << 22)
        return (Int(response.status.code), (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any]) ?? [:])
    }

    /// Whether `user` is present in `room` according to the instance on `port` (read from the database).
    static func isPresent(_ user: String, in room: String, port: Int) async throws -> Bool {
        let (status, detail) = try await getJSON(port: port, "/api/rooms/\(room)")
        let members = detail["members"] as? [[String: Any]] ?? []
        return status == 200 && members.contains { $0["user_id"] as? String == user && $0["left_at"] == nil }
    }

    /// The emotion updates about `user` a client has received, as (timestamp, emotion, channel).
    static func updates(about user: String, in client: RoomsClient) async -> [String] {
        await client.messages().filter { $0["type"] as? String == "emotion_update" }.map(data)
            .filter { $0["user_id"] as? String == user }
            .map { "\($0["timestamp"] as? String ?? "?") \($0["emotion"] as? String ?? "?") \($0["channel"] as? String ?? "?")" }
    }

    @Test func participantsOnTwoInstancesSeeEachOtherAndADeadInstancesLeave() async throws {
        let database = try PostgresTestDatabase()
        defer { database.drop() }
        let speech = try ravdessSamples("03-01-05-02-01-01-01") + [Float](repeating: 0, count: 16_000)
        let a = try AttuneServerProcess(arguments: Self.arguments(database))
        let b = try AttuneServerProcess(arguments: Self.arguments(database))
        let ann = try await RoomsClient.connect(port: a.port)
        let bob = try await RoomsClient.connect(port: b.port)
        do {
            let (status, health) = try await Self.getJSON(port: a.port, "/api/health")
            #expect(health["storage"] as? String == "ok", "\(status) \(health)")
            let (_, otherHealth) = try await Self.getJSON(port: b.port, "/api/health")
            #expect(health["instance"] as? String != nil && health["instance"] as? String != otherHealth["instance"] as? String)

            // Bob joins on B; once A can read that from the database, Ann joins on A and sees him.
            try await RoomsTests.join(bob, room: "hall", user: "bob")
            #expect(try await TestData.eventually(every: .milliseconds(50)) { try await Self.isPresent("bob", in: "hall", port: a.port) })
            try await RoomsTests.join(ann, room: "hall", user: "ann")
            let joined = try await ann.waitFor(type: "room_joined")
            #expect((Self.data(joined)["participants"] as? [[String: Any]] ?? []).compactMap { $0["user_id"] as? String } == ["ann", "bob"])
            let arrival = try await bob.waitFor("Ann joining") { $0["type"] as? String == "participant_joined" }
            #expect((Self.data(arrival)["participant"] as? [String: Any])?["user_id"] as? String == "ann")

            // Ann speaks on A: Bob, on B, gets her emotions.
            ann.send(["type": "audio_track_added", "track_id": "mic"])
            try await ann.stream(speech, track: "mic")
            try await bob.waitFor("Ann's emotion") { $0["type"] as? String == "emotion_update" && Self.data($0)["user_id"] as? String == "ann" }
            bob.send(["type": "get_room_status"])
            let status2 = try await bob.waitFor(type: "room_status")
            #expect((Self.data(status2)["participants"] as? [[String: Any]] ?? []).compactMap { $0["user_id"] as? String } == ["ann", "bob"])

            // Every connection of both instances to the database is cut; they reconnect, and
            // Ann's next utterance reaches Bob as well.
            let cut = try database.run(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
            #expect(Int(cut) ?? 0 >= 2, "the instances' pool and listener connections")
            let before = await Self.updates(about: "ann", in: bob).count
            try await ann.stream(speech, track: "mic")
            #expect(try await TestData.eventually(every: .milliseconds(50)) { await Self.updates(about: "ann", in: bob).count > before })

            // Ann leaves. Her leave comes after her last emotion, so once Bob hears it, he has had
            // every emotion Ann's own room sent about her: the same ones, once each, in order.
            ann.send(["type": "leave_room"])
            try await bob.waitFor("Ann leaving") { $0["type"] as? String == "participant_left" && Self.data($0)["user_id"] as? String == "ann" }
            let seenByAnn = await Self.updates(about: "ann", in: ann)
            let seenByBob = await Self.updates(about: "ann", in: bob)
            #expect(seenByAnn.count >= 2)
            #expect(seenByBob == seenByAnn)

            // B dies without a word: Cy, on A, sees Bob leave once B's heartbeats stop (storage.instance_timeout_s).
            let cy = try await RoomsClient.connect(port: a.port)
            try await RoomsTests.join(cy, room: "hall", user: "cy")
            let present = Self.data(try await cy.waitFor(type: "room_joined"))["participants"] as? [[String: Any]] ?? []
            #expect(present.compactMap { $0["user_id"] as? String } == ["bob", "cy"])
            b.kill()
            try await cy.waitFor("Bob's instance dying", timeout: .seconds(90)) {
                $0["type"] as? String == "participant_left" && Self.data($0)["user_id"] as? String == "bob"
            }
            #expect(try await !Self.isPresent("bob", in: "hall", port: a.port))
            // A stops on SIGTERM as cleanly as on SQLite: Cy leaves at once, and the process exits 0.
            a.signal(SIGTERM)
            #expect(try await a.waitForExit(timeout: .seconds(60)) == 0, "\(a.logText.suffix(2_000))")
            #expect(try database.run("SELECT count(*) FROM room_member WHERE left_at IS NULL") == "0")
            #expect(try database.run("SELECT count(*) FROM attune_instance") == "0")
            await cy.close()
        } catch {
            Issue.record("\(error)\nA's log:\n\(a.logText.suffix(3_000))\nB's log:\n\(b.logText.suffix(3_000))")
        }
        await ann.close()
        await bob.close()
        try await a.stop()
        try await b.stop()
    }
}

extension ScaleOutTests {
    /// A database that is not there yet: the server starts, says storage is unavailable and goes
    /// on serving what does not need it; once the database exists, it is migrated and used.
    @Test func aMissingDatabaseLeavesTheRestServingUntilItAppears() async throws {
        let database = try PostgresTestDatabase(create: false)
        defer { database.drop() }
        try await withLiveServer(components: {
            $0.storageURL = database.url
            $0.postgres.timeout = 1
            $0.postgres.heartbeatInterval = 0.5
        }) { _, client in
            // The first heartbeat has found out why.
            #expect(try await TestData.eventually(every: .milliseconds(50)) {
                try await client.execute(uri: "/api/health", method: .get) { String(buffer: $0.body).contains("does not exist") }
            })
            try await client.execute(uri: "/api/health", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                let health = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any] ?? [:]
                #expect(health["storage"] as? String == "unavailable")
                let storage = (health["components"] as? [[String: Any]] ?? []).first { $0["name"] as? String == "storage" } ?? [:]
                #expect((storage["error"] as? String ?? "").contains("does not exist"), "\(storage)")
                #expect(!(storage["error"] as? String ?? "").contains(database.url))
            }
            try await client.execute(uri: "/api/sessions", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(String(buffer: response.body).contains("storage is unavailable"))
            }
            try await client.execute(uri: "/api/emotion/text", method: .post, body: ByteBuffer(string: #"{"text":"I finally got the job!"}"#)) {
                #expect($0.status == .ok)
            }

            try database.create()
            #expect(try await TestData.eventually(every: .milliseconds(50)) {
                try await client.execute(uri: "/api/health", method: .get) { $0.status == .ok }
            })
            try await client.execute(uri: "/api/sessions", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("sessions"))
            }
            #expect(try database.run("SELECT max(version) FROM attune_migration") == "2")
        }
    }

    /// The sample configuration of the README (deploy/nginx-attune.conf) in a real nginx in
    /// front of two instances: the page, the API and the WebSockets work through it, requests
    /// are shared between the instances, and participants on either see each other.
    @Test func twoInstancesBehindNginx() async throws {
        let database = try PostgresTestDatabase()
        defer { database.drop() }
        let a = try AttuneServerProcess(arguments: Self.arguments(database))
        let b = try AttuneServerProcess(arguments: Self.arguments(database))
        let proxy = try NginxProcess(site: try NginxProcess.sample(ports: [a.port, b.port]))
        defer { proxy.stop() }
        do {
            let page = try await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(proxy.port)/"), timeout: .seconds(30))
            let html = String(buffer: try await page.body.collect(upTo: 1 << 20))
            #expect(page.status == .ok && html.contains("app.js"))
            var instances: [String] = []
            for _ in 0..<4 {
                let (status, health) = try await Self.getJSON(port: proxy.port, "/api/health")
                #expect(status == 200 && health["storage"] as? String == "ok")
                instances.append(health["instance"] as? String ?? "?")
            }
            #expect(Set(instances).count == 2, "round robin over both instances: \(instances)")

            // The companion's socket, as the page opens it (same origin as the proxy).
            var companion = ConversationClient(port: proxy.port)
            companion.headers = ["Origin": "http://127.0.0.1:\(proxy.port)"]
            let speech = try ravdessSamples("03-01-05-02-01-01-01")
            let events = try await companion.stream(speech) { $0.contains { $0.type == "transcript_final" } }
            let final = try #require(events.first { $0.type == "transcript_final" })
            #expect((final["text"] ?? "").lowercased().contains("kids are talking"), "\(events.map(\.type))")

            // Two participants through the proxy (one on each instance, by round robin) see each other.
            let ann = try await RoomsClient.connect(port: proxy.port)
            let bob = try await RoomsClient.connect(port: proxy.port)
            try await RoomsTests.join(ann, room: "lobby", user: "ann")
            #expect(try await TestData.eventually(every: .milliseconds(50)) { try await Self.isPresent("ann", in: "lobby", port: a.port) })
            try await RoomsTests.join(bob, room: "lobby", user: "bob")
            try await ann.waitFor("Bob joining") { $0["type"] as? String == "participant_joined" }
            ann.send(["type": "audio_track_added", "track_id": "mic"])
            try await ann.stream(speech + [Float](repeating: 0, count: 16_000), track: "mic")
            try await bob.waitFor("Ann's emotion") { $0["type"] as? String == "emotion_update" && Self.data($0)["user_id"] as? String == "ann" }
            await ann.close()
            await bob.close()
        } catch {
            Issue.record("\(error)\nnginx: \(proxy.errorLog)\nA's log:\n\(a.logText.suffix(2_000))\nB's log:\n\(b.logText.suffix(2_000))")
        }
        try await a.stop()
        try await b.stop()
    }
}

/// Debian's nginx as a child of the test, in a folder of its own, on a free loopback port.
final class NginxProcess: @unchecked Sendable {
    let folder: URL
    let port: Int
    private let process = Process()

    /// The README's sample configuration with its upstream ports replaced by `ports`.
    static func sample(ports: [Int]) throws -> String {
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("deploy/nginx-attune.conf")
        var text = try String(contentsOf: file, encoding: .utf8)
        for (sample, port) in zip([8081, 8082], ports) { text = text.replacingOccurrences(of: "127.0.0.1:\(sample);", with: "127.0.0.1:\(port);") }
        return text
    }

    /// Starts nginx with `site` inside its `http` block (its `listen 8080` moved to a free loopback port).
    init(site: String) throws {
        folder = URL(fileURLWithPath: TestData.temporaryDirectory())
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        port = try EmbeddedLLMServer.freePort()
        let path = folder.path
        let configuration = """
            \(geteuid() == 0 ? "user root;" : "")
            worker_processes 1;
            pid \(path)/nginx.pid;
            error_log \(path)/error.log warn;
            events { worker_connections 512; }
            http {
                access_log off;
                client_body_temp_path \(path)/body;
                proxy_temp_path \(path)/proxy;
                fastcgi_temp_path \(path)/fastcgi;
                uwsgi_temp_path \(path)/uwsgi;
                scgi_temp_path \(path)/scgi;
            \(site.replacingOccurrences(of: "listen 8080;", with: "listen 127.0.0.1:\(port);"))
            }
            """
        try configuration.write(to: folder.appendingPathComponent("nginx.conf"), atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: FileManager.default.isExecutableFile(atPath: "/usr/sbin/nginx") ? "/usr/sbin/nginx" : "/usr/bin/env")
        process.arguments = (process.executableURL?.path == "/usr/bin/env" ? ["nginx"] : []) + ["-p", path, "-c", path + "/nginx.conf", "-g", "daemon off;"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(30)
        // nginx writes its pid file once its listening sockets are open.
        let pidFile = folder.appendingPathComponent("nginx.pid").path
        while Date() < deadline, process.isRunning {
            if FileManager.default.fileExists(atPath: pidFile) { return }
            usleep(20_000)
        }
        stop()
        throw NginxError(description: "nginx did not start: \(errorLog)")
    }

    var errorLog: String { (try? String(contentsOf: folder.appendingPathComponent("error.log"), encoding: .utf8)) ?? "" }

    /// Stops nginx (its workers with it) and removes its folder.
    func stop() {
        if process.isRunning {
            process.terminate()
            let deadline = Date().addingTimeInterval(10)
            while process.isRunning, Date() < deadline { usleep(20_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        try? FileManager.default.removeItem(at: folder)
    }

    struct NginxError: Error, CustomStringConvertible { let description: String }
}
