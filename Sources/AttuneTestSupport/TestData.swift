import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Where tests find the shared development data (`../shared/data`, or `ATTUNE_SHARED_DATA`)
/// and the models setup installed (`$ATTUNE_CACHE/models`).
public enum TestData {
    public static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    public static var sharedData: URL {
        if let path = ProcessInfo.processInfo.environment["ATTUNE_SHARED_DATA"] {
            return URL(fileURLWithPath: path)
        }
        return packageRoot.deletingLastPathComponent().appendingPathComponent("shared/data")
    }

    /// A RAVDESS clip by its name, e.g. `03-01-01-01-01-01-01`.
    public static func ravdess(_ name: String) -> URL {
        let actor = name.split(separator: "-").last!.prefix(2)
        return sharedData.appendingPathComponent("speech/ravdess-16k/Actor_\(actor)/\(name).wav")
    }

    public static var models: URL {
        let cache = ProcessInfo.processInfo.environment["ATTUNE_CACHE"] ?? NSHomeDirectory() + "/.cache/attune"
        return URL(fileURLWithPath: cache).appendingPathComponent("models")
    }

    public static var vadModel: URL { models.appendingPathComponent("silero_vad.onnx") }

    /// A fresh name (not created) for a folder or file in ``scratch``.
    public static func temporaryDirectory() -> String {
        scratch.appendingPathComponent("attune-test-\(UUID().uuidString)").path
    }

    /// The one folder everything a test process writes goes in (data folders of test servers,
    /// audio for the fake microphone, Chromium's own temporary files): `attune-tests-PID` in the
    /// system's temporary directory. It is removed when the process exits, whatever the tests'
    /// outcome; one left by a process that died without exiting (killed, crashed) is removed by
    /// the next test process to start.
    public static let scratch: URL = {
        let base = FileManager.default.temporaryDirectory
        removeScratchFolders(in: base, ofProcessesOtherThan: getpid())
        let folder = base.appendingPathComponent("\(scratchPrefix)\(getpid())")
        try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(at: TestData.scratch) }
        return folder
    }()

    static let scratchPrefix = "attune-tests-"

    /// Removes the scratch folders in `base` whose process is no longer running (and is not
    /// `current`); returns their names.
    @discardableResult
    public static func removeScratchFolders(in base: URL, ofProcessesOtherThan current: Int32) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: base.path)) ?? []
        return names.filter { name in
            guard name.hasPrefix(scratchPrefix), let pid = Int32(name.dropFirst(scratchPrefix.count)), pid != current,
                kill(pid, 0) != 0, errno == ESRCH
            else { return false }
            return (try? FileManager.default.removeItem(at: base.appendingPathComponent(name))) != nil
        }
    }
}

extension TestData {
    /// The FER2013 crops of one class folder (`angry`, `happy`, …) of a split, sorted by name.
    public static func ferImages(_ split: String = "fer2013-publictest", folder: String) throws -> [URL] {
        let directory = sharedData.appendingPathComponent("face/\(split)/\(folder)")
        return try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "jpg" }.sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    public static var faceDetectorModel: URL { models.appendingPathComponent("retinaface-mnet025.onnx") }

    /// Runs one of `scripts/`'s Python reference implementations with the Python packages setup
    /// installed, `input` on its standard input; returns its standard output and exit status.
    public static func runReference(_ script: String, arguments: [String], input: Data) throws -> (output: Data, status: Int32) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", packageRoot.appendingPathComponent("scripts/\(script)").path] + arguments
        var environment = ProcessInfo.processInfo.environment
        environment["PYTHONPATH"] = models.deletingLastPathComponent().appendingPathComponent("python").path
        process.environment = environment
        let stdin = Pipe()
        let stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        try process.run()
        stdin.fileHandleForWriting.write(input)
        try stdin.fileHandleForWriting.close()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (output, process.terminationStatus)
    }
}
