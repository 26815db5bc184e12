import AttuneCore
import Foundation
import Synchronization
import Testing

@Suite struct InferencePoolTests {
    @Test func runsWorkOnItsOwnThreads() async throws {
        let pool = InferencePool(name: "test", workers: 2, maxQueued: 4)
        let results = try await withThrowingTaskGroup(of: Int.self) { group in
            for value in 0..<6 {
                group.addTask { try await pool.run { value * value } }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.sorted() == [0, 1, 4, 9, 16, 25])
        #expect(pool.load == 0)
        try await pool.shutdown()
    }

    @Test func refusesWorkBeyondItsQueueLimit() async throws {
        let pool = InferencePool(name: "test", workers: 1, maxQueued: 1)
        let gate = Gate()
        // Two jobs fill the pool: one running (blocked on the gate), one queued.
        async let first: Void = pool.run { gate.wait() }
        async let second: Void = pool.run { gate.wait() }
        while pool.load < 2 { try await Task.sleep(for: .milliseconds(5)) }

        await #expect(throws: InferencePoolBusyError.self) { try await pool.run { 0 } }

        gate.open()
        _ = try await (first, second)
        #expect(try await pool.run { 42 } == 42)
        try await pool.shutdown()
    }
}

/// A latch that blocks worker threads until the test opens it.
private final class Gate: Sendable {
    private let condition = NSCondition()
    private let isOpen = Mutex(false)

    func wait() {
        condition.lock()
        while !isOpen.withLock({ $0 }) { condition.wait() }
        condition.unlock()
    }

    func open() {
        condition.lock()
        isOpen.withLock { $0 = true }
        condition.broadcast()
        condition.unlock()
    }
}
