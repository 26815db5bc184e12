import AttuneServer
import Foundation
import Hummingbird
import Logging

enum TestSupport {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var sharedData: URL {
        if let path = ProcessInfo.processInfo.environment["ATTUNE_SHARED_DATA"] {
            return URL(fileURLWithPath: path)
        }
        return packageRoot.deletingLastPathComponent().appendingPathComponent("shared/data")
    }

    static func ravdess(_ name: String) -> URL {
        let actor = name.split(separator: "-").last!.prefix(2)
        return sharedData.appendingPathComponent("speech/ravdess-16k/Actor_\(actor)/\(name).wav")
    }

    /// A fresh data folder for one test.
    static func temporaryDirectory() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("attune-test-\(UUID().uuidString)").path
    }

    /// The configuration tests run with: real models from the setup cache, a private data folder.
    static func configuration(_ edit: (inout AttuneConfiguration) -> Void = { _ in }) -> AttuneConfiguration {
        var configuration = AttuneConfiguration()
        configuration.port = 0
        configuration.dataDirectory = temporaryDirectory()
        configuration.logLevel = .warning
        edit(&configuration)
        return configuration
    }

    static func application(_ edit: (inout AttuneConfiguration) -> Void = { _ in }) async throws -> some ApplicationProtocol {
        var logger = Logger(label: "attune-test")
        logger.logLevel = .warning
        return try await buildApplication(configuration: configuration(edit), logger: logger)
    }
}

struct ErrorReply: Decodable {
    struct Detail: Decodable {
        let status: Int
        let message: String
    }

    let error: Detail
}
