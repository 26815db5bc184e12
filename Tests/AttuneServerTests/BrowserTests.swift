import AsyncHTTPClient
import AttuneAgent
import AttuneAudio
import AttuneFace
import AttuneBench
import AttuneTestSupport
import Foundation
import NIOCore
import Testing

/// The companion page in a real headless Chromium driven through chromium-driver (WebDriver),
/// with a fake microphone that plays a RAVDESS sentence, against the real `attune serve`
/// binary with its embedded language model. Screenshots land in `.build/artifacts/`.
@Suite(.serialized) struct BrowserTests {
    static let driverPath = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"].first(where: FileManager.default.isExecutableFile)

    @Test func talkHearBargeInAndReconnect() async throws {
        guard let driverPath = Self.driverPath else {
            Issue.record("chromium-driver is not installed (make test installs it)")
            return
        }
        let artifacts = TestData.packageRoot.appendingPathComponent(".build/artifacts")
        try FileManager.default.createDirectory(at: artifacts, withIntermediateDirectories: true)
        // The fake microphone loops this file: the sentence twice, the second time about two
        // seconds after the first (so it starts while the reply to the first is being generated
        // or played: a barge-in), then silence for the reply to the second.
        let speech = try ravdessSamples("03-01-01-01-01-01-01")
        let microphone = URL(fileURLWithPath: TestData.temporaryDirectory() + ".wav")
        let loop = speech + [Float](repeating: 0, count: 4_800) + speech + [Float](repeating: 0, count: 16_000 * 10)
        try WAVFile.encode(AudioBuffer(samples: loop, sampleRate: 16_000)).write(to: microphone)

        let port = try EmbeddedLLMServer.freePort()
        let data = TestData.temporaryDirectory()
        let arguments = ["--set", "llm.first_token_timeout_s=30", "--set", "llm.total_timeout_s=90"]
        var server = try AttuneServerProcess(port: port, dataDirectory: data, arguments: arguments)
        try await waitUntilHealthy(port: port)
        let driver = try await WebDriver.launch(driverPath: driverPath, microphone: microphone.path)
        // Whatever happens below, chromedriver and every browser process it started are killed.
        defer { ProcessTree.kill(driver.driver.processIdentifier) }
        try await driver.open("http://127.0.0.1:\(port)/")
        try await driver.waitFor("the page to connect", timeout: 120) {
            try await driver.script("return document.getElementById('connection').dataset.state") as? String == "open"
        }
        try await driver.screenshot(to: artifacts.appendingPathComponent("browser-1-connected.png"))

        // Talk: the fake microphone says "Kids are talking by the door".
        try await driver.click("mic")
        try await driver.waitFor("the transcript, an emotion tag and a spoken reply", timeout: 90) {
            let state = try await driver.script("""
                const s = window.attuneStats;
                return { heard: s.transcripts.join(' ').toLowerCase(), tags: document.querySelectorAll('.bubble.user .tag').length,
                         reply: [...document.querySelectorAll('.bubble.bot .text')].map(e => e.textContent).join(' '),
                         played: s.replyFramesPlayed, emotion: document.getElementById('emotion-label').textContent,
                         voice: document.getElementById('channel-voice').textContent, words: document.getElementById('channel-text').textContent }
                """) as? [String: Any] ?? [:]
            // The panel shows the voice and the words side by side.
            return (state["heard"] as? String ?? "").contains("kids are talking") && (state["tags"] as? Int ?? 0) > 0
                && !(state["reply"] as? String ?? "").isEmpty && (state["played"] as? Int ?? 0) > 0
                && (state["emotion"] as? String ?? "—") != "—"
                && (state["voice"] as? String ?? "—") != "—" && (state["words"] as? String ?? "—") != "—"
        }
        try await driver.screenshot(to: artifacts.appendingPathComponent("browser-2-conversation.png"))

        // Barge-in: the second sentence stops the reply to the first, on the page and on the server.
        try await driver.waitFor("a reply to be interrupted", timeout: 90) {
            let state = try await driver.script("""
                return { stopped: window.attuneStats.stopped, marked: document.querySelectorAll('.bubble.bot.interrupted').length }
                """) as? [String: Any] ?? [:]
            return (state["stopped"] as? Int ?? 0) > 0 && (state["marked"] as? Int ?? 0) > 0
        }
        try await driver.screenshot(to: artifacts.appendingPathComponent("browser-3-barge-in.png"))

        // Reconnect: the server goes away and comes back on the same port.
        try await server.stop()
        try await driver.waitFor("the page to notice", timeout: 30) {
            try await driver.script("return document.getElementById('connection').dataset.state") as? String == "closed"
        }
        try await driver.screenshot(to: artifacts.appendingPathComponent("browser-4-disconnected.png"))
        server = try AttuneServerProcess(port: port, dataDirectory: data, arguments: arguments)
        try await driver.waitFor("the page to reconnect", timeout: 120) {
            try await driver.script("return window.attuneStats.connected") as? Int ?? 0 >= 2
        }
        try await driver.screenshot(to: artifacts.appendingPathComponent("browser-5-reconnected.png"))

        // A phone-sized window: one column, nothing wider than the screen, controls labelled.
        try await driver.resize(width: 390, height: 844)
        let layout = try await driver.script("""
            return { overflow: document.documentElement.scrollWidth - window.innerWidth,
                     unlabelled: [...document.querySelectorAll('input, select, button')].filter(e =>
                        !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim()).length }
            """) as? [String: Any] ?? [:]
        #expect(layout["overflow"] as? Int ?? 1 <= 0, "\(layout)")
        #expect(layout["unlabelled"] as? Int ?? 1 == 0, "\(layout)")
        try await driver.screenshot(to: artifacts.appendingPathComponent("browser-6-phone.png"))
        try await server.stop()
        await driver.quit()
    }
}

