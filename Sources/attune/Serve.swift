import ArgumentParser
import AttuneServer
import Foundation
import Hummingbird
import Logging

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start the HTTP and WebSocket server.",
        discussion: "Settings, in increasing precedence: defaults, --config FILE (or ATTUNE_CONFIG), "
            + "ATTUNE_* environment variables, flags.\n\nKeys:\n"
            + AttuneConfiguration.settings.map { "  \($0.key) (\($0.environmentName)): \($0.summary)" }
            .joined(separator: "\n")
    )

    @Option(help: "JSON file of settings.") var config: String?
    @Option(help: "Address to bind.") var host: String?
    @Option(help: "Port to listen on; 0 picks a free one.") var port: Int?
    @Option(help: "Folder of model weights.") var modelsDir: String?
    @Option(help: "Folder for Attune's own state.") var dataDir: String?
    @Option(help: "Log level.") var logLevel: String?
    @Option(name: .customLong("set"), help: "Any setting as key=value (repeatable).")
    var settings: [String] = []

    func run() async throws {
        let configuration = try loadConfiguration()
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = configuration.logLevel
            return handler
        }
        let logger = Logger(label: "attune")
        let app = try await buildApplication(configuration: configuration, logger: logger)
        try await runUntilStopped(app, configuration: configuration, logger: logger)
    }

    private func loadConfiguration() throws -> AttuneConfiguration {
        var overrides: [String: String] = [:]
        for pair in settings {
            guard let equals = pair.firstIndex(of: "=") else {
                throw ValidationError("--set expects key=value, got '\(pair)'")
            }
            overrides[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
        }
        overrides["host"] = host ?? overrides["host"]
        overrides["port"] = port.map(String.init) ?? overrides["port"]
        overrides["models_dir"] = modelsDir ?? overrides["models_dir"]
        overrides["data_dir"] = dataDir ?? overrides["data_dir"]
        overrides["log_level"] = logLevel ?? overrides["log_level"]
        do {
            return try AttuneConfiguration.load(
                file: config, environment: ProcessInfo.processInfo.environment, overrides: overrides)
        } catch let error as ConfigurationError {
            throw ValidationError(error.description)
        }
    }
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the versions of Attune and its native runtimes.")

    func run() {
        print(versionReport())
    }
}
