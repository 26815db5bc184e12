import AttuneAudio
import AttuneSpeech
import AttuneTestSupport
import Foundation
import Testing

/// Smart Turn v3.2 on features computed in Swift, checked against the numpy extractor shipped
/// with the model and on real speech.
@Suite struct SmartTurnTests {
    static let model = try! SmartTurnModel(path: TestData.models.appendingPathComponent("smart-turn-v3.2-cpu.onnx"))

    @Test(arguments: [("03-01-01-01-01-01-01", 0), ("03-01-05-02-02-01-02", 20_000)])
    func featuresMatchTheNumpyExtractor(name: String, cut: Int) throws {
        let audio = Array(try clip(name).dropLast(cut))
        let swift = WhisperLogMel().features(audio)
        let numpy = try Self.numpyFeatures(audio)
        #expect(swift.count == WhisperLogMel.mels * WhisperLogMel.frames)
        try #require(numpy.count == swift.count)
        let worst = zip(swift, numpy).map { abs($0 - $1) }.max() ?? .infinity
        #expect(worst < 2e-3, "largest difference from numpy: \(worst)")
    }

    /// A whole sentence ends its turn; the same sentence cut off while the person is still
    /// speaking does not (measured: 0.99 and 0.93 complete, 0.10 and 0.02 cut).
    @Test(arguments: [("03-01-01-01-01-01-01", 31_200), ("03-01-05-02-02-01-02", 36_000)])
    func aFinishedSentenceIsCompleteAndACutOneIsNot(name: String, cut: Int) throws {
        let audio = try clip(name)  // "Kids are talking…", "Dogs are sitting…": cut before "by the door"
        let complete = try Self.model.completion(audio)
        let unfinished = try Self.model.completion(Array(audio.prefix(cut)))
        #expect(complete > 0.5, "complete: \(complete)")
        #expect(unfinished < 0.5, "cut at \(Double(cut) / 16_000) s: \(unfinished)")
    }

    static func numpyFeatures(_ audio: [Float]) throws -> [Float] {
        let cache = TestData.models.deletingLastPathComponent()
        let downloads = cache.appendingPathComponent("downloads")
        let wheel = try #require(
            try FileManager.default.contentsOfDirectory(atPath: downloads.path).first { $0.hasPrefix("pipecat_ai-") && $0.hasSuffix(".whl") },
            "the pipecat-ai wheel is not in \(downloads.path) (setup fetches it)")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", TestData.packageRoot.appendingPathComponent("scripts/smart_turn_reference.py").path,
            downloads.appendingPathComponent(wheel).path,
        ]
        var environment = ProcessInfo.processInfo.environment
        environment["PYTHONPATH"] = cache.appendingPathComponent("python").path
        process.environment = environment
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        let bytes = audio.withUnsafeBufferPointer { Data(buffer: $0) }
        input.fileHandleForWriting.write(bytes)
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        return data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }
}
