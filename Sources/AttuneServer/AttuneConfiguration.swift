import Foundation
import Logging

/// Everything `attune serve` can be told, with defaults that work offline on one machine.
///
/// Values come from four layers, later ones winning: these defaults, an optional JSON file
/// (`--config` or `ATTUNE_CONFIG`), environment variables (`ATTUNE_` + the key in upper case,
/// dots as underscores), and command-line flags. ``settings`` lists every key.
public struct AttuneConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    /// Largest request body accepted, in bytes.
    public var maxRequestBodyBytes = 25 * 1024 * 1024
    /// Folder of the web UI; nil serves the copy bundled with the server.
    public var publicDirectory: String?
    /// Where `scripts/setup.py` put the model weights.
    public var modelsDirectory = AttuneConfiguration.defaultCacheDirectory + "/models"
    /// Where Attune keeps its own state.
    public var dataDirectory = AttuneConfiguration.defaultDataDirectory
    public var logLevel = Logger.Level.info
    /// Threads that run speech models, and how many jobs may wait for them.
    public var speechWorkers = 2
    public var speechQueueLimit = 16

    public init() {}

    public static var defaultCacheDirectory: String {
        let environment = ProcessInfo.processInfo.environment
        return environment["ATTUNE_CACHE"] ?? NSHomeDirectory() + "/.cache/attune"
    }

    public static var defaultDataDirectory: String {
        let environment = ProcessInfo.processInfo.environment
        let base = environment["XDG_DATA_HOME"] ?? NSHomeDirectory() + "/.local/share"
        return base + "/attune"
    }
}

// MARK: - Settings table

extension AttuneConfiguration {
    /// One configurable key: its name, what it means and how to apply a textual value.
    public struct Setting: Sendable {
        public let key: String
        public let summary: String
        let apply: @Sendable (inout AttuneConfiguration, String) throws -> Void

        /// The environment variable that sets this key.
        public var environmentName: String {
            "ATTUNE_" + key.uppercased().replacingOccurrences(of: ".", with: "_")
        }
    }

    public static let settings: [Setting] = [
        Setting(key: "host", summary: "address to bind; 0.0.0.0 serves other machines") { $0.host = $1 },
        Setting(key: "port", summary: "TCP port; 0 picks a free one") { $0.port = try parse($1, as: "port", in: 0...65_535) },
        Setting(key: "max_body_bytes", summary: "largest request body accepted, in bytes") {
            $0.maxRequestBodyBytes = try parse($1, as: "max_body_bytes", in: 1...Int(Int32.max))
        },
        Setting(key: "public_dir", summary: "folder of the web UI (default: the bundled one)") { $0.publicDirectory = $1 },
        Setting(key: "models_dir", summary: "folder of model weights written by setup") { $0.modelsDirectory = $1 },
        Setting(key: "data_dir", summary: "folder for Attune's own state") { $0.dataDirectory = $1 },
        Setting(key: "log_level", summary: "trace, debug, info, notice, warning, error or critical") {
            guard let level = Logger.Level(rawValue: $1.lowercased()) else {
                throw ConfigurationError("log_level: '\($1)' is not one of trace, debug, info, notice, warning, error, critical")
            }
            $0.logLevel = level
        },
        Setting(key: "speech.workers", summary: "threads running speech models") {
            $0.speechWorkers = try parse($1, as: "speech.workers", in: 1...64)
        },
        Setting(key: "speech.queue_limit", summary: "speech jobs that may wait before requests get 'busy'") {
            $0.speechQueueLimit = try parse($1, as: "speech.queue_limit", in: 0...10_000)
        },
    ]

    /// Builds a configuration from a file, the environment and flag overrides, in that order.
    /// - Parameters:
    ///   - file: a JSON object of `key: value`; nil reads `ATTUNE_CONFIG` if set.
    ///   - environment: usually `ProcessInfo.processInfo.environment`.
    ///   - overrides: values from the command line, by key.
    public static func load(
        file: String? = nil, environment: [String: String], overrides: [String: String] = [:]
    ) throws -> AttuneConfiguration {
        var configuration = AttuneConfiguration()
        let byKey = Dictionary(uniqueKeysWithValues: settings.map { ($0.key, $0) })

        if let path = file ?? environment["ATTUNE_CONFIG"] {
            for (key, value) in try readFile(path) {
                guard let setting = byKey[key] else {
                    throw ConfigurationError("\(path): unknown key '\(key)'; known keys: \(settings.map(\.key).joined(separator: ", "))")
                }
                try setting.apply(&configuration, value)
            }
        }
        for setting in settings {
            if let value = environment[setting.environmentName] {
                try setting.apply(&configuration, value)
            }
        }
        for (key, value) in overrides.sorted(by: { $0.key < $1.key }) {
            guard let setting = byKey[key] else {
                throw ConfigurationError("unknown setting '\(key)'; known keys: \(settings.map(\.key).joined(separator: ", "))")
            }
            try setting.apply(&configuration, value)
        }
        return configuration
    }

    private static func readFile(_ path: String) throws -> [String: String] {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ConfigurationError("cannot read configuration file \(path): \(error.localizedDescription)")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ConfigurationError("\(path) is not a JSON object of settings")
        }
        return try object.mapValues { value in
            switch value {
            case let text as String: return text
            case let number as NSNumber: return number.stringValue
            default: throw ConfigurationError("\(path): values must be strings, numbers or booleans")
            }
        }
    }

    private static func parse(_ text: String, as key: String, in range: ClosedRange<Int>) throws -> Int {
        guard let value = Int(text.trimmingCharacters(in: .whitespaces)), range.contains(value) else {
            throw ConfigurationError("\(key): '\(text)' is not a whole number in \(range.lowerBound)...\(range.upperBound)")
        }
        return value
    }
}

public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    public let description: String

    init(_ description: String) {
        self.description = description
    }
}
