import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

/// A client for OpenAI-compatible `POST /chat/completions` with `"stream": true`: llama.cpp's
/// server, Ollama, vLLM, OpenAI, or Gemini's OpenAI-compatible endpoint. Replies arrive as
/// server-sent events, one `data: {json}` line per piece, ending with `data: [DONE]`.
public struct OpenAIChatClient: ChatModel {
    public let settings: LLMSettings
    private let baseURL: String
    private let http: HTTPClient

    /// - Parameter baseURL: overrides `settings.baseURL` (the embedded server's address).
    public init(settings: LLMSettings, baseURL: String? = nil, http: HTTPClient = .shared) {
        self.settings = settings
        self.baseURL = (baseURL ?? settings.baseURL ?? "http://127.0.0.1:8081/v1").trimmingSuffix("/")
        self.http = http
    }

    public func streamReply(to messages: [ChatMessage], recordingPromptIn record: PromptReadingRecord?) -> AsyncThrowingStream<String, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    try await stream(messages, recordingPromptIn: record) { continuation.yield($0) }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// A request for one token: the server reads the whole prompt, and a server with a prompt
    /// cache (llama-server) keeps it.
    public func prefill(_ messages: [ChatMessage]) async throws {
        var settings = self.settings
        settings.maxTokens = 1
        try await OpenAIChatClient(settings: settings, baseURL: baseURL, http: http).stream(messages) { _ in }
    }

    /// Sends the request, and once more when the pooled keep-alive connection it went out on
    /// turned out to be closed (the request never reached the model: a reply was lost to
    /// "I/O on closed channel" in `bench replies`).
    static func execute(_ http: HTTPClient, _ request: HTTPClientRequest, deadline: NIODeadline) async throws -> HTTPClientResponse {
        do {
            return try await http.execute(request, deadline: deadline)
        } catch where isClosedConnection(error) {
            return try await http.execute(request, deadline: deadline)
        }
    }

    static func isClosedConnection(_ error: any Error) -> Bool {
        (error as? ChannelError) == .ioOnClosedChannel || (error as? HTTPClientError) == .remoteConnectionClosed
    }

