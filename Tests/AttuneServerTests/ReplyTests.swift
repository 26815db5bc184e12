import AsyncHTTPClient
import AttuneAgent
import AttuneAudio
import AttuneBench
import AttuneServer
import AttuneSpeech
import AttuneTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// Replies through the real stack: the embedded llama-server with the Qwen model, Piper speech,
/// Whisper and the history database. One live server serves every scenario, so the language
/// model loads once.
@Suite(.serialized) struct ReplyTests {
    static let silence = [Float](repeating: 0, count: 16_000)

    /// Done once the first reply has finished.
    static let replyDone: @Sendable ([ReceivedEvent]) -> Bool = { events in events.contains { $0.type == "reply_done" } }

    @Test func spokenTurnsAreAnsweredWithEmpathyAndSpeechAndRemembered() async throws {
        let audio = try ravdessSamples("03-01-01-01-01-01-01")
        let app = try await TestSupport.application { $0.llmEmbedded = true }
        let lastChild = ChildBox()
        try await app.test(.live) { client in
            let port = client.port!
            let llm = try await waitForLLM(client)
            // llama-server reads prompts in small steps, so that a dropped request stops soon
            // (`llm.batch_size`; it checks for dropped requests only between steps).
            let arguments = ProcessTree.arguments(of: try #require(llm.pid))
            let batch = try #require(arguments.firstIndex(of: "--batch-size"))
            #expect(arguments[batch + 1] == "\(EmbeddedLLMServer.Settings.defaultBatchSize)", "\(arguments)")

            // 1. A spoken turn: transcript, text emotion, reply text and speech that Whisper can read.
            var conversation = ConversationClient(port: port)
            conversation.settleTimeout = .seconds(90)
            let events = try await conversation.stream(audio, until: Self.replyDone)
            let types = events.map(\.type)
            let final = try #require(events.first { $0.type == "transcript_final" })
            #expect(final["text"]?.lowercased().contains("kids are talking") == true)
            #expect(types.contains("emotion"))
            let started = try #require(types.firstIndex(of: "reply_started"))
            let firstDelta = try #require(types.firstIndex(of: "reply_text_delta"))
            let firstAudio = try #require(types.firstIndex(of: "reply_audio"))
            let done = try #require(events.first { $0.type == "reply_done" })
            #expect(started < firstDelta && firstDelta < firstAudio)
            #expect(done["interrupted"] == "0")
            let replyText = done["text"] ?? ""
            #expect(!replyText.isEmpty)
            // The reply opens with the plan's few words, said at once (kept speech), and the
            // model's words follow them.
            let opener = try #require(events[started]["opener"])
            #expect(events[firstDelta]["text"] == opener)
            #expect(replyText.hasPrefix(opener) && replyText.count > opener.count + 5, "\(replyText)")
            // Each reply_audio header is followed by its binary frame of exactly that many samples.
            let headers = events.filter { $0.type == "reply_audio" }
            let frames = events.filter { $0.type == "audio_frame" }
            #expect(headers.count == frames.count && !frames.isEmpty)
            for (header, frame) in zip(headers, frames) {
                #expect(Int(header["samples"] ?? "") == frame.audio.count / 2, "\(frame.fields) \(frame.audio.count)")
            }
            let rate = Int(headers[0]["sample_rate"] ?? "") ?? 0
            #expect(rate == 22_050)
            let speech = AudioBuffer(samples: PCM.floats(fromInt16LittleEndian: frames.flatMap(\.audio)), sampleRate: rate)
            let heard = try await transcribe(speech, client: client)
            let (errors, words) = WordErrorRate.errors(reference: replyText, hypothesis: heard)
            #expect(Double(errors) / Double(max(words, 1)) < 0.5, "said \(replyText), heard \(heard)")
            // Timings of the turn.
            let timings = try #require(done["timings"])
            for key in ["transcript_ms", "first_token_ms", "first_audio_ms", "answer_audio_ms", "total_ms"] { #expect(timings.contains(key)) }
            let measured = try #require(JSONSerialization.jsonObject(with: Data(timings.utf8)) as? [String: Double])
            #expect(try #require(measured["answer_audio_ms"]) > (try #require(measured["first_audio_ms"])))

            // 1b. A pause mid-sentence: what was started on "Kids are talking" is dropped when
            // the speaker goes on; one reply answers the whole sentence.
            let before = try await speculationCounts(client)
            let cut = 25_040  // the clip's quietest 10 ms mid-sentence (1.56 s)
            let paused = Array(audio[..<cut]) + [Float](repeating: 0, count: 14_400) + Array(audio[cut...])
            // A long end-of-turn silence, so that the final pause's transcript and the model's
            // start are ready before the turn ends on a loaded machine too (with 1500 ms a busy
            // machine's transcript came 2.5 s late and nothing had been started).
            var pausing = ConversationClient(port: port)
            pausing.settleTimeout = .seconds(90)
            pausing.trailingSilence = 4.5
            let resumed = try await pausing.stream(
                paused, before: [.text(#"{"type":"configure","silence_ms":4000}"#)], until: Self.replyDone)
            #expect(resumed.filter { $0.type == "speech_ended" }.count == 1)
            #expect(resumed.filter { $0.type == "reply_started" }.count == 1)
            let whole = try #require(resumed.first { $0.type == "transcript_final" })["text"]?.lowercased() ?? ""
            #expect(whole.contains("talking") && Self.saysWordsAfterTheCut(whole), "\(whole)")
            let after = try await speculationCounts(client)
            let (begun, used, dropped) = (after.started - before.started, after.used - before.used, after.dropped - before.dropped)
            #expect(used == 1, "the final pause's start is used")
            let lead = try #require(resumed.first { $0.type == "reply_done" })["timings"] ?? ""
            #expect(lead.contains("speculation_lead_ms"), "\(lead)")
            #expect(begun == used + dropped, "every speculative start is used or dropped: \(begun) \(used) \(dropped)")
            if begun >= 2 { #expect(dropped >= 1) }

            // 1c. A pause whose words stop mid-sentence ("Kids are talking by") is held, and the
            // model is not started on it: the speaker will most likely go on, and a prompt read
            // only to be dropped would hold the cores when the real end comes. The pause's
            // silence cannot end the turn before its transcript is read
            // (`turn.await_pause_transcript`), so the hold is never late on a busy machine.
            let held = try #require(
                try await TurnBenchmarkTests.item(
                    of: audio, cutAfter: "by", pauseMs: 1_200, benchmark: TurnBenchmarkTests.quietBenchmark(pauses: [1_200])))
            let beforeHeld = try await speculationCounts(client)
            var holding = ConversationClient(port: port)
            holding.settleTimeout = .seconds(90)
            let heldEvents = try await holding.stream(held.audio, until: Self.replyDone)
            #expect(heldEvents.filter { $0.type == "speech_ended" }.count == 1)
            // The one turn has the whole sentence (a cut pause leaves "door" too short for a turn).
            let heldFinal = heldEvents.first { $0.type == "transcript_final" }?["text"]?.lowercased() ?? ""
            #expect(heldFinal.contains("door"), "\(heldFinal)")
            let afterHeld = try await speculationCounts(client)
            #expect(afterHeld.dropped == beforeHeld.dropped, "nothing was started in the held pause, so nothing was dropped")
            #expect(afterHeld.started - beforeHeld.started == afterHeld.used - beforeHeld.used)

            // 1d. In a held pause the model reads the prompt the turn would get up to the words so
            // far (`reply.read_ahead`): the reply's prompt finds in llama-server's cache the
            // conversation's start and, after it, the per-turn part (at least its system header
            // and "They sound"; all of it and the words when the feeling is read the same at the
            // end). Another sentence than before, in a new session: without reading ahead, the
            // prompt last read (the history of 1c) shares with it only the start and
            // "<|im_end|>", "\n", "<|im_start|>" ("user" follows there, "system" here).
            let dogs = try ravdessSamples("03-01-01-01-02-01-01")
            let heldDogs = try #require(
                try await TurnBenchmarkTests.item(
                    of: dogs, cutAfter: "by", pauseMs: 900, benchmark: TurnBenchmarkTests.quietBenchmark(pauses: [900])))
            var reading = ConversationClient(port: port)
            reading.settleTimeout = .seconds(90)
            let readAheadsBefore = try await metric("attune_read_aheads_total", client)
            let readEvents = try await reading.stream(heldDogs.audio, until: Self.replyDone)
            #expect(readEvents.filter { $0.type == "speech_ended" }.count == 1)
            #expect(try await metric("attune_read_aheads_total", client) > readAheadsBefore)
            let dogsDone = try #require(readEvents.first { $0.type == "reply_done" }?["timings"])
            let dogsTimings = try #require(JSONSerialization.jsonObject(with: Data(dogsDone.utf8)) as? [String: Double])
            let summary = "\(dogsTimings) \(readEvents.map { "\($0.type) \($0["text"] ?? "")" })"
            let cached = try #require(dogsTimings["prompt_tokens_cached"], "\(summary)")
            let model = try LLMEndpoint(pid: try #require(llm.pid))
            let start: Int = try await model.tokens(in: PromptBuilder(persona: .companion).context(history: []))
            // "<|im_end|>", "\n", "<|im_start|>", "system", "\n", "They", " sound".
            #expect(Int(cached) >= start + 7, "cached \(cached), start \(start): \(summary)")

            // 2. A crisis message gets calm support and a pointer to help.
            let crisis = try await ConversationClient(port: port).typed("I can't go on anymore, I want to end my life.")
            #expect(!crisis.contains { $0.type == "error" }, "\(crisis.filter { $0.type == "error" }.map(\.fields))")
            let crisisStart = try #require(crisis.first { $0.type == "reply_started" })
            #expect(crisisStart["crisis"] == "1")
            let crisisReply = try #require(crisis.first { $0.type == "reply_done" })["text"] ?? ""
            #expect(crisisReply.contains("988") || crisisReply.lowercased().contains("emergency"), "\(crisisReply)")

            // 3. Barge-in: speech over a reply (still generating, or still playing on the client)
            // stops it and records what was heard.
            var barging = ConversationClient(port: port)
            barging.settleTimeout = .seconds(90)
            // The speech begins about 0.3 s after the request (the clip's leading silence cut),
            // while the reply is still being generated or has only just started playing.
            let interrupted = try await barging.stream(
                Array(audio.dropFirst(11_200)), before: [.text(#"{"type":"user_text","text":"Tell me a long story about the sea, with many details."}"#)]
            ) { events in
                events.contains { $0.type == "stop_playback" } && events.filter { $0.type == "reply_done" }.count >= 2
            }
            let kinds = interrupted.map(\.type)
            let storyStarted = try #require(kinds.firstIndex(of: "reply_started"))
            let speechStart = try #require(kinds.firstIndex(of: "speech_started"))
            let stop = try #require(kinds.firstIndex(of: "stop_playback"))
            #expect(storyStarted < speechStart && speechStart < stop)
            let stoppedID = interrupted[stop]["reply"]
            #expect(stoppedID == "1")
            // No audio of the stopped reply after stop_playback, and the next turn is answered.
            #expect(!interrupted[stop...].contains { $0.type == "reply_audio" && $0["reply"] == stoppedID })
            #expect(interrupted[stop...].contains { $0.type == "reply_done" && $0["reply"] == "2" })

            // 4. The history has the turns, with emotions and timings.
            let sessions = try await client.execute(uri: "/api/sessions", method: .get) { response in
                try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
            }
            let list = try #require(sessions?["sessions"] as? [[String: Any]])
            #expect(list.count >= 3)
            let spoken = try #require(list.first { ($0["turnCount"] as? Int ?? 0) >= 1 && ($0["persona"] as? String) == "companion" })
            let id = try #require(spoken["id"] as? String)
            try await client.execute(uri: "/api/sessions/\(id)", method: .get) { response in
                #expect(response.status == .ok)
                let record = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                let turns = record?["turns"] as? [[String: Any]] ?? []
                #expect(!turns.isEmpty)
                #expect(turns.allSatisfy { ($0["timings"] as? [String: Any])?["totalMs"] != nil })
            }
            // The interrupted story is stored as interrupted.
            let story = try #require(list.first { ($0["turnCount"] as? Int ?? 0) >= 2 })
            try await client.execute(uri: "/api/sessions/\(story["id"] as? String ?? "")", method: .get) { response in
                let record = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                let turns = record?["turns"] as? [[String: Any]] ?? []
                #expect(turns.first?["interrupted"] as? Bool == true, "\(turns)")
            }

            // The turn timings are Prometheus histograms.
            try await client.execute(uri: "/metrics", method: .get) { response in
                let text = String(buffer: response.body)
                for name in ["attune_turn_first_token_seconds", "attune_turn_first_audio_seconds", "attune_interruption_stop_seconds"] {
                    #expect(text.contains(name + "_bucket"), "\(name) missing from /metrics")
                }
            }

            // 5. The managed llama-server comes back after it dies.
            let pid = try #require(llm.pid)
            kill(pid, SIGKILL)
            let restarted = try await waitForLLM(client, notPID: pid)
            #expect(restarted.pid != pid)
            #expect(restarted.restarts >= 1)
            lastChild.pid = restarted.pid
        }
        // Shutting the server down stopped its llama-server.
        let child = try #require(lastChild.pid)
        #expect(kill(child, 0) != 0, "llama-server \(child) still runs after shutdown")
    }

    @Test func anUnreachableLanguageModelGetsASpokenApologyAndTheSessionGoesOn() async throws {
        try await withLiveServer({
            $0.llm.baseURL = "http://127.0.0.1:9/v1"
            $0.llm.connectTimeout = 1
        }) { port in
            var client = ConversationClient(port: port)
            client.settleTimeout = .seconds(30)
            let events = try await client.typedTwice("How are you?", "Are you there?")
            let errors = events.filter { $0.type == "error" && $0["code"] == "llm_unavailable" }
            #expect(errors.count == 2, "\(events.map(\.type))")
            let replies = events.filter { $0.type == "reply_done" }
            #expect(replies.count == 2)
            // After the opener (said before the model was asked) comes the apology.
            #expect(replies.allSatisfy { $0["text"]?.hasSuffix(ReplySettings().apology) == true }, "\(replies.map { $0["text"] })")
            let frames = events.filter { $0.type == "audio_frame" }
            #expect(!frames.isEmpty && frames.allSatisfy { !$0.audio.isEmpty && Int($0["bytes"] ?? "") == $0.audio.count }, "\(frames.map { ($0["bytes"], $0.audio.count) })")
        }
    }

    @Test func withoutSpeechSynthesisTheReplyStillArrivesAsText() async throws {
        try await withLiveServer({
            $0.llm.baseURL = "http://127.0.0.1:9/v1"
            $0.llm.connectTimeout = 1
            $0.piperDirectory = "/nonexistent/piper"
            $0.synthesis.defaultVoice = "joe"
        }) { port in
            let events = try await ConversationClient(port: port).typed("Hello?")
            #expect(events.contains { $0.type == "error" && $0["code"] == "tts_failed" })
            #expect(events.contains { $0.type == "reply_text_delta" })
            #expect(!events.contains { $0.type == "audio_frame" })
        }
    }

    @Test func historySurvivesARestartAndCanBeErased() async throws {
        let data = TestData.temporaryDirectory()
        let edit: (inout AttuneConfiguration) -> Void = {
            $0.dataDirectory = data
            $0.llm.baseURL = "http://127.0.0.1:9/v1"
            $0.llm.connectTimeout = 1
        }
        try await withLiveServer(edit) { port in
            _ = try await ConversationClient(port: port).typed("Remember this, please.")
        }
        let app = try await TestSupport.application(edit)
        try await app.test(.router) { client in
            let id = try await client.execute(uri: "/api/sessions", method: .get) { response -> String in
                let body = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                let sessions = body?["sessions"] as? [[String: Any]] ?? []
                #expect(sessions.count == 1)
                #expect(sessions.first?["turnCount"] as? Int == 1)
                return sessions.first?["id"] as? String ?? ""
            }
            try await client.execute(uri: "/api/sessions/\(id)", method: .get) { response in
                let text = String(buffer: response.body)
                #expect(text.contains("Remember this, please."))
            }
            try await client.execute(uri: "/api/sessions/\(id)", method: .delete) { #expect($0.status == .noContent) }
            try await client.execute(uri: "/api/sessions/\(id)", method: .get) { #expect($0.status == .notFound) }
            try await client.execute(uri: "/api/sessions/\(id)", method: .delete) { #expect($0.status == .notFound) }
        }
    }

    @Test func speechRoutesAndSessionSettings() async throws {
        try await withLiveServer({ $0.llm.baseURL = "http://127.0.0.1:9/v1" }) { port in
            let events = try await ConversationClient(port: port).send([
                #"{"type":"configure","persona":"interviewer","voice":"ava","rate":1.2,"silence_ms":800}"#,
                #"{"type":"configure","voice":"nobody"}"#,
                #"{"type":"configure","rate":9}"#,
                #"{"type":"configure","silence_ms":5}"#,
                #"{"type":"playback","reply":1}"#,
            ], until: { $0.filter { $0.type == "error" }.count >= 4 })
            let configured = try #require(events.first { $0.type == "configured" })
            #expect(configured["persona"] == "interviewer" && configured["voice"] == "ava" && configured["silence_ms"] == "800")
            #expect(events.filter { $0.type == "error" && $0["code"] == "bad_setting" }.count == 3)
            #expect(events.contains { $0.type == "error" && $0["code"] == "bad_message" })
        }
        let app = try await TestSupport.application()
        try await app.test(.router) { client in
            try await client.execute(
                uri: "/api/tts", method: .post, body: ByteBuffer(string: #"{"text":"Hello from Attune.","voice":"maya"}"#)
            ) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "audio/wav")
                let audio = try AudioFileDecoder().decode(Data(buffer: response.body))
                #expect(audio.duration > 0.5)
            }
            try await client.execute(uri: "/api/tts", method: .post, body: ByteBuffer(string: #"{"text":"  "}"#)) {
                #expect($0.status == .unprocessableContent)
            }
            try await client.execute(uri: "/api/tts", method: .post, body: ByteBuffer(string: #"{"text":"hi","voice":"nobody"}"#)) {
                #expect($0.status == .unprocessableContent)
            }
            try await client.execute(uri: "/api/tts", method: .post, body: ByteBuffer(string: "not json")) {
                #expect($0.status == .badRequest)
            }
            try await client.execute(uri: "/api/voices", method: .get) { response in
                let text = String(buffer: response.body)
                #expect(text.contains("\"joe\"") && text.contains("female"))
            }
        }
    }
}

/// The embedded llama-server, asked directly how many tokens a prompt takes (its address and
/// key from the child process's command line and environment).
struct LLMEndpoint {
    let url: String
    let key: String

    init(pid: Int32) throws {
        let arguments = ProcessTree.arguments(of: pid)
        let port = try #require(arguments.firstIndex(of: "--port").map { arguments[$0 + 1] })
        url = "http://127.0.0.1:\(port)"
        key = try #require(ProcessTree.environment(of: pid)["LLAMA_API_KEY"])
    }

    /// Tokens of `messages` rendered by the model's chat template; a last assistant message is
    /// left open, as a prompt that goes on after it does not leave it.
    func tokens(in messages: [ChatMessage]) async throws -> Int {
        let rendered = try await post("/apply-template", ["messages": messages.map { ["role": $0.role.rawValue, "content": $0.content] }])
        let prompt = try #require(rendered["prompt"] as? String)
        return try #require(try await post("/tokenize", ["content": prompt])["tokens"] as? [Any]).count
    }

    private func post(_ path: String, _ body: [String: Any]) async throws -> [String: Any] {
        var request = HTTPClientRequest(url: url + path)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Authorization", value: "Bearer \(key)")
        request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        #expect(response.status == .ok, "\(path): \(response.status)")
        let data = try await response.body.collect(upTo: 1 << 20)
        return try #require(try JSONSerialization.jsonObject(with: Data(buffer: data)) as? [String: Any])
    }
}

/// Carries the child's pid out of the live-test closure.
private final class ChildBox: @unchecked Sendable {
    var pid: Int32?
}

extension ReplyTests {
    struct LLMState {
        let pid: Int32?
        let restarts: Int
    }

    /// Waits until health reports the embedded llama-server ready (and, after a kill, a new one).
    func waitForLLM(_ client: some TestClientProtocol, notPID: Int32? = nil) async throws -> LLMState {
        // Every persona's prompt start is read before the model counts as ready: 45 s on an
        // idle two-core machine that runs slowly, so a loaded one gets several times that.
        let deadline = ContinuousClock.now + .seconds(300)
        while ContinuousClock.now < deadline {
            let state = try await client.execute(uri: "/api/health", method: .get) { response -> LLMState? in
                let body = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                let components = body?["components"] as? [[String: Any]] ?? []
                guard let llm = components.first(where: { $0["name"] as? String == "llm" }), llm["loaded"] as? Bool == true,
                    let detail = llm["detail"] as? String
                else { return nil }
                // Health shows no process ids outside debug: find the child among this process's.
                let words = detail.split(separator: " ")
                let pid = ProcessTree.descendants(of: getpid()).first { ProcessTree.name(of: $0) == "llama-server" && $0 != notPID }
                let restarts = words.firstIndex(of: "restarts").flatMap { Int(words[$0 + 1]) } ?? 0
                return LLMState(pid: pid, restarts: restarts)
            }
            if let state, state.pid != nil, state.pid != notPID { return state }
            try await Task.sleep(for: .milliseconds(250))
        }
        throw CancellationError()
    }

    /// A counter of /metrics (0 before its first count).
    func metric(_ name: String, _ client: some TestClientProtocol) async throws -> Double {
        try await client.execute(uri: "/metrics", method: .get) { response in
            String(buffer: response.body).split(separator: "\n").first { $0.hasPrefix(name + " ") }
                .flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
        }
    }

    /// The speculative-start counters of /metrics: started, used, dropped.
    func speculationCounts(_ client: some TestClientProtocol) async throws -> (started: Double, used: Double, dropped: Double) {
        try await client.execute(uri: "/metrics", method: .get) { response in
            let lines = String(buffer: response.body).split(separator: "\n")
            func value(_ name: String) -> Double {
                lines.first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
            }
            return (
                value("attune_speculative_replies_started_total"), value("attune_speculative_replies_used_total"),
                value("attune_speculative_replies_dropped_total"))
        }
    }

    /// Whether a transcript of "Kids are talking by the door" cut mid-sentence has the words
    /// after the cut. Not "door" alone: this long-lived server's Whisper states fall back to
    /// sampled decodes, whose random numbers depend on every decode before, and one such decode
    /// heard "kids are talking by the...".
    static func saysWordsAfterTheCut(_ transcript: String) -> Bool {
        transcript.contains("door") || transcript.contains("by the")
    }

    /// Whisper's reading of `audio`, through `POST /api/transcribe`.
    func transcribe(_ audio: AudioBuffer, client: some TestClientProtocol) async throws -> String {
        try await client.execute(uri: "/api/transcribe", method: .post, body: ByteBuffer(data: WAVFile.encode(audio))) { response in
            let body = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
            return body?["text"] as? String ?? ""
        }
    }
}

extension ConversationClient {
    /// Sends text messages (no audio) and collects events until `done`.
    func send(
        _ messages: [String], until done: @escaping @Sendable ([ReceivedEvent]) -> Bool,
        react: @escaping @Sendable (ReceivedEvent, [ReceivedEvent]) -> [Extra] = { _, _ in [] }
    ) async throws -> [ReceivedEvent] {
        var client = self
        client.trailingSilence = 0
        // A cap against a hung server, not a timing check: a loaded 2-core machine can take
        // more than a minute for one reply of the local LLM.
        client.settleTimeout = .seconds(180)
        return try await client.stream([], before: messages.map { .text($0) }, until: done, react: react)
    }

    /// Types one message and waits for its reply to finish.
    func typed(_ text: String) async throws -> [ReceivedEvent] {
        try await send([Self.userText(text)]) { $0.contains { $0.type == "reply_done" } }
    }

    /// Types two messages, the second once the first reply is done, and waits for both replies.
    func typedTwice(_ first: String, _ second: String) async throws -> [ReceivedEvent] {
        let next = Self.userText(second)
        return try await send(
            [Self.userText(first)],
            until: { $0.filter { $0.type == "reply_done" }.count >= 2 },
            react: { event, events in
                event.type == "reply_done" && events.filter { $0.type == "reply_done" }.count == 1 ? [.text(next)] : []
            })
    }
}
