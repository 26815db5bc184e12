import AttuneServer
import AttuneTestSupport
import Foundation
import Testing

@Suite struct ConfigurationTests {
    @Test func defaultsWorkOffline() throws {
        let configuration = try AttuneConfiguration.load(environment: [:])
        #expect(configuration.host == "127.0.0.1")
        #expect(configuration.port == 8080)
        #expect(configuration.modelsDirectory.hasSuffix("/models"))
    }

    @Test func flagsBeatEnvironmentWhichBeatsTheFile() throws {
        let file = TestData.scratch.appendingPathComponent("attune-\(UUID().uuidString).json")
        try Data(#"{"port": 9000, "host": "0.0.0.0", "max_body_bytes": 1234, "log_level": "debug"}"#.utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }

        let configuration = try AttuneConfiguration.load(
            file: file.path,
            environment: ["ATTUNE_PORT": "9100", "ATTUNE_SPEECH_WORKERS": "3"],
            overrides: ["port": "9200"]
        )
        #expect(configuration.port == 9200)
        #expect(configuration.host == "0.0.0.0")
        #expect(configuration.maxRequestBodyBytes == 1234)
        #expect(configuration.speechWorkers == 3)
        #expect(configuration.logLevel == .debug)
    }

    @Test func theAccessTokenHasAShortEnvironmentName() throws {
        #expect(try AttuneConfiguration.load(environment: ["ATTUNE_API_TOKEN": "s3cret"]).server.apiToken == "s3cret")
        let both = try AttuneConfiguration.load(environment: ["ATTUNE_API_TOKEN": "short", "ATTUNE_SERVER_API_TOKEN": "long"])
        #expect(both.server.apiToken == "long")
        #expect(try AttuneConfiguration.load(environment: [:]).server.apiToken == nil)
    }

    /// Every setting appears in the README's tables with its environment variable.
    @Test func theReadmeDocumentsEverySetting() throws {
        let readme = try String(contentsOf: TestData.packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let undocumented = AttuneConfiguration.settings.filter { setting in
            !readme.contains("`\(setting.key)`") || !readme.contains(setting.environmentName)
        }
        #expect(undocumented.isEmpty, "not in README.md: \(undocumented.map(\.key))")
    }

    @Test func theEnvironmentCanNameTheFile() throws {
        let file = TestData.scratch.appendingPathComponent("attune-\(UUID().uuidString).json")
        try Data(#"{"port": "7000"}"#.utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        #expect(try AttuneConfiguration.load(environment: ["ATTUNE_CONFIG": file.path]).port == 7000)
    }

    @Test(arguments: [
        ["port": "eighty"], ["port": "70000"], ["log_level": "loud"], ["no_such_key": "1"], ["speech.workers": "0"],
    ])
    func badValuesAreRefusedWithTheirName(overrides: [String: String]) {
        #expect {
            try AttuneConfiguration.load(environment: [:], overrides: overrides)
        } throws: { error in
            let text = String(describing: error)
            return overrides.keys.allSatisfy { text.contains($0) }
        }
    }

    @Test func aBrokenFileIsReported() throws {
        let file = TestData.scratch.appendingPathComponent("attune-\(UUID().uuidString).json")
        try Data("port = 1".utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        #expect(throws: ConfigurationError.self) { try AttuneConfiguration.load(file: file.path, environment: [:]) }
        #expect(throws: ConfigurationError.self) { try AttuneConfiguration.load(file: "/nonexistent.json", environment: [:]) }
    }
}
