import AttuneAgent
import AttuneAudio
import AttuneConversation
import AttuneCore
import Foundation
import Hummingbird
import Logging
import Synchronization

/// Settings of `POST /api/converse` and the reply audio it keeps for download.
public struct ConverseSettings: Sendable, Equatable {
    /// Largest spoken reply kept, in bytes of 16-bit samples; audio past it is cut off.
    public var maxReplyAudioBytes = 4 << 20
    /// Replies kept for `GET /api/converse/audio/{id}.wav`; the oldest goes first.
    public var audioEntries = 32
    /// Seconds a reply's audio stays downloadable.
    public var audioSeconds = 900.0

    public init() {}
}

/// Upload and reply, the speech-to-speech design's one-shot turn: `POST /api/converse` takes a
/// recorded clip (any format `/api/transcribe` reads) or JSON text, and answers with the
/// transcript, the emotion, the reply text and the spoken reply as a WAV (a URL, or base64 with
/// `audio=base64`). The reply is made exactly as in a live session (a ``Responder``: plan,
/// guard, memory, storage); with `session_id` it continues a stored conversation.
struct ConverseController: Sendable {
    let components: ServerComponents
    let settings: ConverseSettings
    let maxBodyBytes: Int
    let audioStore: ReplyAudioStore
    let logger: Logger

    /// The JSON form of a request; an upload carries the same options as query parameters.
    struct Body: Decodable {
        var text: String?
        var persona: String?
        var voice: String?
        var sessionID: String?
        var audio: AudioForm?

        enum CodingKeys: String, CodingKey {
            case text, persona, voice, audio
            case sessionID = "session_id"
        }
    }

    /// How the reply audio is returned.
    enum AudioForm: String, Codable {
        case url, base64
    }

    struct Result: ResponseEncodable {
        let sessionID: String
        let transcript: String
        let emotion: EmotionEstimate?
        let emotions: [String: EmotionEstimate]
        let reply: String
        let audio: ReplyAudio?
        let timings: [String: Double]
        /// What went wrong without failing the request (the model or synthesis unavailable).
        let warnings: [String]

        enum CodingKeys: String, CodingKey {
            case transcript, emotion, emotions, reply, audio, timings, warnings
            case sessionID = "session_id"
        }
    }

    struct ReplyAudio: Encodable {
        let format = "wav"
        let sampleRate: Int
        let durationSeconds: Double
        let url: String?
        let data: String?

        enum CodingKeys: String, CodingKey {
            case format, url, data
            case sampleRate = "sample_rate"
            case durationSeconds = "duration_s"
        }
    }

