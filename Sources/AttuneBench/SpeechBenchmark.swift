import AttuneAudio
import AttuneCore
import AttuneServer
import AttuneSpeech
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

/// `attune bench stt`: accuracy, speed and end-of-turn latency of listening.
///
/// Word error rate and real-time factor come from transcribing every clip whole, as
/// `/api/transcribe` does. Final-transcript latency comes from real-time WebSocket sessions on
/// an in-process server over loopback: from the client's receipt of `speech_ended` to its
/// receipt of `transcript_final`.
public struct SpeechBenchmark {
    public struct Clip: Sendable {
        public let path: String
        public let reference: String

        public init(path: String, reference: String) {
            self.path = path
            self.reference = reference
        }
    }

    public struct Report: Encodable, Sendable {
        public var clips: Int
        public var wer: Double
        public var rtf: Double
        public var finalLatencyP50: Double
        public var finalLatencyP95: Double
        public var peakRSS: Double
        public var streamedSessions: Int
        public var streamedWER: Double
        public var serverLatencyP50: Double
        public var model: String

        enum CodingKeys: String, CodingKey {
            case clips, wer, rtf, model
            case finalLatencyP50 = "final_latency_ms_p50"
            case finalLatencyP95 = "final_latency_ms_p95"
            case peakRSS = "peak_rss_mb"
            case streamedSessions = "streamed_sessions"
            case streamedWER = "streamed_wer"
            case serverLatencyP50 = "server_final_latency_ms_p50"
        }
    }

    public var configuration: AttuneConfiguration
    public var streamedSessions: Int
    public var progress: @Sendable (String) -> Void

    public init(configuration: AttuneConfiguration, streamedSessions: Int, progress: @escaping @Sendable (String) -> Void) {
        self.configuration = configuration
        self.streamedSessions = streamedSessions
        self.progress = progress
    }

