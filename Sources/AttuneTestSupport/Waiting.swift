import Foundation

extension TestData {
    /// Checks `condition` every `interval` until it holds (true) or `seconds` have passed (false):
    /// how a test waits for something another task or process makes happen, on a loaded machine too.
    public static func eventually(
        within seconds: Double = 60, every interval: Duration = .milliseconds(20), _ condition: () async throws -> Bool
    ) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try await Task.sleep(for: interval)
        }
        return false
    }

    /// Runs a command found on `PATH` to its end and returns its exit status and its output
    /// (standard output and error together).
    public static func runTool(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