    func addRoutes(to router: Router<some RequestContext>, catalog: RouteCatalog) {
        router.on("/api/converse", method: .post, catalog: catalog) { request, _ -> Result in
            var request = request
            let received = ContinuousClock.now
            let body = try await request.collectBody(upTo: maxBodyBytes)
            let isJSON = request.headers[.contentType]?.lowercased().hasPrefix("application/json") == true
            var options: Body
            var speech: [Float]?
            if isJSON {
                guard let decoded = try? JSONDecoder().decode(Body.self, from: Data(buffer: body)) else {
                    throw HTTPError(.badRequest, message: #"send JSON {"text": "...", "persona"?, "voice"?, "session_id"?, "audio"?: "url"|"base64"}, or an audio file"#)
                }
                options = decoded
            } else {
                let query = request.uri.queryParameters
                options = Body(
                    text: nil, persona: query["persona"].map(String.init), voice: query["voice"].map(String.init),
                    sessionID: query["session_id"].map(String.init), audio: nil)
                if let form = query["audio"] {
                    guard let value = AudioForm(rawValue: String(form)) else {
                        throw HTTPError(.badRequest, message: "audio must be url or base64")
                    }
                    options.audio = value
                }
                speech = try await components.decodeUpload(body).samples
            }
            return try await converse(options, speech: speech, received: received)
        }

        router.on("/api/converse/audio/{file}", method: .get, catalog: catalog) { _, context -> Response in
            let file = context.parameters.get("file") ?? ""
            guard file.hasSuffix(".wav"), let wav = audioStore.audio(id: String(file.dropLast(4))) else {
                throw HTTPError(.notFound, message: "no reply audio '\(ClientMessage.prefix(file))' (kept \(Int(settings.audioSeconds)) s, converse.audio_seconds)")
            }
            return Response(status: .ok, headers: [.contentType: "audio/wav"], body: .init(byteBuffer: ByteBuffer(data: wav)))
        }
    }

    /// Transcribes, reads the emotion, and has a one-turn session answer.
    private func converse(_ options: Body, speech: [Float]?, received: ContinuousClock.Instant) async throws -> Result {
        let services = components.companion
        let startedAt = Date().timeIntervalSince1970
        var transcript: String
        if let speech {
            let transcriber = try components.requireTranscriber()
            transcript = try await transcriber.transcribe(speech, pass: .final).text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !transcript.isEmpty else {
                throw HTTPError(.unprocessableContent, message: "no speech was recognised in the audio")
            }
        } else {
            transcript = options.text?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            guard !transcript.isEmpty else { throw HTTPError(.badRequest, message: "text is empty: send {\"text\": \"...\"} or an audio file") }
            guard transcript.utf8.count <= services.stream.maxTextBytes else {
                throw HTTPError(.contentTooLarge, message: "text is longer than \(services.stream.maxTextBytes) bytes (stream.max_text_bytes)")
            }
        }
        let transcribedAt = ContinuousClock.now

        // The person's emotion: their words, and their voice when they spoke.
        let sessionID = options.sessionID ?? UUID().uuidString.lowercased()
        var fusion = EmotionFusion(subject: sessionID, settings: services.fusion)
        var emotions: [String: EmotionEstimate] = [:]
        var textEstimate: EmotionEstimate?
        for sensor in services.listening.textSensors {
            if let estimate = try? await sensor.estimate(.text(transcript), subject: sessionID, time: startedAt) {
                emotions[estimate.channel.rawValue] = estimate
                textEstimate = textEstimate ?? estimate
                _ = fusion.fuse(estimate)
            }
        }
        if let speech {
            for sensor in services.listening.speechSensors {
                if let estimate = try? await sensor.estimate(.speech(speech), subject: sessionID, time: startedAt) {
                    emotions[estimate.channel.rawValue] = estimate
                    _ = fusion.fuse(estimate)
                }
            }
        }
        let fused = emotions.count > 1 ? fusion.current(at: startedAt) : nil

        // A session of one turn, made exactly as a live session makes it.
        let collector = ReplyCollector(maxAudioBytes: settings.maxReplyAudioBytes)
        let responder = Responder(
            engines: services.replies, settings: services.replySettings, sessionID: sessionID, emit: collector, logger: logger)
        if let id = options.sessionID {
            try await resume(responder, session: id)
        }
        if let problem = await responder.configure(persona: options.persona, voice: options.voice, rate: nil) {
            throw HTTPError(.badRequest, message: problem)
        }
        let running = Task { await responder.run() }
        let done: ReplyCollector.Reply
        do {
            let accepted = await responder.respond(to: UserTurn(
                utterance: 1, text: transcript, textEmotion: textEstimate, fused: fused,
                speechEndedAt: received, transcribedAt: transcribedAt, startedAt: startedAt))
            guard accepted else { throw HTTPError(.serviceUnavailable, message: "busy") }
            done = try await withTaskCancellationHandler {
                try await collector.reply()
            } onCancel: {
                collector.cancel()
            }
        } catch {
            await responder.close()
            await running.value
            throw error
        }
        // Closing after the reply is done stores the turn and ends the stored session.
        await responder.close()
        await running.value

        var audio: ReplyAudio?
        if let sampleRate = done.sampleRate, !done.samples.isEmpty {
            let buffer = AudioBuffer(samples: done.samples, sampleRate: sampleRate)
            let wav = WAVFile.encode(buffer)
            let duration = (Double(done.samples.count) / Double(sampleRate)).rounded(to: 3)
            if options.audio == .base64 {
                audio = ReplyAudio(sampleRate: sampleRate, durationSeconds: duration, url: nil, data: "data:audio/wav;base64," + wav.base64EncodedString())
            } else {
                let id = audioStore.keep(wav)
                audio = ReplyAudio(sampleRate: sampleRate, durationSeconds: duration, url: "/api/converse/audio/\(id).wav", data: nil)
            }
        }
        return Result(
            sessionID: sessionID, transcript: transcript, emotion: fused ?? textEstimate ?? emotions.values.first,
            emotions: emotions, reply: done.text, audio: audio, timings: done.timings, warnings: done.warnings)
    }

    /// Loads a stored session into `responder`, or says why it cannot.
    private func resume(_ responder: Responder, session id: String) async throws {
        guard id.count <= 64, id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
            throw HTTPError(.badRequest, message: "session_id must be up to 64 letters, digits, '-' or '_'")
        }
        guard let history = components.history else {
            throw HTTPError(.serviceUnavailable, message: "conversation history is unavailable, so session_id cannot be continued")
        }
        let remembered = components.companion.replySettings.reply.memory.maxTurns
        guard let summary = try await history.session(id: id, offset: 0, limit: 1)?.session,
              let record = try await history.session(id: id, offset: max(0, summary.turnCount - remembered), limit: remembered)
        else {
            throw HTTPError(.notFound, message: "no session '\(id)'")
        }
        await responder.resume(record)
    }
}