    /// Clips from a folder of RAVDESS-named WAV files, or a TSV manifest of `path<TAB>reference`.
    public static func clips(from location: String) throws -> [Clip] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: location, isDirectory: &isDirectory) else {
            throw BenchmarkError("no such file or folder: \(location)")
        }
        if !isDirectory.boolValue {
            let base = URL(fileURLWithPath: location).deletingLastPathComponent()
            return try String(contentsOfFile: location, encoding: .utf8).split(separator: "\n").compactMap { line in
                let fields = line.split(separator: "\t", maxSplits: 1).map(String.init)
                guard fields.count == 2 else { return nil }
                let path = fields[0].hasPrefix("/") ? fields[0] : base.appendingPathComponent(fields[0]).path
                return Clip(path: path, reference: fields[1])
            }
        }
        let statements = ["01": "Kids are talking by the door", "02": "Dogs are sitting by the door"]
        let files = FileManager.default.enumerator(atPath: location)?.compactMap { $0 as? String } ?? []
        return try files.filter { $0.hasSuffix(".wav") }.sorted().map { file in
            let name = URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent
            let parts = name.split(separator: "-")
            guard parts.count == 7, let reference = statements[String(parts[4])] else {
                throw BenchmarkError("\(file) is not named like RAVDESS (03-01-EE-II-SS-RR-AA.wav)")
            }
            return Clip(path: location + "/" + file, reference: reference)
        }
    }

    /// `count` items (clips, prompts) taken at even steps through `items` (all of them for 0), so
    /// that a sample spans the speakers and emotions rather than taking one actor.
    public static func spread<Element>(_ items: [Element], count: Int) -> [Element] {
        guard count > 0 else { return items }
        let step = max(1, items.count / count)
        return Array(stride(from: 0, to: items.count, by: step).map { items[$0] }.prefix(count))
    }

    public func run(clips: [Clip]) async throws -> Report {
        guard !clips.isEmpty else { throw BenchmarkError("no clips to measure") }
        let model = try WhisperModel(path: URL(fileURLWithPath: configuration.whisperModelPath))
        let transcriber = WhisperTranscriber(model: model, settings: configuration.whisper)
        let decoder = AudioFileDecoder()

        // 1. Whole-file transcription of every clip: WER and real-time factor.
        var errors = 0
        var words = 0
        var audioSeconds = 0.0
        var decodeSeconds = 0.0
        var audios: [[Float]] = []
        for (index, clip) in clips.enumerated() {
            let audio = try Resampler.resample(try decoder.read(contentsOf: URL(fileURLWithPath: clip.path)), to: 16_000)
            let clock = ContinuousClock()
            let started = clock.now
            let transcript = try await transcriber.transcribe(audio.samples, pass: .final)
            decodeSeconds += (clock.now - started).milliseconds / 1_000
            audioSeconds += audio.duration
            let score = WordErrorRate.errors(reference: clip.reference, hypothesis: transcript.text)
            errors += score.errors
            words += score.words
            if index < streamedSessions { audios.append(audio.samples) }
            if (index + 1) % 50 == 0 { progress("transcribed \(index + 1)/\(clips.count) clips") }
        }
        try await transcriber.pool.shutdown()

        // 2. Real-time sessions over the WebSocket: latency from speech_ended to transcript_final.
        let (latencies, serverLatencies, streamedScore) = try await streamSessions(
            audios, references: clips.map(\.reference), names: clips.map { URL(fileURLWithPath: $0.path).lastPathComponent })
        return Report(
            clips: clips.count,
            wer: Double(errors) / Double(max(words, 1)),
            rtf: decodeSeconds / max(audioSeconds, 0.001),
            finalLatencyP50: percentile(latencies, 0.5),
            finalLatencyP95: percentile(latencies, 0.95),
            peakRSS: Self.peakResidentMegabytes(),
            streamedSessions: audios.count,
            streamedWER: Double(streamedScore.errors) / Double(max(streamedScore.words, 1)),
            serverLatencyP50: percentile(serverLatencies, 0.5),
            model: configuration.whisperModel
        )
    }

    private func streamSessions(_ audios: [[Float]], references: [String], names: [String]) async throws -> ([Double], [Double], (errors: Int, words: Int)) {
        guard !audios.isEmpty else { return ([], [], (0, 0)) }
        var configuration = self.configuration
        configuration.llmEmbedded = false  // transcription only
        let progress = self.progress
        return try await withBenchServer(configuration) { port in
            var latencies: [Double] = []
            var serverLatencies: [Double] = []
            var errors = 0
            var words = 0
            for (index, audio) in audios.enumerated() {
                let events = try await ConversationClient(port: port).stream(audio)
                var ended: [String: ContinuousClock.Instant] = [:]
                var hypothesis: [String] = []
                for event in events {
                    if event.type == "speech_ended", let id = event["utterance"] { ended[id] = event.arrival }
                    if event.type == "transcript_final", let id = event["utterance"] {
                        if let start = ended[id] { latencies.append((event.arrival - start).milliseconds) }
                        if let server = event.number("latency_ms") { serverLatencies.append(server) }
                        hypothesis.append(event["text"] ?? "")
                    }
                }
                let score = WordErrorRate.errors(reference: references[index], hypothesis: hypothesis.joined(separator: " "))
                if score.errors > 0 {
                    progress("streamed clip \(names[index]): heard \"\(hypothesis.joined(separator: " | "))\"")
                }
                errors += score.errors
                words += score.words
                if (index + 1) % 10 == 0 { progress("streamed \(index + 1)/\(audios.count) sessions") }
            }
            return (latencies, serverLatencies, (errors, words))
        }
    }

    /// The process's peak resident memory (VmHWM), in MiB.
    static func peakResidentMegabytes() -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
            let kilobytes = Double(line.split(separator: " ").dropFirst().first ?? "")
        else { return 0 }
        return kilobytes / 1_024
    }
}

/// ``percentile(_:_:)`` of a figure that may have no values at all: nil then, not 0.
func percentileOfAny(_ values: [Double], _ fraction: Double) -> Double? {
    values.isEmpty ? nil : percentile(values, fraction)
}

func percentile(_ values: [Double], _ fraction: Double) -> Double {
    guard !values.isEmpty else { return 0 }
    let sorted = values.sorted()
    let rank = fraction * Double(sorted.count - 1)
    let low = Int(rank.rounded(.down))
    let high = min(low + 1, sorted.count - 1)
    return sorted[low] + (sorted[high] - sorted[low]) * (rank - Double(low))
}

public struct BenchmarkError: Error, CustomStringConvertible, Sendable {
    public let description: String

    init(_ description: String) {
        self.description = description
    }
}
