import AsyncHTTPClient
import AttuneCore
import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// llama.cpp's `llama-server` run as a child process of `attune serve`, when no external LLM is
/// configured: on a free loopback port with a random API key, health-checked before use, its log
/// forwarded with a prefix, restarted with growing back-off if it dies, stopped when the service
/// group shuts down, and killed by the kernel if Attune itself dies (``TiedChildProcess``).
public final class EmbeddedLLMServer: Service, Sendable {
    public struct Settings: Sendable, Equatable {
        /// The `llama-server` binary setup builds.
        public var binary: URL
        /// The GGUF model.
        public var model: URL
        /// A smaller model of the same tokenizer that drafts tokens (speculative decoding).
        public var draftModel: URL?
        /// Most tokens drafted at a time.
        public var draftMax = 8
        public var threads = 2
        /// Context window in tokens.
        public var contextSize = 4096
        /// Prompt tokens read per step. llama-server notices a dropped request (a speculative
        /// reply whose speaker went on, a reply spoken over) only between steps: with its default
        /// of 2048 a dropped prompt was read to the end, holding both cores of a small machine
        /// for seconds (a 520-token prompt: 7.6 s); with 64 it stops within about 1.7 s, and
        /// prompts are read as fast (57-62 tokens/s on two cores either way).
        public var batchSize = Self.defaultBatchSize
        public static let defaultBatchSize = 64
        /// Prompts read once after each start, before the server counts as ready, so their
        /// common start is in llama-server's prompt cache when the first turn comes (the
        /// persona's instructions and examples: hundreds of tokens, seconds on two cores).
        public var warmUpPrompts: [[ChatMessage]] = []
        /// Seconds the warm-up may take in all.
        public var warmUpTimeout = 120.0
        /// Seconds to wait for `/health` to answer 200 after a start.
        public var startupTimeout = 60.0
        /// Longest pause between restarts, in seconds (the pause doubles from 1 s up to this).
        public var maxRestartDelay = 30.0

        public init(binary: URL, model: URL) {
            self.binary = binary
            self.model = model
        }
    }

    public enum State: Sendable, Equatable {
        case starting
        case ready(loadMilliseconds: Double)
        case failed(String)
        case stopped
    }

    public let settings: Settings
    public let port: Int
    /// A random key the child requires on its API, so that other local processes cannot use it.
    public let apiKey: String
    /// The OpenAI-compatible API root of the child.
    public var baseURL: String { "http://127.0.0.1:\(port)/v1" }
    private let logger: Logger
    private let state = Mutex(State.starting)
    private let restarts = Mutex(0)
    private let pid = Mutex<Int32?>(nil)

    public init(settings: Settings, logger: Logger) throws {
        let files = [(settings.binary, "llama-server"), (settings.model, "the LLM model")]
            + (settings.draftModel.map { [($0, "the draft model")] } ?? [])
        for (file, what) in files {
            guard FileManager.default.fileExists(atPath: file.path) else {
                throw LLMError(.unreachable, "\(what) not found at \(file.path); run `make setup`")
            }
        }
        self.settings = settings
        self.logger = logger
        self.port = try Self.freePort()
        self.apiKey = (0..<4).map { _ in String(UInt64.random(in: .min ... .max), radix: 16) }.joined()
    }

    public var currentState: State { state.withLock { $0 } }
    /// The running child's process id.
    public var processID: Int32? { pid.withLock { $0 } }

    /// How many times the child has been restarted after dying.
    public var restartCount: Int { restarts.withLock { $0 } }

