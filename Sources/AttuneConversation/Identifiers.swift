/// A name chosen by a client (a room, a participant, an audio track): 1 to 64 characters of
/// letters, digits and `-_.:@`. Anything else is refused, so names are safe in logs, URLs and
/// storage keys.
public protocol ClientName: Hashable, Sendable, Codable, CustomStringConvertible, Comparable {
    var rawValue: String { get }
    init(unchecked rawValue: String)
}

extension ClientName {
    public static var maxLength: Int { 64 }

    /// The name, or nil when `text` is not a valid one.
    public init?(_ text: String) {
        guard (1...Self.maxLength).contains(text.count),
            text.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_.:@".unicodeScalars.contains($0)) })
        else { return nil }
        self.init(unchecked: text)
    }

    public var description: String { rawValue }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let name = Self(text) else {
            throw DecodingError.dataCorrupted(.init(
                codingPath: decoder.codingPath, debugDescription: "not a valid name: 1-64 letters, digits or -_.:@"))
        }
        self = name
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

/// A room of the rooms protocol.
public struct RoomID: ClientName {
    public let rawValue: String
    public init(unchecked rawValue: String) { self.rawValue = rawValue }
}

/// A participant (the protocol's `user_id`), unique within a room.
public struct ParticipantID: ClientName {
    public let rawValue: String
    public init(unchecked rawValue: String) { self.rawValue = rawValue }
}

/// One audio track of a participant.
public struct TrackID: ClientName {
    public let rawValue: String
    public init(unchecked rawValue: String) { self.rawValue = rawValue }
}
