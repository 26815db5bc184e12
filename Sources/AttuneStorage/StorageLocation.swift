import Foundation

/// Where Attune keeps conversations and rooms (`storage.url`): an embedded SQLite file, or a
/// PostgreSQL server that several instances share.
public enum StorageLocation: Sendable, Equatable, CustomStringConvertible {
    /// `sqlite:PATH`; a relative path is inside the data directory.
    case sqlite(path: String)
    /// `postgres://user:password@host:port/database` (also `postgresql://`), with an optional
    /// `?sslmode=disable|prefer|require` (default prefer).
    case postgres(PostgresLocation)

    public init(url text: String) throws {
        if text.hasPrefix("sqlite:") {
            let path = String(text.dropFirst("sqlite:".count))
            guard !path.isEmpty else { throw StorageError(description: "storage.url: 'sqlite:' needs a path, as in sqlite:history.sqlite") }
            self = .sqlite(path: path)
        } else if text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") {
            self = .postgres(try PostgresLocation(url: text))
        } else {
            throw StorageError(description: "storage.url: '\(Self.redacted(text))' is neither sqlite:PATH nor postgres://user:password@host:port/database")
        }
    }

    /// The address with any password hidden, for logs and health.
    public var description: String {
        switch self {
        case .sqlite(let path): "sqlite:\(path)"
        case .postgres(let location): location.description
        }
    }

    static func redacted(_ text: String) -> String {
        guard let components = URLComponents(string: text), components.password != nil else { return text }
        var hidden = components
        hidden.password = "***"
        return hidden.string ?? "(unreadable)"
    }
}

/// A PostgreSQL server and database, from a `postgres://` URL.
public struct PostgresLocation: Sendable, Equatable, CustomStringConvertible {
    public enum TLSMode: String, Sendable { case disable, prefer, require }

    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    public var tls: TLSMode

    public init(url text: String) throws {
        guard let components = URLComponents(string: text), let host = components.host, !host.isEmpty else {
            throw StorageError(description: "storage.url: cannot read '\(StorageLocation.redacted(text))' as postgres://user:password@host:port/database")
        }
        guard let user = components.user, !user.isEmpty else {
            throw StorageError(description: "storage.url: '\(StorageLocation.redacted(text))' names no user (postgres://user:password@host:port/database)")
        }
        let database = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        guard !database.isEmpty, !database.contains("/") else {
            throw StorageError(description: "storage.url: '\(StorageLocation.redacted(text))' names no database (postgres://user:password@host:port/database)")
        }
        let mode = components.queryItems?.first { $0.name == "sslmode" }?.value ?? "prefer"
        guard let tls = TLSMode(rawValue: mode) else {
            throw StorageError(description: "storage.url: sslmode '\(mode)' is not disable, prefer or require")
        }
        self.host = host
        port = components.port ?? 5432
        username = user.removingPercentEncoding ?? user
        password = components.password.map { $0.removingPercentEncoding ?? $0 }
        self.database = database.removingPercentEncoding ?? database
        self.tls = tls
    }

    public var description: String {
        "postgres://\(username)\(password == nil ? "" : ":***")@\(host):\(port)/\(database)"
    }
}
