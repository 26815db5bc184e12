import Foundation
import Hummingbird
import HTTPTypes
import NIOCore

/// Who may use the server.
///
/// - `Host`: an IP address, `localhost`, the bound host name, or a name in
///   `server.allowed_hosts`. A page served from any other name (DNS rebinding: an attacker's
///   name that resolves to this machine) is refused. Requests without `Host` (not browsers) pass.
/// - `Origin` (sent by browsers on WebSocket upgrades and cross-site requests): the page's own
///   origin, i.e. the request's `Host`, or one in `server.allowed_origins`. Browsers send only
///   `http`, `https` or `null` origins; any other (some WebSocket libraries send `ws://host`)
///   comes from a program that could as well have sent none, and passes.
/// - With `server.api_token` set, `/api/*` and `/ws/*` need `Authorization: Bearer TOKEN` or
///   `?token=TOKEN` (browsers cannot set headers on WebSockets).
struct AccessPolicy: Sendable {
    let settings: ServerSettings
    /// The address the server binds (`host`).
    let boundHost: String

    /// Why `request` is refused, or nil.
    func refusal(for request: Request) -> HTTPError? {
        // HTTP/1's Host becomes the authority; a request built without one may still carry the header.
        refusal(
            path: request.uri.path, queryToken: request.uri.queryParameters.get("token"),
            authority: request.head.authority ?? request.headers[Self.hostField], origin: request.headers[.origin],
            authorization: request.headers[.authorization])
    }

    /// Why a request with these parts is refused, or nil.
    func refusal(path: String, queryToken: String?, authority: String?, origin: String?, authorization: String?) -> HTTPError? {
        if let authority, !isAllowed(host: Self.hostName(authority)) {
            return HTTPError(
                .forbidden,
                message: "Host '\(Self.echo(authority))' is not served here; add it to server.allowed_hosts to allow it")
        }
        if let origin, !isAllowed(origin: origin, authority: authority) {
            return HTTPError(
                .forbidden,
                message: "Origin '\(Self.echo(origin))' may not use this server; add it to server.allowed_origins to allow it")
        }
        if let token = settings.apiToken, needsToken(path), !Self.presents(token, authorization: authorization, query: queryToken) {
            return HTTPError(
                .unauthorized, headers: [.wwwAuthenticate: "Bearer"],
                message: "this server needs an access token: send Authorization: Bearer TOKEN, or ?token=TOKEN on WebSockets")
        }
        return nil
    }

    static let hostField = HTTPField.Name("Host")!

    func needsToken(_ path: String) -> Bool {
        path.hasPrefix("/api/") || path.hasPrefix("/ws/")
    }

    func isAllowed(host: String) -> Bool {
        let host = host.lowercased()
        if settings.allowedHosts.contains("*") || settings.allowedHosts.contains(where: { $0.lowercased() == host }) { return true }
        return host == "localhost" || host == boundHost.lowercased() || Self.isIPAddress(host)
    }

    func isAllowed(origin: String, authority: String?) -> Bool {
        if settings.allowedOrigins.contains("*") { return true }
        let normalized = origin.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        if settings.allowedOrigins.contains(where: { $0.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "/")) == normalized }) {
            return true
        }
        guard let url = URLComponents(string: normalized), let scheme = url.scheme, let host = url.host else { return false }
        guard ["http", "https"].contains(scheme) else { return true }  // not a browser's origin
        // Same origin: the page was served by this very host and port.
        guard let authority else { return false }
        let port = url.port.map { ":\($0)" } ?? ""
        let originAuthority = (host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host) + port
        return originAuthority == authority.lowercased() || originAuthority + (scheme == "https" ? ":443" : ":80") == authority.lowercased()
    }

    /// The host part of a `Host` value (`name:port`, `[v6]:port`).
    static func hostName(_ authority: String) -> String {
        if authority.hasPrefix("["), let end = authority.firstIndex(of: "]") {
            return String(authority[authority.index(after: authority.startIndex)..<end])
        }
        if let colon = authority.lastIndex(of: ":"), authority[authority.index(after: colon)...].allSatisfy(\.isNumber) {
            return String(authority[..<colon])
        }
        return authority
    }

    static func isIPAddress(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }

    static func presents(_ token: String, authorization: String?, query: String?) -> Bool {
        let expected = Array(token.utf8)
        if let header = authorization, header.lowercased().hasPrefix("bearer ") {
            if constantTimeEqual(Array(header.utf8.dropFirst(7)), expected) { return true }
        }
        if let query {
            return constantTimeEqual(Array(query.utf8), expected)
        }
        return false
    }

    private static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        return zip(a, b).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }

    /// A short, printable prefix of a client's value for error messages.
    static func echo(_ value: String) -> String {
        let printable = String(value.unicodeScalars.filter { $0.value >= 0x20 && $0.value < 0x7F }.map(Character.init))
        return printable.count <= 60 ? printable : String(printable.prefix(60)) + "…"
    }
}

/// Refuses requests the ``AccessPolicy`` does not allow, before any route sees them.
struct AccessMiddleware<Context: RequestContext>: RouterMiddleware {
    let policy: AccessPolicy

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let refusal = policy.refusal(for: request) { throw refusal }
        return try await next(request, context)
    }
}
