import AttuneServer
import AttuneTestSupport
import Foundation
import Hummingbird
import Logging

enum TestSupport {
    /// The configuration tests run with: real models from the setup cache, a private data folder.
    static func configuration(_ edit: (inout AttuneConfiguration) -> Void = { _ in }) -> AttuneConfiguration {
        var configuration = AttuneConfiguration()
        configuration.port = 0
        configuration.dataDirectory = TestData.temporaryDirectory()
        configuration.logLevel = .warning
        // Tests that need the language model point llm.base_url at the shared llama-server.
        configuration.llmEmbedded = false
        // Generous model timeouts: a loaded CI machine must not turn a slow reply into a failure.
        configuration.llm.firstTokenTimeout = 30
        configuration.llm.totalTimeout = 90
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

