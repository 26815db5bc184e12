/// What `/api/health` reports for one native component or model.
public struct ComponentStatus: Codable, Sendable, Equatable {
    public var name: String
    public var loaded: Bool
    public var version: String?
    /// How long loading took, in milliseconds.
    public var loadMilliseconds: Double?
    /// A file path, a CPU feature list or another fact that helps an operator.
    public var detail: String?
    /// Why the component is not loaded.
    public var error: String?

    public init(
        name: String, loaded: Bool, version: String? = nil, loadMilliseconds: Double? = nil,
        detail: String? = nil, error: String? = nil
    ) {
        self.name = name
        self.loaded = loaded
        self.version = version
        self.loadMilliseconds = loadMilliseconds
        self.detail = detail
        self.error = error
    }

    enum CodingKeys: String, CodingKey {
        case name, loaded, version, detail, error
        case loadMilliseconds = "load_ms"
    }

    /// Runs `load`, timing it, and turns its outcome into a status.
    public static func measure(
        _ name: String, version: String? = nil, _ load: () throws -> String?
    ) -> ComponentStatus {
        let clock = ContinuousClock()
        let start = clock.now
        do {
            let detail = try load()
            return ComponentStatus(
                name: name, loaded: true, version: version,
                loadMilliseconds: (clock.now - start).milliseconds, detail: detail)
        } catch {
            return ComponentStatus(
                name: name, loaded: false, version: version,
                loadMilliseconds: (clock.now - start).milliseconds, error: String(describing: error))
        }
    }
}

extension ComponentStatus {
    /// The status with every absolute path in its detail and error cut to the file's name.
    public func hidingPaths() -> ComponentStatus {
        var status = self
        status.detail = detail.map(Self.hidingPaths)
        status.error = error.map(Self.hidingPaths)
        return status
    }

    /// Replaces each absolute path (`/a/b/file`) in `text` with `…/file`.
    static func hidingPaths(_ text: String) -> String {
        var result = ""
        var word = ""
        func flush() {
            if word.hasPrefix("/"), word.dropFirst().contains("/") {
                result += "…/" + (word.split(separator: "/").last.map(String.init) ?? "")
            } else {
                result += word
            }
            word = ""
        }
        for character in text {
            if character.isWhitespace || character == ":" || character == "," || character == "'" || character == "\"" {
                flush()
                result.append(character)
            } else {
                word.append(character)
            }
        }
        flush()
        return result
    }
}

extension Duration {
    /// The duration in milliseconds, as a floating-point number.
    public var milliseconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) * 1_000 + Double(attoseconds) / 1e15
    }
}
