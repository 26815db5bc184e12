import Foundation

/// The CPU this process runs on, from `/proc/cpuinfo`: recorded with every benchmark result and
/// in `/api/health`, because how fast Attune answers depends on it (AVX2 only, AVX-512, AMX).
public struct CPUInfo: Codable, Sendable, Equatable {
    /// The model name ("AMD EPYC 7B13"), or "unknown".
    public var model: String
    /// Logical processors this process may run on.
    public var cores: Int
    public var avx2: Bool
    public var avx512: Bool
    public var amx: Bool

    public init(model: String, cores: Int, avx2: Bool, avx512: Bool, amx: Bool) {
        self.model = model
        self.cores = cores
        self.avx2 = avx2
        self.avx512 = avx512
        self.amx = amx
    }

    /// This machine's CPU (read once).
    public static let current: CPUInfo = {
        let text = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        return parse(text, cores: ProcessInfo.processInfo.activeProcessorCount)
    }()

    /// Reads the first processor's model name and flags from `/proc/cpuinfo` text.
    public static func parse(_ text: String, cores: Int) -> CPUInfo {
        var model = "unknown"
        var flags: Set<Substring> = []
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let key = parts[0].trimmingCharacters(in: .whitespaces)
            if key == "model name", model == "unknown" { model = parts[1].trimmingCharacters(in: .whitespaces) }
            if key == "flags", flags.isEmpty { flags = Set(parts[1].split(separator: " ")) }
        }
        return CPUInfo(
            model: model, cores: cores, avx2: flags.contains("avx2"), avx512: flags.contains("avx512f"),
            amx: flags.contains("amx_tile"))
    }

    /// "AMD EPYC, 2 cores, AVX2" and the like.
    public var summary: String {
        let features = [("AVX2", avx2), ("AVX-512", avx512), ("AMX", amx)].filter(\.1).map(\.0)
        return "\(model), \(cores) cores" + (features.isEmpty ? "" : ", " + features.joined(separator: ", "))
    }
}
