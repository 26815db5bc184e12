import Foundation
import Synchronization

/// One message of a chat conversation, as OpenAI-compatible servers take it.
public struct ChatMessage: Codable, Sendable, Equatable {
    public enum Role: String, Codable, Sendable {
        case system, user, assistant
    }

    public var role: Role
    public var content: String

    public init(_ role: Role, _ content: String) {
        self.role = role
        self.content = content
    }
}

/// How to reach a chat-completions server and how it should generate.
public struct LLMSettings: Sendable, Equatable {
    /// The API root, e.g. `http://127.0.0.1:11434/v1` (Ollama) or `https://api.openai.com/v1`.
    /// Nil means the embedded llama-server that `attune serve` starts.
    public var baseURL: String?
    /// The model name the server expects (llama-server ignores it).
    public var model = "local"
    /// Sent as `Authorization: Bearer …` when set.
    public var apiKey: String?
    /// Seconds to wait for the connection.
    public var connectTimeout = 3.0
    /// Seconds from the request to the first token before the reply is given up.
    public var firstTokenTimeout = 8.0
    /// Seconds a whole reply may take.
    public var totalTimeout = 30.0
    public var temperature = 0.7
    public var topP = 0.9
    /// Longest reply, in tokens.
    public var maxTokens = 120
    /// Ask for llama-server's `timings_per_token`, so that its first piece already says how much
    /// of the prompt it found cached and read (a ``PromptReading``). Only for llama-server (the
    /// embedded one turns it on): other servers may refuse a field they do not know.
    public var timingsPerToken = false

    public init() {}
}

/// Why a reply could not be generated.
public struct LLMError: Error, CustomStringConvertible, Sendable {
    public enum Kind: String, Sendable {
        /// The server could not be reached.
        case unreachable
        /// No first token, or no end, within the configured time.
        case timeout
        /// The server answered with an error status or a body it should not have.
        case badResponse
    }

    public let kind: Kind
    public let description: String

    public init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }
}

/// How much of a request's prompt the server found in its prompt cache and how much it had to
/// read before the first token (llama-server's `timings.cache_n` and `timings.prompt_n`).
public struct PromptReading: Sendable, Equatable {
    public var cachedTokens: Int
    public var readTokens: Int

    public init(cachedTokens: Int, readTokens: Int) {
        self.cachedTokens = cachedTokens
        self.readTokens = readTokens
    }
}

/// Where a request leaves its ``PromptReading`` once the server has reported it (servers other
/// than llama-server may never report one).
public final class PromptReadingRecord: Sendable {
    private let value = Mutex<PromptReading?>(nil)

    public init() {}

    public func record(_ reading: PromptReading) { value.withLock { $0 = reading } }
    public var reading: PromptReading? { value.withLock { $0 } }
}

/// Something that streams a chat completion: the reply's text in pieces as it is generated.
/// Cancelling the consuming task stops generation.
public protocol ChatModel: Sendable {
    /// - Parameter record: where the server's account of the prompt goes, if it gives one.
    func streamReply(to messages: [ChatMessage], recordingPromptIn record: PromptReadingRecord?) -> AsyncThrowingStream<String, any Error>
    /// Has the server read `messages` without answering them, so that a later request starting
    /// with them finds them in its prompt cache (llama-server keeps the last prompt read).
    /// Cancelling the calling task drops the request.
    func prefill(_ messages: [ChatMessage]) async throws
}

extension ChatModel {
    /// A model with no prompt cache to fill does nothing.
    public func prefill(_ messages: [ChatMessage]) async throws {}

    public func streamReply(to messages: [ChatMessage]) -> AsyncThrowingStream<String, any Error> {
        streamReply(to: messages, recordingPromptIn: nil)
    }
}

extension AsyncThrowingStream where Element == String, Failure == any Error {
    /// Hands each piece of a reply to `take` until `take` returns false; then the stream is
    /// cancelled (its producer, the model's request, stops; a consumer that merely stopped
    /// iterating would leave it generating) and this returns false. Returns true when the
    /// stream ended on its own; throws its error. Cancelling the calling task cancels it too.
    public func read(while take: (String) async -> Bool) async throws -> Bool {
        try await withThrowingTaskGroup(of: Void.self) { group in
            // Read on a child task, so that stopping early can cancel a read that is waiting.
            let (pieces, forward) = AsyncStream.makeStream(of: String.self)
            group.addTask {
                defer { forward.finish() }
                for try await piece in self { forward.yield(piece) }
            }
            for await piece in pieces where !(await take(piece)) {
                group.cancelAll()
                try? await group.next()
                return false
            }
            try await group.next()
            return true
        }
    }
}