/// Collects one reply's text and audio from a ``Responder`` for an HTTP answer, bounded in
/// bytes (audio past the bound is dropped, and a warning says so).
final class ReplyCollector: OutboundSink {
    struct Reply: Sendable {
        var text = ""
        var samples: [Float] = []
        var sampleRate: Int?
        var timings: [String: Double] = [:]
        var warnings: [String] = []
    }

    private struct State {
        var reply = Reply()
        var audioBytes = 0
        var truncated = false
        var done = false
        var cancelled = false
        var waiter: CheckedContinuation<Reply, any Error>?
    }

    let maxAudioBytes: Int
    private let state = Mutex(State())

    init(maxAudioBytes: Int) {
        self.maxAudioBytes = maxAudioBytes
    }

    func yield(_ outbound: Outbound) {
        let waiter: (CheckedContinuation<Reply, any Error>, Reply)? = state.withLock { state in
            switch outbound {
            case .event(.replyAudio(_, _, let sampleRate, _, _)):
                state.reply.sampleRate = state.reply.sampleRate ?? sampleRate
            case .audio(let bytes):
                guard state.audioBytes + bytes.count <= maxAudioBytes else {
                    if !state.truncated {
                        state.truncated = true
                        state.reply.warnings.append("the spoken reply was cut at \(maxAudioBytes) bytes (converse.max_audio_bytes)")
                    }
                    return nil
                }
                state.audioBytes += bytes.count
                state.reply.samples += PCM.floats(fromInt16LittleEndian: bytes)
            case .event(.error(_, let message)):
                state.reply.warnings.append(message)
            case .event(.replyDone(_, let text, _, let timings, _)):
                state.reply.text = text
                state.reply.timings = timings
                state.done = true
                if let waiter = state.waiter {
                    state.waiter = nil
                    return (waiter, state.reply)
                }
            default:
                break
            }
            return nil
        }
        if let (waiter, reply) = waiter { waiter.resume(returning: reply) }
    }

    /// Waits for `reply_done`.
    func reply() async throws -> Reply {
        try await withCheckedThrowingContinuation { continuation in
            let ready: Result<Reply, any Error>? = state.withLock { state in
                if state.cancelled { return .failure(CancellationError()) }
                if state.done { return .success(state.reply) }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(with: ready) }
        }
    }

    /// The request went away: stop waiting.
    func cancel() {
        let waiter = state.withLock { state in
            state.cancelled = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(throwing: CancellationError())
    }
}

/// Reply audio kept for download, bounded in number and age.
final class ReplyAudioStore: Sendable {
    private let settings: ConverseSettings
    private let entries = Mutex<[(id: String, wav: Data, kept: ContinuousClock.Instant)]>([])

    init(settings: ConverseSettings) {
        self.settings = settings
    }

    /// Keeps `wav`; returns its id.
    func keep(_ wav: Data) -> String {
        let id = UUID().uuidString.lowercased()
        entries.withLock { entries in
            expire(&entries)
            entries.append((id, wav, .now))
            if entries.count > settings.audioEntries { entries.removeFirst(entries.count - settings.audioEntries) }
        }
        return id
    }

    func audio(id: String) -> Data? {
        entries.withLock { entries in
            expire(&entries)
            return entries.first { $0.id == id }?.wav
        }
    }

    private func expire(_ entries: inout [(id: String, wav: Data, kept: ContinuousClock.Instant)]) {
        let oldest = ContinuousClock.now - .seconds(settings.audioSeconds)
        entries.removeAll { $0.kept < oldest }
    }
}