extension BrowserTests {
    /// A server with `server.api_token`: the page asks for the token (again after a wrong one),
    /// keeps it in localStorage, and a reloaded page connects without asking.
    @Test func thePageAsksForTheAccessTokenOnceAndKeepsIt() async throws {
        guard let driverPath = Self.driverPath else {
            Issue.record("chromium-driver is not installed (make test installs it)")
            return
        }
        let token = "t-" + UUID().uuidString
        let port = try EmbeddedLLMServer.freePort()
        let server = try AttuneServerProcess(port: port, arguments: ["--set", "llm.embedded=false", "--set", "server.api_token=\(token)"])
        defer { server.kill() }
        try await waitUntilHealthy(port: port, token: token)
        let silence = URL(fileURLWithPath: TestData.temporaryDirectory() + ".wav")
        try WAVFile.encode(AudioBuffer(samples: [Float](repeating: 0, count: 16_000), sampleRate: 16_000)).write(to: silence)
        let driver = try await WebDriver.launch(driverPath: driverPath, microphone: silence.path)
        defer { ProcessTree.kill(driver.driver.processIdentifier) }

        try await driver.open("http://127.0.0.1:\(port)/")
        // A wrong token is refused and asked for again; the right one is kept.
        try await driver.answerPrompt("wrong-token")
        try await driver.answerPrompt(token)
        try await driver.waitFor("the page to connect with the token", timeout: 60) {
            try await driver.script("return document.getElementById('connection').dataset.state") as? String == "open"
        }
        #expect(try await driver.script("return localStorage.getItem('attune.token')") as? String == token)
        #expect(try await driver.script("return document.getElementById('persona').options.length") as? Int ?? 0 > 0)

        try await driver.open("http://127.0.0.1:\(port)/")
        try await driver.waitFor("the reloaded page to connect without asking", timeout: 60) {
            try await driver.script("return document.getElementById('connection').dataset.state") as? String == "open"
        }
        #expect(try await driver.pendingPrompt() == nil)
        await driver.quit()
    }
}