    /// Sends the request and hands each piece of text to `deliver`; throws ``LLMError``.
    func stream(
        _ messages: [ChatMessage], recordingPromptIn record: PromptReadingRecord? = nil, deliver: @escaping @Sendable (String) -> Void
    ) async throws {
        let request = try makeRequest(messages)
        let settings = self.settings
        let http = self.http
        // The response must start within `connectTimeout` (the HTTP client itself keeps retrying
        // a refused connection until its deadline), the first token come within
        // `firstTokenTimeout`, and the whole reply within `totalTimeout`. A watchdog task ends
        // the race for whichever comes first.
        let answered = Flag()
        let firstToken = Flag()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                let response: HTTPClientResponse
                do {
                    response = try await Self.execute(http, request, deadline: .now() + .milliseconds(Int64(settings.totalTimeout * 1000)))
                } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout {
                    throw LLMError(.timeout, "the language model did not answer within \(settings.totalTimeout) s")
                } catch is CancellationError {
                    throw CancellationError()
                } catch {
                    throw LLMError(.unreachable, "cannot reach the language model at \(request.url): \(error)")
                }
                answered.set()
                guard response.status == .ok else {
                    let body = (try? await response.body.collect(upTo: 64 * 1024)).map { String(buffer: $0) } ?? ""
                    throw LLMError(.badResponse, "the language model answered \(response.status.code): \(body.prefix(300))")
                }
                var parser = ServerSentEvents()
                do {
                    for try await buffer in response.body {
                        for event in parser.feed(buffer.readableBytesView) {
                            if event == "[DONE]" { return }
                            let chunk = try Self.chunk(event)
                            if let text = chunk.text, !text.isEmpty {
                                firstToken.set()
                                deliver(text)
                            }
                            if let reading = chunk.promptReading { record?.record(reading) }
                        }
                    }
                } catch let error as LLMError {
                    throw error
                } catch is CancellationError {
                    throw CancellationError()
                } catch {
                    throw LLMError(.unreachable, "the language model's stream broke off: \(error)")
                }
            }
            group.addTask {
                let url = request.url
                try await Task.sleep(for: .seconds(min(settings.connectTimeout, settings.firstTokenTimeout)))
                if !answered.isSet && !firstToken.isSet {
                    throw LLMError(.unreachable, "cannot reach the language model at \(url) within \(settings.connectTimeout) s")
                }
                try await Task.sleep(for: .seconds(max(0, settings.firstTokenTimeout - settings.connectTimeout)))
                if !firstToken.isSet {
                    throw LLMError(.timeout, "no reply from the language model within \(settings.firstTokenTimeout) s")
                }
                try await Task.sleep(for: .seconds(max(0, settings.totalTimeout - settings.firstTokenTimeout)))
                throw LLMError(.timeout, "the reply took longer than \(settings.totalTimeout) s")
            }
            // The first task to finish decides: the reply ends, or the watchdog throws.
            defer { group.cancelAll() }
            try await group.next()
        }
    }

    func makeRequest(_ messages: [ChatMessage]) throws -> HTTPClientRequest {
        struct Body: Encodable {
            let model: String
            let messages: [ChatMessage]
            let stream = true
            let temperature: Double
            let top_p: Double
            let max_tokens: Int
            let timings_per_token: Bool?
        }
        var request = HTTPClientRequest(url: baseURL + "/chat/completions")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Accept", value: "text/event-stream")
        if let key = settings.apiKey, !key.isEmpty {
            request.headers.add(name: "Authorization", value: "Bearer \(key)")
        }
        let body = Body(
            model: settings.model, messages: messages, temperature: settings.temperature, top_p: settings.topP,
            max_tokens: settings.maxTokens, timings_per_token: settings.timingsPerToken ? true : nil)
        request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(body)))
        return request
    }

    /// What one streamed chunk carries: text (`choices[0].delta.content`) and, in llama-server's
    /// last chunk (every chunk with `timings_per_token`), its account of the prompt
    /// (`timings.cache_n`, `timings.prompt_n`).
    static func chunk(_ json: String) throws -> (text: String?, promptReading: PromptReading?) {
        struct Chunk: Decodable {
            struct Choice: Decodable {
                struct Delta: Decodable { let content: String? }
                let delta: Delta?
            }
            struct Failure: Decodable { let message: String? }
            struct Timings: Decodable {
                let cache_n: Int?
                let prompt_n: Int?
            }
            let choices: [Choice]?
            let error: Failure?
            let timings: Timings?
        }
        guard let chunk = try? JSONDecoder().decode(Chunk.self, from: Data(json.utf8)) else {
            throw LLMError(.badResponse, "the language model sent an unreadable event: \(json.prefix(200))")
        }
        if let error = chunk.error {
            throw LLMError(.badResponse, "the language model reported an error: \(error.message ?? "unknown")")
        }
        let reading = chunk.timings.flatMap { timings in
            timings.prompt_n.map { PromptReading(cachedTokens: timings.cache_n ?? 0, readTokens: $0) }
        }
        return (chunk.choices?.first?.delta?.content, reading)
    }
}

/// Splits a server-sent-events byte stream into the payloads of its `data:` fields.
struct ServerSentEvents {
    private var pending: [UInt8] = []
    private var data: [String] = []

    /// Feeds bytes; returns the events they completed.
    mutating func feed(_ bytes: some Sequence<UInt8>) -> [String] {
        var events: [String] = []
        for byte in bytes {
            guard byte == UInt8(ascii: "\n") else {
                pending.append(byte)
                continue
            }
            var line = String(decoding: pending, as: UTF8.self)
            pending.removeAll(keepingCapacity: true)
            if line.hasSuffix("\r") { line.removeLast() }
            if line.isEmpty {
                // A blank line ends an event.
                if !data.isEmpty { events.append(data.joined(separator: "\n")) }
                data.removeAll()
            } else if line.hasPrefix("data:") {
                data.append(String(line.dropFirst(5).drop { $0 == " " }))
                // Some servers omit the blank line after [DONE].
                if data == ["[DONE]"] {
                    events.append("[DONE]")
                    data.removeAll()
                }
            }
            // Comments (":") and other fields (event:, id:, retry:) carry nothing for us.
        }
        return events
    }
}

/// Set once, from any thread.
private final class Flag: Sendable {
    private let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
}

extension String {
    func trimmingSuffix(_ suffix: String) -> String {
        var result = self
        while result.hasSuffix(suffix) { result.removeLast(suffix.count) }
        return result
    }
}