    /// Waits until the server answers its health check, or throws once it has failed.
    public func waitUntilReady(timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            switch currentState {
            case .ready: return
            case .failed(let reason): throw LLMError(.unreachable, reason)
            case .stopped: throw LLMError(.unreachable, "the embedded language model server has stopped")
            case .starting: try await Task.sleep(for: .milliseconds(100))
            }
        }
        throw LLMError(.timeout, "the embedded language model server did not become ready within \(timeout)")
    }

    public func run() async throws {
        var delay = 1.0
        await withGracefulShutdownHandler {
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                let started = ContinuousClock.now
                let outcome = await runOnce()
                if Task.isShuttingDownGracefully || Task.isCancelled { break }
                // A child that ran for a while before dying gets a fresh back-off.
                if ContinuousClock.now - started > .seconds(60) { delay = 1 }
                logger.error("llama-server \(outcome); restarting in \(delay) s")
                restarts.withLock { $0 += 1 }
                try? await Task.sleep(for: .seconds(delay))
                delay = min(delay * 2, settings.maxRestartDelay)
            }
        } onGracefulShutdown: {
            // The running child is stopped by `runOnce`, which watches for shutdown.
        }
        state.withLock { $0 = .stopped }
    }

    /// Starts the child, waits for it to be healthy, and returns when it exits (or after
    /// stopping it on shutdown). Returns a description of how it ended.
    private func runOnce() async -> String {
        state.withLock { $0 = .starting }
        let process = Process()
        process.executableURL = settings.binary
        process.arguments = [
            "--model", settings.model.path, "--host", "127.0.0.1", "--port", String(port),
            "--threads", String(settings.threads), "--ctx-size", String(settings.contextSize),
            "--parallel", "1", "--no-webui", "--batch-size", String(settings.batchSize), "--ubatch-size", String(settings.batchSize),
        ]
        if let draft = settings.draftModel {
            process.arguments! += [
                "--model-draft", draft.path, "--spec-draft-n-max", String(settings.draftMax),
                "--threads-draft", String(settings.threads),
            ]
        }
        // The key goes in the environment (readable only by this user), not on the command line.
        process.environment = ProcessInfo.processInfo.environment.merging(["LLAMA_API_KEY": apiKey]) { $1 }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        let exited = AsyncStream<Int32>.makeStream()
        process.terminationHandler = { exited.continuation.yield($0.terminationStatus); exited.continuation.finish() }
        let started = ContinuousClock.now
        do {
            // Tied to this process: a `kill -9` of Attune takes llama-server with it.
            if let warning = try TiedChildProcess.run(process) { logger.warning("\(warning)") }
        } catch {
            let reason = "could not start \(settings.binary.path): \(error)"
            state.withLock { $0 = .failed(reason) }
            return reason
        }
        forwardLog(output)
        pid.withLock { $0 = process.processIdentifier }
        defer { pid.withLock { $0 = nil } }
        logger.info("llama-server started (pid \(process.processIdentifier), port \(port))")

        return await withTaskGroup(of: String?.self) { group in
            group.addTask {
                for await status in exited.stream { return "exited with status \(status)" }
                return "exited"
            }
            group.addTask { [self] in
                if await waitForHealth(deadline: started + .seconds(settings.startupTimeout)) {
                    await warmUp()
                    let milliseconds = (ContinuousClock.now - started).milliseconds
                    state.withLock { $0 = .ready(loadMilliseconds: milliseconds) }
                    logger.info("llama-server ready after \(Int(milliseconds)) ms")
                    return nil
                }
                return "did not become healthy within \(settings.startupTimeout) s"
            }
            group.addTask {
                // Park until shutdown (or cancellation), then stop the child.
                await withGracefulShutdownHandler {
                    while !Task.isCancelled && !Task.isShuttingDownGracefully {
                        try? await Task.sleep(for: .milliseconds(200))
                    }
                } onGracefulShutdown: {}
                return Task.isShuttingDownGracefully ? "shutdown" : nil
            }
            var ending = "exited"
            while let result = await group.next() {
                guard let result else { continue }
                ending = result
                break
            }
            if process.isRunning {
                Self.stop(process)
            }
            group.cancelAll()
            if ending != "shutdown" {
                state.withLock { $0 = .failed("llama-server \(ending)") }
            }
            return ending
        }
    }

    /// Reads each warm-up prompt (one token of answer each); a failure is logged, not fatal.
    private func warmUp() async {
        guard !settings.warmUpPrompts.isEmpty else { return }
        var client = LLMSettings()
        client.apiKey = apiKey
        client.firstTokenTimeout = settings.warmUpTimeout
        client.totalTimeout = settings.warmUpTimeout
        let chat = OpenAIChatClient(settings: client, baseURL: baseURL)
        let clock = ContinuousClock()
        let started = clock.now
        for prompt in settings.warmUpPrompts where !Task.isCancelled {
            do {
                try await chat.prefill(prompt)
            } catch {
                logger.warning("llama-server warm-up: \(error)")
            }
        }
        logger.info("llama-server read \(settings.warmUpPrompts.count) warm-up prompt(s) in \(Int((clock.now - started).milliseconds)) ms")
    }

    private func waitForHealth(deadline: ContinuousClock.Instant) async -> Bool {
        let url = "http://127.0.0.1:\(port)/health"
        while ContinuousClock.now < deadline, !Task.isCancelled {
            if let response = try? await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(2)),
                response.status == .ok
            {
                return true
            }
            try? await Task.sleep(for: .milliseconds(250))
        }
        return false
    }

    /// SIGTERM, then SIGKILL if it has not gone within 5 s.
    private static func stop(_ process: Process) {
        process.terminate()
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// Forwards the child's output line by line to the log, prefixed with `llama-server:`, on a
    /// thread of its own (the reads block); it ends when the child closes its output.
    private func forwardLog(_ pipe: Pipe) {
        let logger = self.logger
        Thread.detachNewThread {
            var pending = Data()
            while true {
                let chunk = pipe.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                pending.append(chunk)
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                    pending.removeSubrange(pending.startIndex...newline)
                    if !line.isEmpty { logger.debug("llama-server: \(line)") }
                }
            }
        }
    }

    /// A loopback port nobody listens on now: bind to port 0 and read what the kernel chose.
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw LLMError(.unreachable, "cannot open a socket to find a free port") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { generic in
                bind(fd, generic, length) == 0 && getsockname(fd, generic, &length) == 0
            }
        }
        guard bound else { throw LLMError(.unreachable, "cannot find a free loopback port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
