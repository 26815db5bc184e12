import Hummingbird
import Synchronization

/// The API's paths and the methods each accepts, so that a wrong method gets 405 rather than
/// the router's 404. Paths may hold `{parameter}` segments. Controllers add to it as they
/// register routes; the error middleware reads it while serving.
final class RouteCatalog: Sendable {
    private struct Entry {
        let path: String
        let segments: [Substring]
        let method: HTTPRequest.Method
    }

    private let entries = Mutex<[Entry]>([])

    func add(_ method: HTTPRequest.Method, _ path: String) {
        entries.withLock { $0.append(Entry(path: path, segments: path.split(separator: "/"), method: method)) }
    }

    /// Every registered route as (path, method), for the OpenAPI document's test.
    var routes: [(path: String, method: HTTPRequest.Method)] {
        entries.withLock { $0.map { ($0.path, $0.method) } }
    }

    func methods(for path: String) -> Set<HTTPRequest.Method> {
        let segments = path.split(separator: "/")
        return entries.withLock { entries in
            Set(entries.filter { Self.matches($0.segments, segments) }.map(\.method))
        }
    }

    private static func matches(_ pattern: [Substring], _ path: [Substring]) -> Bool {
        pattern.count == path.count
            && zip(pattern, path).allSatisfy { $0.hasPrefix("{") || $0.hasPrefix(":") || $0 == $1 }
    }
}

extension Router {
    /// Registers a route with the router and records it in the catalog.
    @discardableResult
    func on(
        _ path: String, method: HTTPRequest.Method, catalog: RouteCatalog,
        use handler: @escaping @Sendable (Request, Context) async throws -> some ResponseGenerator
    ) -> Self {
        catalog.add(method, path)
        return on(RouterPath(path), method: method, use: handler)
    }
}
