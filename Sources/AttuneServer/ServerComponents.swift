import AttuneCore
import AttuneSpeech
import AttuneStorage
import Foundation
import Logging
import ServiceLifecycle

/// The native components the server loaded at start-up, and the workers that run them.
public struct ServerComponents: Sendable {
    /// What `/api/health` reports, in load order.
    public let statuses: [ComponentStatus]
    public let vadModel: URL
    public let vadSettings: VoiceActivitySettings
    /// Threads for speech models; blocking inference never runs on the cooperative pool.
    public let speechPool: InferencePool

    /// Long-lived parts that the application's service group starts and stops.
    public var services: [any Service] { [speechPool] }

    public var isHealthy: Bool { statuses.allSatisfy(\.loaded) }

    /// Loads every component, recording failures in the statuses rather than throwing, so the
    /// server still starts and reports what is missing.
    public static func load(configuration: AttuneConfiguration, logger: Logger) -> ServerComponents {
        let models = URL(fileURLWithPath: configuration.modelsDirectory)
        let manifest = ModelManifest(directory: models)
        let vadModel = models.appendingPathComponent("silero_vad.onnx")
        let vadSettings = VoiceActivitySettings()
        var statuses = NativeRuntime.componentStatuses()
        statuses.append(
            .measure("silero-vad", version: manifest.version(of: vadModel.lastPathComponent)) {
                _ = try SileroVoiceActivityDetector(model: vadModel, settings: vadSettings)
                return vadModel.path
            })
        statuses.append(
            .measure("storage") {
                try DataDirectory(URL(fileURLWithPath: configuration.dataDirectory)).prepare()
                return configuration.dataDirectory
            })
        for status in statuses {
            if status.loaded {
                logger.info("loaded \(status.name) \(status.version ?? "") in \(String(format: "%.1f", status.loadMilliseconds ?? 0)) ms")
            } else {
                logger.error("could not load \(status.name): \(status.error ?? "unknown error")")
            }
        }
        return ServerComponents(
            statuses: statuses,
            vadModel: vadModel,
            vadSettings: vadSettings,
            speechPool: InferencePool(
                name: "speech", workers: configuration.speechWorkers, maxQueued: configuration.speechQueueLimit)
        )
    }
}