extension BrowserTests {
    /// The rooms page in three browsers: two in room r1, each with a fake microphone playing a
    /// different RAVDESS sentence, and one in room r2. Each of the two sees the other's emotion;
    /// the third sees neither.
    @Test func twoBrowsersInARoomSeeEachOthersEmotionAndAThirdRoomSeesNothing() async throws {
        guard let driverPath = Self.driverPath else {
            Issue.record("chromium-driver is not installed (make test installs it)")
            return
        }
        let artifacts = TestData.packageRoot.appendingPathComponent(".build/artifacts")
        try FileManager.default.createDirectory(at: artifacts, withIntermediateDirectories: true)
        let server = try await Self.serverWithoutLLM()
        defer { server.kill() }
        let port = server.port

        func microphone(_ clip: String) throws -> String {
            let speech = try ravdessSamples(clip)
            let url = URL(fileURLWithPath: TestData.temporaryDirectory() + ".wav")
            try WAVFile.encode(AudioBuffer(samples: speech + [Float](repeating: 0, count: 16_000 * 2), sampleRate: 16_000)).write(to: url)
            return url.path
        }
        let people = [("ann", "r1", "03-01-01-01-01-01-01"), ("bob", "r1", "03-01-05-02-02-01-02"), ("cy", "r2", "03-01-04-02-02-01-02")]
        var drivers: [WebDriver] = []
        defer { for driver in drivers { ProcessTree.kill(driver.driver.processIdentifier) } }
        for (name, room, clip) in people {
            let driver = try await WebDriver.launch(driverPath: driverPath, microphone: try microphone(clip))
            drivers.append(driver)
            try await driver.open("http://127.0.0.1:\(port)/rooms?room=\(room)&name=\(name)")
            try await driver.click("join")
            try await driver.waitFor("\(name) to join \(room)", timeout: 60) {
                try await driver.script("return window.roomsStats.joined") as? Bool == true
            }
        }
        let (ann, bob, cy) = (drivers[0], drivers[1], drivers[2])
        for (driver, other) in [(ann, "bob"), (bob, "ann")] {
            try await driver.waitFor("\(other)'s emotion on the page", timeout: 180) {
                let shown = try await driver.script("""
                    const tile = document.querySelector('.tile[data-user="\(other)"] .emotion');
                    return { updates: (window.roomsStats.updates['\(other)'] || []).length, label: tile ? tile.textContent : '' }
                    """) as? [String: Any] ?? [:]
                return (shown["updates"] as? Int ?? 0) > 0 && ["anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"]
                    .contains(shown["label"] as? String ?? "")
            }
        }
        try await ann.screenshot(to: artifacts.appendingPathComponent("rooms-1-ann.png"))
        try await bob.screenshot(to: artifacts.appendingPathComponent("rooms-2-bob.png"))
        // cy heard herself at most: nothing of r1.
        let seen = try await cy.script("""
            return { participants: window.roomsStats.participants, updates: Object.keys(window.roomsStats.updates),
                     tiles: [...document.querySelectorAll('.tile')].map(t => t.dataset.user) }
            """) as? [String: Any] ?? [:]
        #expect(seen["participants"] as? [String] == ["cy"], "\(seen)")
        #expect((seen["updates"] as? [String] ?? []).allSatisfy { $0 == "cy" }, "\(seen)")
        #expect(seen["tiles"] as? [String] == ["cy"], "\(seen)")
        try await cy.screenshot(to: artifacts.appendingPathComponent("rooms-3-other-room.png"))
        for driver in drivers { await driver.quit() }
    }
}

