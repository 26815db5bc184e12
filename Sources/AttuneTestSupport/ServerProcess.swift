import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The real `attune serve` binary as a child of the test, on a free port with a private data
/// folder. It and everything it started are killed when it is stopped or released, whatever the
/// test's outcome.
public final class AttuneServerProcess: @unchecked Sendable {
    public let process = Process()
    public private(set) var port: Int
    private let log = LogBuffer()

    /// Starts `attune serve --port PORT --data-dir DIR ARGUMENTS` and waits until it listens.
    /// - Parameter port: 0 lets the server choose (it is read from the log).
    public init(port: Int = 0, dataDirectory: String = TestData.temporaryDirectory(), arguments: [String] = []) throws {
        self.port = port
        let products = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            .deletingLastPathComponent()
        process.executableURL = products.appendingPathComponent("attune")
        process.arguments = ["serve", "--port", String(port), "--data-dir", dataDirectory, "--log-level", "info"] + arguments
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        // Drain the log so the server never blocks on a full pipe; keep the start for errors.
        let log = self.log
        errors.fileHandleForReading.readabilityHandler = { handle in log.append(handle.availableData) }

        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, process.isRunning {
            if let found = log.port() {
                self.port = found
                return
            }
            usleep(20_000)
        }
        kill()
        throw ServerStartError(log: log.text)
    }

    public var processIdentifier: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }
    public var logText: String { log.text }

    public func signal(_ signal: Int32) {
        Glibc.kill(process.processIdentifier, signal)
    }

    /// Waits for the process to exit; returns its status (negative: killed by that signal), or
    /// nil if it was still running at the deadline.
    public func waitForExit(timeout: Duration) async throws -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        guard !process.isRunning else { return nil }
        return process.terminationReason == .exit ? process.terminationStatus : -process.terminationStatus
    }

    /// SIGTERM, then SIGKILL for the server and every process below it after `grace`.
    public func stop(grace: Duration = .seconds(20)) async throws {
        let children = ProcessTree.descendants(of: process.processIdentifier)
        if process.isRunning { signal(SIGTERM) }
        _ = try await waitForExit(timeout: grace)
        kill(also: children)
    }

    /// Kills the server and its descendants at once.
    public func kill(also extra: [Int32] = []) {
        ProcessTree.kill(process.processIdentifier, also: extra)
    }

    deinit {
        kill()
    }
}

/// The processes below a process, read from `/proc`, and killing them.
public enum ProcessTree {
    /// Every live descendant of `pid`, children first.
    public static func descendants(of pid: Int32) -> [Int32] {
        var parents: [Int32: [Int32]] = [:]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let child = Int32(entry), let parent = parentID(of: child) else { continue }
            parents[parent, default: []].append(child)
        }
        var found: [Int32] = []
        var frontier = [pid]
        while let next = frontier.popLast() {
            for child in parents[next] ?? [] where !found.contains(child) {
                found.append(child)
                frontier.append(child)
            }
        }
        return found
    }

    /// The parent of `pid`, from `/proc/PID/stat` (the field after the parenthesised name).
    public static func parentID(of pid: Int32) -> Int32? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 1 ? Int32(fields[1]) : nil
    }

    public static func isAlive(_ pid: Int32) -> Bool {
        guard Glibc.kill(pid, 0) == 0 else { return false }
        // A zombie is dead for our purposes.
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        guard let close = stat.lastIndex(of: ")") else { return false }
        return stat[stat.index(after: close)...].split(separator: " ").first != "Z"
    }

    /// SIGKILL to `pid`, its descendants and `extra`.
    public static func kill(_ pid: Int32, also extra: [Int32] = []) {
        for target in descendants(of: pid) + [pid] + extra where isAlive(target) {
            Glibc.kill(target, SIGKILL)
        }
    }

    /// The program a process runs (`/proc/PID/comm`).
    public static func name(of pid: Int32) -> String? {
        (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A process's environment (`/proc/PID/environ`; readable for this user's processes).
    public static func environment(of pid: Int32) -> [String: String] {
        var environment: [String: String] = [:]
        for entry in nulSeparated("/proc/\(pid)/environ") {
            guard let equals = entry.firstIndex(of: "=") else { continue }
            environment[String(entry[..<equals])] = String(entry[entry.index(after: equals)...])
        }
        return environment
    }

    /// A process's command line.
    public static func arguments(of pid: Int32) -> [String] {
        nulSeparated("/proc/\(pid)/cmdline")
    }

    /// The strings of a `/proc` file that separates them with NUL bytes (none if unreadable).
    private static func nulSeparated(_ path: String) -> [String] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        return data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }
}

/// The server's log as it arrives.
private final class LogBuffer: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()

    func append(_ chunk: Data) {
        lock.lock()
        defer { lock.unlock() }
        if data.count < 1 << 20 { data.append(chunk) }
    }

    var text: String {
        lock.lock()
        defer { lock.unlock() }
        return String(decoding: data, as: UTF8.self)
    }

    func port() -> Int? {
        let log = text
        guard let range = log.range(of: #"listening on http://[^\s:]+:(\d+)"#, options: .regularExpression) else { return nil }
        return Int(log[range].split(separator: ":").last!)
    }
}

public struct ServerStartError: Error, CustomStringConvertible {
    public let log: String
    public var description: String { "attune serve did not report its port; log:\n\(log)" }
}
