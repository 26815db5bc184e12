import AttuneAudio
import AttuneServer
import AttuneStorage
import Foundation

/// Many participants streaming speech into rooms at once, through `/ws/rooms` at real-time pace,
/// to see how many a machine serves before the room falls behind.
///
/// Each participant joins a room of `roomSize`, adds the track `mic` and streams RAVDESS clips
/// (looping, each followed by a short silence, starting at a different clip) in binary frames of
/// `chunkSeconds`, all participants at once. For every `emotion_update` a participant receives,
/// the latency is measured from the moment its speaker's client sent the audio frame that let the
/// server make the reading, to the moment the update arrived. The update's `source` says what it
/// was read from: for a chunk of speech (the voice), the frame covering the chunk's `end`; for a
/// whole utterance (the voice, or the text of its transcript), the frame covering its `end` plus
/// the silence that ends a turn (`turn.silence_ms`), the earliest moment the server could know
/// the utterance was over. Every participant receives every update of its room, so each reading
/// gives `roomSize` samples.
///
/// With several `instances` (servers on one shared PostgreSQL, `storage.url`), participant `i`
/// connects to instance `i % instances`, so every room spans them; an update that crossed from
/// the speaker's instance to another is counted in `cross_instance`, the others in `same_instance`.
///
/// `chunk_to_broadcast` is the latency of the chunk readings (the voice, every `rooms.chunk_seconds`
/// of speech); `by_source` gives the same measure for every kind of reading, whole utterances
/// included. Dropped chunks are the audio frames the server refused (`rate_limited`) and the
/// chunks it skipped because voice analysis was behind; every `error` is counted by code in `errors`.
public struct RoomsBenchmark {
    public struct Report: Encodable, Sendable {
        public var participants: Int
        public var rooms: Int
        public var seconds: Double
        public var chunks: Int
        public var utterances: Int
        public var updates: Int
        public var chunkToBroadcastP50: Double
        public var chunkToBroadcastP95: Double
        public var droppedChunks: Int
        public var errors: [String: Int]
        public var rssMB: Double
        /// The same latency by what the update was read from: `voice chunk`, `voice utterance`, `text utterance`.
        public var bySource: [String: Latency]
        /// Servers the participants were spread over, and the storage they shared.
        public var instances: Int
        public var storage: String
        /// Chunk readings received on the speaker's own instance, and on another one (through
        /// PostgreSQL); nil with one instance.
        public var sameInstance: Latency?
        public var crossInstance: Latency?

        enum CodingKeys: String, CodingKey {
            case participants, rooms, seconds, chunks, utterances, updates, errors
            case chunkToBroadcastP50 = "chunk_to_broadcast_ms_p50"
            case chunkToBroadcastP95 = "chunk_to_broadcast_ms_p95"
            case droppedChunks = "dropped_chunks"
            case rssMB = "rss_mb"
            case bySource = "by_source"
            case instances, storage
            case sameInstance = "same_instance_chunk_to_broadcast"
            case crossInstance = "cross_instance_chunk_to_broadcast"
        }

        /// Whether this load was served in real time: chunk p95 under `budgetMs` and no chunk dropped.
        public func isRealtime(budgetMs: Double) -> Bool {
            droppedChunks == 0 && (bySource["voice chunk"]?.updates ?? 0) > 0 && chunkToBroadcastP95 <= budgetMs
        }
    }

    public struct Latency: Encodable, Sendable {
        public var updates: Int
        public var p50: Double
        public var p95: Double

        init(_ milliseconds: [Double]) {
            updates = milliseconds.count
            p50 = percentile(milliseconds, 0.5)
            p95 = percentile(milliseconds, 0.95)
        }

        enum CodingKeys: String, CodingKey {
            case updates
            case p50 = "ms_p50"
            case p95 = "ms_p95"
        }
    }

    /// The result of `--find-max`: every load tried, and the largest served in real time.
    public struct Search: Encodable, Sendable {
        public var runs: [Report]
        public var maxRealtimeParticipants: Int
        public var budgetMs: Double

        enum CodingKeys: String, CodingKey {
            case runs
            case maxRealtimeParticipants = "max_realtime_participants"
            case budgetMs = "budget_ms"
        }
    }