extension BrowserTests {
    /// The camera button with a fake camera playing real FER2013 faces: the page sends frames,
    /// draws the face box with its label, and shows the face channel.
    @Test func theCameraShowsAFaceBoxAndTheFaceChannel() async throws {
        guard let driverPath = Self.driverPath else {
            Issue.record("chromium-driver is not installed (make test installs it)")
            return
        }
        let artifacts = TestData.packageRoot.appendingPathComponent(".build/artifacts")
        try FileManager.default.createDirectory(at: artifacts, withIntermediateDirectories: true)
        let server = try await Self.serverWithoutLLM()
        defer { server.kill() }
        let camera = try CameraFiles(faces: ["happy", "surprise"])
        defer { camera.remove() }
        let driver = try await WebDriver.launch(driverPath: driverPath, microphone: camera.silence.path, camera: camera.video.path)
        defer { ProcessTree.kill(driver.driver.processIdentifier) }

        try await driver.open("http://127.0.0.1:\(server.port)/")
        try await driver.waitFor("the page to connect", timeout: 60) {
            try await driver.script("return document.getElementById('connection').dataset.state") as? String == "open"
        }
        try await driver.click("camera")
        try await driver.waitFor("a face box and the face channel", timeout: 120) {
            let shown = try await driver.script("""
                return { faces: window.attuneStats.faces.filter(f => f.length > 0).length,
                         channel: document.getElementById('channel-face').dataset.label || '',
                         caption: document.getElementById('camera-caption').textContent }
                """) as? [String: Any] ?? [:]
            return (shown["faces"] as? Int ?? 0) > 0 && ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]
                .contains(shown["channel"] as? String ?? "")
        }
        #expect(try await driver.script("return window.attuneStats.videoFramesSent") as? Int ?? 0 > 0)
        // The overlay holds the drawn box: some of its pixels are not transparent.
        let drawn = try await driver.script("""
            const c = document.getElementById('camera-overlay');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
            return n
            """) as? Int ?? 0
        #expect(drawn > 100)
        try await driver.screenshot(to: artifacts.appendingPathComponent("companion-camera.png"))
        try await driver.click("camera")
        await driver.quit()
    }

    /// The rooms page with "share my camera": the participant's face reaches the room.
    @Test func aRoomsParticipantSharesTheirCamera() async throws {
        guard let driverPath = Self.driverPath else {
            Issue.record("chromium-driver is not installed (make test installs it)")
            return
        }
        let server = try await Self.serverWithoutLLM()
        defer { server.kill() }
        let camera = try CameraFiles(faces: ["happy"])
        defer { camera.remove() }
        let driver = try await WebDriver.launch(driverPath: driverPath, microphone: camera.silence.path, camera: camera.video.path)
        defer { ProcessTree.kill(driver.driver.processIdentifier) }
        try await driver.open("http://127.0.0.1:\(server.port)/rooms?room=cam&name=dee")
        try await driver.click("share-camera")
        try await driver.click("join")
        try await driver.waitFor("dee's face in the room", timeout: 120) {
            let sources = try await driver.script("return window.roomsStats.sources") as? [String] ?? []
            return sources.contains("dee:face")
        }
        #expect(try await driver.script("return window.roomsStats.videoFramesSent") as? Int ?? 0 > 0)
        await driver.quit()
    }

    /// Upload and reply on the companion page: a recording dropped on the page goes to
    /// `/api/converse`; its transcript, emotion tag, reply and spoken reply come back.
    @Test func aDroppedRecordingIsTranscribedAndAnswered() async throws {
        guard let driverPath = Self.driverPath else {
            Issue.record("chromium-driver is not installed (make test installs it)")
            return
        }
        let server = try await Self.serverWithoutLLM()
        defer { server.kill() }
        let camera = try CameraFiles(faces: ["happy"])
        defer { camera.remove() }
        let driver = try await WebDriver.launch(driverPath: driverPath, microphone: camera.silence.path)
        defer { ProcessTree.kill(driver.driver.processIdentifier) }
        try await driver.open("http://127.0.0.1:\(server.port)/")
        try await driver.waitFor("the page to load its settings", timeout: 60) {
            try await driver.script("return document.getElementById('persona').options.length") as? Int ?? 0 > 0
        }
        // The drop a person makes: a DragEvent carrying the file, on the page.
        let clip = try Data(contentsOf: TestData.ravdess("03-01-01-01-01-01-01")).base64EncodedString()
        _ = try await driver.script("""
            const bytes = Uint8Array.from(atob('\(clip)'), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], 'kids.wav', { type: 'audio/wav' }));
            document.getElementById('drop-zone').dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }));
            return true
            """)
        try await driver.waitFor("the dropped recording's answer", timeout: 120) {
            try await driver.script("return window.attuneStats.uploads.length") as? Int ?? 0 > 0
        }
        let upload = try #require(try await driver.script("return window.attuneStats.uploads[0]") as? [String: Any])
        #expect((upload["transcript"] as? String)?.lowercased().contains("kids are talking") == true, "\(upload)")
        #expect(!(upload["reply"] as? String ?? "").isEmpty)
        #expect(upload["audioBytes"] as? Int ?? 0 > 1_000)
        let bubbles = try await driver.script("""
            return [...document.querySelectorAll('#chat .bubble')].map((b) => b.className + ':' + b.textContent)
            """) as? [String] ?? []
        #expect(bubbles.count == 2 && bubbles[0].contains("user") && bubbles[0].lowercased().contains("kids are talking") && bubbles[1].contains("bot"), "\(bubbles)")
        #expect(try await driver.script("return document.querySelector('#chat .bubble.user .tag') !== null") as? Bool == true)
        await driver.quit()
    }

    /// A server without the language model, healthy (killed again if it never gets there).
    static func serverWithoutLLM() async throws -> AttuneServerProcess {
        let server = try AttuneServerProcess(port: try EmbeddedLLMServer.freePort(), arguments: ["--set", "llm.embedded=false"])
        do {
            try await waitUntilHealthy(port: server.port)
        } catch {
            server.kill()
            throw error
        }
        return server
    }

    /// What a browser with a fake camera plays: a second of silence and a video of `faces`.
    struct CameraFiles {
        let silence = URL(fileURLWithPath: TestData.temporaryDirectory() + ".wav")
        let video = URL(fileURLWithPath: TestData.temporaryDirectory() + ".y4m")

        init(faces: [String]) throws {
            try WAVFile.encode(AudioBuffer(samples: [Float](repeating: 0, count: 16_000), sampleRate: 16_000)).write(to: silence)
            try BrowserTests.cameraFile(faces: faces).write(to: video)
        }

        func remove() {
            try? FileManager.default.removeItem(at: video)
            try? FileManager.default.removeItem(at: silence)
        }
    }

    /// A Y4M video (640×480, 2 frames a second, 4:2:0) of FER2013 faces placed on a grey frame:
    /// what Chromium's fake camera plays, in a loop.
    static func cameraFile(faces folders: [String]) throws -> Data {
        var data = Data("YUV4MPEG2 W640 H480 F2:1 Ip A1:1 C420jpeg\n".utf8)
        for (index, folder) in folders.enumerated() {
            let url = try TestData.ferImages(folder: folder)[0]
            let face = try ImageDecoder().decode([UInt8](Data(contentsOf: url)))
            let frame = face.placed(inFrameOf: 640, 480, side: 260, x: 180 + 20 * index, y: 100)
            for _ in 0..<4 {
                data.append(Data("FRAME\n".utf8))
                data.append(Data((0..<(640 * 480)).map { frame.pixels[$0 * 3] }))  // grey: Y is the value
                data.append(Data(repeating: 128, count: 2 * 320 * 240))  // no colour
            }
        }
        return data
    }
}

