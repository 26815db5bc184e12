import NIOPosix
import ServiceLifecycle
import Synchronization

/// Thrown when an ``InferencePool`` already holds as much work as it may queue.
public struct InferencePoolBusyError: Error, CustomStringConvertible, Sendable {
    public let pool: String
    public let capacity: Int

    public var description: String {
        "the \(pool) workers are busy (\(capacity) jobs running or queued); try again shortly"
    }
}

/// A fixed set of threads for blocking native inference, kept off the cooperative pool and the
/// event loops. At most `workers` jobs run at once and at most `maxQueued` wait; further work is
/// refused at once with ``InferencePoolBusyError`` rather than piling up without bound.
///
/// The pool is a `Service`: the application's service group stops it after the HTTP server has
/// drained, so work admitted before shutdown still completes.
public final class InferencePool: Service, Sendable {
    public let name: String
    public let workers: Int
    public let maxQueued: Int
    private let threads: NIOThreadPool
    private let admitted = Mutex(0)

    public init(name: String, workers: Int, maxQueued: Int) {
        precondition(workers > 0, "an inference pool needs at least one worker")
        self.name = name
        self.workers = workers
        self.maxQueued = max(0, maxQueued)
        self.threads = NIOThreadPool(numberOfThreads: workers)
        self.threads.start()
    }

    /// Jobs running or waiting right now.
    public var load: Int { admitted.withLock { $0 } }

    /// Runs `work` on one of the pool's threads, or throws ``InferencePoolBusyError`` when full.
    public func run<Result: Sendable>(_ work: @escaping @Sendable () throws -> Result) async throws -> Result {
        let capacity = workers + maxQueued
        let accepted = admitted.withLock { count in
            guard count < capacity else { return false }
            count += 1
            return true
        }
        guard accepted else { throw InferencePoolBusyError(pool: name, capacity: capacity) }
        defer { admitted.withLock { $0 -= 1 } }
        return try await threads.runIfActive(work)
    }

    public func run() async throws {
        try? await gracefulShutdown()
        try await shutdown()
    }

    /// Stops the threads after the work already queued has finished.
    public func shutdown() async throws {
        try await threads.shutdownGracefully()
    }
}