    public var configuration: AttuneConfiguration
    public var roomSize = 4
    public var seconds = 30.0
    public var chunkSeconds = 0.1
    /// Silence streamed after each clip, so that each clip is one turn.
    public var gapSeconds = 0.7
    /// Servers run at once (more than one needs a shared `storage.url`).
    public var instances = 1
    public var progress: @Sendable (String) -> Void

    public init(configuration: AttuneConfiguration, progress: @escaping @Sendable (String) -> Void) {
        self.configuration = configuration
        self.progress = progress
    }

    /// Loads the clips as 16 kHz samples.
    public static func audios(_ clips: [SpeechBenchmark.Clip]) throws -> [[Float]] {
        let decoder = AudioFileDecoder()
        return try clips.map { try Resampler.resample(try decoder.read(contentsOf: URL(fileURLWithPath: $0.path)), to: 16_000).samples }
    }

    /// Raises the number of participants a room at a time until the p95 passes `budgetMs` or
    /// chunks are dropped.
    public func findMax(audios: [[Float]], start: Int, limit: Int, budgetMs: Double = 200) async throws -> Search {
        var runs: [Report] = []
        var best = 0
        var participants = max(roomSize, start)
        while participants <= limit {
            let report = try await run(participants: participants, audios: audios)
            runs.append(report)
            guard report.isRealtime(budgetMs: budgetMs) else { break }
            best = participants
            participants += roomSize
        }
        return Search(runs: runs, maxRealtimeParticipants: best, budgetMs: budgetMs)
    }

