import Foundation

/// Where the tests find the shared development data and the models setup installed.
enum TestData {
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

    static var models: URL {
        let cache = ProcessInfo.processInfo.environment["ATTUNE_CACHE"] ?? NSHomeDirectory() + "/.cache/attune"
        return URL(fileURLWithPath: cache).appendingPathComponent("models")
    }

    static var vadModel: URL { models.appendingPathComponent("silero_vad.onnx") }
}
