import Foundation

public struct StorageError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// The folder where Attune keeps its own state (conversation history, caches it writes).
public struct DataDirectory: Sendable, Equatable {
    public let url: URL

    public init(_ url: URL) {
        self.url = url
    }

    /// Creates the folder if needed and proves it writable.
    public func prepare() throws {
        let manager = FileManager.default
        do {
            try manager.createDirectory(at: url, withIntermediateDirectories: true)
        } catch {
            throw StorageError(description: "cannot create data directory \(url.path): \(error.localizedDescription)")
        }
        let probe = url.appendingPathComponent(".write-test-\(UUID().uuidString)")
        guard manager.createFile(atPath: probe.path, contents: Data()) else {
            throw StorageError(description: "data directory \(url.path) is not writable")
        }
        try? manager.removeItem(at: probe)
    }

    public func file(_ name: String) -> URL {
        url.appendingPathComponent(name)
    }
}