    public func run(participants: Int, audios: [[Float]]) async throws -> Report {
        guard participants > 0, !audios.isEmpty else { throw BenchmarkError("no participants or no clips") }
        let trailingSilence = configuration.turn.trailingSilence
        var configuration = configuration
        // The benchmark drives the server on purpose; keep the session cap out of the way.
        configuration.stream.maxSessions = max(configuration.stream.maxSessions, participants + 8)
        // Rooms make no replies: a language model loading beside them would only take their cores.
        configuration.llmEmbedded = false
        let (roomSize, seconds, chunkSeconds, gap, progress, instances) = (
            self.roomSize, self.seconds, self.chunkSeconds, gapSeconds, self.progress, self.instances)
        let storage = try configuration.storageURL.map { try StorageLocation(url: $0).description } ?? "sqlite (per instance)"
        guard instances == 1 || storage.hasPrefix("postgres") else {
            throw BenchmarkError("--instances \(instances) needs a shared PostgreSQL: --storage postgres://…")
        }
        progress("\(participants) participants in rooms of \(roomSize) on \(instances) instance(s), \(seconds) s")
        return try await withBenchServers(configuration, count: instances) { ports in
            let clients = try await withThrowingTaskGroup(of: (Int, RoomsClient).self) { group in
                for index in 0..<participants {
                    group.addTask {
                        let client = try await RoomsClient.connect(port: ports[index % instances])
                        client.send(["type": "join_room", "room_id": "bench-\(index / roomSize)", "user_id": "p\(index)"])
                        try await client.waitFor(type: "room_joined")
                        client.send(["type": "audio_track_added", "track_id": "mic"])
                        return (index, client)
                    }
                }
                var clients: [RoomsClient?] = Array(repeating: nil, count: participants)
                for try await (index, client) in group { clients[index] = client }
                return clients.compactMap { $0 }
            }
            // Everyone streams from the same moment, spread over one chunk so frames do not arrive in bursts.
            let clock = ContinuousClock()
            let start = clock.now + .milliseconds(200)
            let sends = try await withThrowingTaskGroup(of: (Int, [ChunkSent]).self) { group in
                for (index, client) in clients.enumerated() {
                    group.addTask {
                        let audio = Self.programme(audios, first: index * 7, seconds: seconds, gap: gap)
                        let offset = start + .seconds(chunkSeconds * Double(index) / Double(participants))
                        let frame = Int(chunkSeconds * 16_000)
                        var sent: [ChunkSent] = []
                        for (number, position) in stride(from: 0, to: audio.count, by: frame).enumerated() {
                            try await Task.sleep(until: offset + .seconds(Double(number) * chunkSeconds), clock: clock)
                            let end = min(position + frame, audio.count)
                            client.send(samples: Array(audio[position..<end]), track: "mic")
                            sent.append(ChunkSent(trackEnd: Double(end) / 16_000, at: clock.now))
                        }
                        return (index, sent)
                    }
                }
                var sends: [[ChunkSent]] = Array(repeating: [], count: participants)
                for try await (index, sent) in group { sends[index] = sent }
                return sends
            }
            let rss = Self.residentMegabytes()
            // The last utterances are still being transcribed: wait until the rooms go quiet.
            var lastCount = -1
            while true {
                try await Task.sleep(for: .seconds(2))
                var count = 0
                for client in clients { count += await client.messageCount }
                if count == lastCount { break }
                lastCount = count
            }

            var latencies: [Double] = []
            var errors: [String: Int] = [:]
            var utterances = 0
            var byKind: [String: [Double]] = [:]
            var droppedChunks = 0
            var byPlace: [Bool: [Double]] = [:]  // crossed instances?
            for (index, client) in clients.enumerated() {
                for (arrived, message) in await client.timedMessages() {
                    let data = message["data"] as? [String: Any] ?? [:]
                    let user = data["user_id"] as? String ?? ""
                    switch message["type"] as? String {
                    case "transcript":
                        if user == "p\(index)" { utterances += 1 }
                    case "emotion_update":
                        // The update names the chunk or utterance it was read from.
                        guard let speaker = Int(user.dropFirst()), speaker < sends.count,
                            let source = data["source"] as? [String: Any], let end = source["end"] as? Double
                        else { continue }
                        let closing = source["kind"] as? String == "chunk" ? end : end + trailingSilence
                        guard let chunk = sends[speaker].first(where: { $0.trackEnd >= closing - 1e-6 }) else { continue }
                        let latency = Self.milliseconds(arrived - chunk.at)
                        latencies.append(latency)
                        byKind[(source["channel"] as? String ?? "?") + " " + (source["kind"] as? String ?? "?"), default: []].append(latency)
                        if source["kind"] as? String == "chunk" { byPlace[speaker % instances != index % instances, default: []].append(latency) }
                    case "error":
                        let code = data["code"] as? String ?? "?"
                        errors[code, default: 0] += 1
                        let message = data["message"] as? String ?? ""
                        if code == "rate_limited" || message.contains("this chunk is skipped") { droppedChunks += 1 }
                    default:
                        break
                    }
                }
            }
            for client in clients { await client.close() }
            let report = Report(
                participants: participants, rooms: (participants + roomSize - 1) / roomSize, seconds: seconds,
                chunks: sends.map(\.count).reduce(0, +), utterances: utterances, updates: latencies.count,
                chunkToBroadcastP50: percentile(byKind["voice chunk"] ?? [], 0.5), chunkToBroadcastP95: percentile(byKind["voice chunk"] ?? [], 0.95),
                droppedChunks: droppedChunks, errors: errors, rssMB: rss,
                bySource: byKind.mapValues(Latency.init), instances: instances, storage: storage,
                sameInstance: instances > 1 ? Latency(byPlace[false] ?? []) : nil, crossInstance: instances > 1 ? Latency(byPlace[true] ?? []) : nil)
            progress(String(format: "%d participants: p50 %.0f ms, p95 %.0f ms, %d updates, %d dropped, %.0f MB",
                            participants, report.chunkToBroadcastP50, report.chunkToBroadcastP95, report.updates, report.droppedChunks, rss))
            return report
        }
    }

    struct ChunkSent: Sendable {
        /// Seconds of the track sent once this chunk was.
        let trackEnd: Double
        let at: ContinuousClock.Instant
    }

    /// `seconds` of a participant's speech: the clips from `first` on, looping, each followed by
    /// `gap` seconds of silence, and a second of silence at the end so the last turn closes.
    static func programme(_ audios: [[Float]], first: Int, seconds: Double, gap: Double) -> [Float] {
        let length = Int(seconds * 16_000)
        let silence = [Float](repeating: 0, count: Int(gap * 16_000))
        var audio: [Float] = []
        var index = first
        while audio.count < length {
            audio += audios[index % audios.count] + silence
            index += 1
        }
        return audio + [Float](repeating: 0, count: 16_000)
    }

    static func milliseconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) * 1_000 + Double(duration.components.attoseconds) / 1e15
    }

    /// The process's resident memory now (VmRSS), in MiB.
    static func residentMegabytes() -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kilobytes = Double(line.split(separator: " ").dropFirst().first ?? "")
        else { return 0 }
        return kilobytes / 1_024
    }
}
