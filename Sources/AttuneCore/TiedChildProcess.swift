import Foundation

/// Starts child processes that the kernel kills when Attune dies, however it dies (`kill -9`
/// included), so that no helper such as llama-server outlives the server.
///
/// Linux's parent-death signal (`PR_SET_PDEATHSIG`) is tied to the thread that created the
/// child, not to the process: a child started from a worker thread that later exits would be
/// killed with that thread. Children are therefore started from one thread that lives as long as
/// the process, through util-linux's `setpriv --pdeathsig KILL`, which sets the signal and then
/// executes the real program in place (same pid).
public enum TiedChildProcess {
    /// `setpriv`, part of util-linux (essential on Debian).
    public static let setprivPath = "/usr/bin/setpriv"

    /// Runs `process` (configured but not started) tied to this process's life. Without
    /// `setpriv` it starts untied and says so in the returned warning.
    @discardableResult
    public static func run(_ process: Process) throws -> String? {
        var warning: String?
        if FileManager.default.isExecutableFile(atPath: setprivPath), let program = process.executableURL {
            process.arguments = ["--pdeathsig", "KILL", "--", program.path] + (process.arguments ?? [])
            process.executableURL = URL(fileURLWithPath: setprivPath)
        } else {
            warning = "\(setprivPath) not found: the child is not killed if Attune dies abruptly"
        }
        try SpawnThread.shared.perform { try process.run() }
        return warning
    }
}

/// One thread, alive for the whole process, that starts child processes.
private final class SpawnThread: @unchecked Sendable {
    static let shared = SpawnThread()

    // Guarded by `condition`.
    private let condition = NSCondition()
    private var jobs: [@Sendable () -> Void] = []

    private init() {
        let thread = Thread { [self] in loop() }
        thread.name = "attune-spawn"
        thread.start()
    }

    /// Runs `work` on the spawn thread and waits for it.
    func perform(_ work: @escaping @Sendable () throws -> Void) throws {
        let done = DispatchSemaphore(value: 0)
        let outcome = ResultBox()
        condition.lock()
        jobs.append {
            outcome.error = Result { try work() }.failure
            done.signal()
        }
        condition.signal()
        condition.unlock()
        done.wait()
        if let error = outcome.error { throw error }
    }

    private func loop() {
        while true {
            condition.lock()
            while jobs.isEmpty { condition.wait() }
            let job = jobs.removeFirst()
            condition.unlock()
            job()
        }
    }

    /// The error of one job, written on the spawn thread before the waiter is signalled.
    private final class ResultBox: @unchecked Sendable {
        var error: (any Error)?
    }
}

extension Result {
    fileprivate var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