/// A minimal W3C WebDriver client for chromium-driver.
private final class WebDriver: Sendable {
    let driver: Process
    let base: String
    let session: String

    private init(driver: Process, base: String, session: String) {
        self.driver = driver
        self.base = base
        self.session = session
    }

    /// - Parameter camera: a Y4M file the fake camera plays, if any.
    static func launch(driverPath: String, microphone: String, camera: String? = nil) async throws -> WebDriver {
        let port = try EmbeddedLLMServer.freePort()
        let driver = Process()
        driver.executableURL = URL(fileURLWithPath: driverPath)
        driver.arguments = ["--port=\(port)"]
        driver.standardOutput = FileHandle.nullDevice
        driver.standardError = FileHandle.nullDevice
        // chromedriver's profile folders and Chromium's own temporary files go in the test's
        // scratch folder, which is removed even when the browser is killed. A short name: the
        // socket Chromium makes in it must fit a Unix socket path (107 bytes).
        let temporary = TestData.scratch.appendingPathComponent("cr-\(port)").path
        try FileManager.default.createDirectory(atPath: temporary, withIntermediateDirectories: true)
        driver.environment = ProcessInfo.processInfo.environment.merging(["TMPDIR": temporary]) { $1 }
        try driver.run()
        let base = "http://127.0.0.1:\(port)"
        let capabilities: [String: Any] = [
            "capabilities": ["alwaysMatch": [
                "browserName": "chrome",
                // Dialogs stay open until a test answers them.
                "unhandledPromptBehavior": "ignore",
                "goog:chromeOptions": [
                    "binary": "/usr/bin/chromium",
                    "args": [
                        "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,900",
                        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                        "--use-file-for-fake-audio-capture=\(microphone)", "--autoplay-policy=no-user-gesture-required",
                    ] + (camera.map { ["--use-file-for-fake-video-capture=\($0)"] } ?? []),
                ],
            ]],
        ]
        let deadline = ContinuousClock.now + .seconds(30)
        var lastError = "no answer"
        while ContinuousClock.now < deadline {
            do {
                let value = try await request("POST", base + "/session", capabilities) as? [String: Any]
                if let session = value?["sessionId"] as? String {
                    return WebDriver(driver: driver, base: base, session: session)
                }
                lastError = "\(value ?? [:])"
            } catch {
                lastError = "\(error)"
            }
            try await Task.sleep(for: .milliseconds(250))
        }
        ProcessTree.kill(driver.processIdentifier)
        throw WebDriverError("chromedriver did not create a session: \(lastError)")
    }

