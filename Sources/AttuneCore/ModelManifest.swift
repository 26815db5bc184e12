import Foundation

/// `models/manifest.json`, written by setup: which package and version each model file came from.
public struct ModelManifest: Sendable {
    public struct Entry: Codable, Sendable {
        public var package: String
        public var version: String
    }

    public let entries: [String: Entry]

    /// Reads the manifest in `directory`; an absent or unreadable one is empty.
    public init(directory: URL) {
        let file = directory.appendingPathComponent("manifest.json")
        let data = try? Data(contentsOf: file)
        entries = data.flatMap { try? JSONDecoder().decode([String: Entry].self, from: $0) } ?? [:]
    }

    public func version(of file: String) -> String? {
        entries[file]?.version
    }
}