    func open(_ url: String) async throws { _ = try await command("url", ["url": url]) }

    func script(_ source: String) async throws -> Any? {
        try await command("execute/sync", ["script": source, "args": []])
    }

    func resize(width: Int, height: Int) async throws {
        _ = try await command("window/rect", ["width": width, "height": height])
    }

    func click(_ id: String) async throws {
        let found = try await command("element", ["using": "css selector", "value": "#\(id)"]) as? [String: Any]
        guard let element = found?.values.first as? String else { throw WebDriverError("no element #\(id)") }
        _ = try await command("element/\(element)/click", [:])
    }

    func screenshot(to url: URL) async throws {
        guard let encoded = try await Self.request("GET", "\(base)/session/\(session)/screenshot", nil) as? String,
            let png = Data(base64Encoded: encoded)
        else { throw WebDriverError("no screenshot") }
        try png.write(to: url)
    }

    func waitFor(_ what: String, timeout: Double, _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(timeout)
        while ContinuousClock.now < deadline {
            if (try? await condition()) == true { return }
            try await Task.sleep(for: .milliseconds(300))
        }
        let log = (try? await script("return JSON.stringify(window.attuneStats) + ' ' + document.body.innerText.slice(0, 600)")) as? String ?? ""
        throw WebDriverError("timed out after \(Int(timeout)) s waiting for \(what); page: \(log)")
    }

    /// The text of the dialog the page shows, or nil when there is none.
    func pendingPrompt() async throws -> String? {
        try? await Self.request("GET", "\(base)/session/\(session)/alert/text", nil) as? String
    }

    /// Waits for the page's `prompt()`, types `text` into it and accepts it.
    func answerPrompt(_ text: String, timeout: Double = 60) async throws {
        let deadline = ContinuousClock.now + .seconds(timeout)
        while try await pendingPrompt() == nil {
            guard ContinuousClock.now < deadline else { throw WebDriverError("no prompt appeared within \(Int(timeout)) s") }
            try await Task.sleep(for: .milliseconds(200))
        }
        _ = try await command("alert/text", ["text": text])
        _ = try await command("alert/accept", [:])
    }

    func quit() async {
        _ = try? await Self.request("DELETE", "\(base)/session/\(session)", nil)
        ProcessTree.kill(driver.processIdentifier)
    }

    private func command(_ path: String, _ body: [String: Any]) async throws -> Any? {
        try await Self.request("POST", "\(base)/session/\(session)/\(path)", body)
    }

    /// Sends a WebDriver request; returns its `value`, or throws the error it reports.
    private static func request(_ method: String, _ url: String, _ body: [String: Any]?) async throws -> Any? {
        var request = HTTPClientRequest(url: url)
        request.method = .init(rawValue: method)
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: try JSONSerialization.data(withJSONObject: body)))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        let data = try await response.body.collect(upTo: 1 << 26)
        let object = try JSONSerialization.jsonObject(with: Data(buffer: data), options: [.fragmentsAllowed]) as? [String: Any]
        if response.status != .ok { throw WebDriverError("\(url): \(response.status) \(object?["value"] ?? "")") }
        return object?["value"]
    }
}

private struct WebDriverError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
