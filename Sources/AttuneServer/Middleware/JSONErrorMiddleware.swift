import AttuneCore
import AttuneStorage
import Foundation
import Hummingbird
import Metrics
import NIOCore

/// The body of every error response: `{"error": {"status": 404, "reason": "...", "message": "..."}}`.
struct ErrorBody: Codable, Sendable {
    struct Detail: Codable, Sendable {
        let status: Int
        let reason: String
        let message: String
    }

    let error: Detail
}

/// Turns every error into a JSON response with the right status code, including requests that
/// match no route (404), requests to a known path with the wrong method (405, with `Allow`) and
/// requests refused by a full inference queue (503, with `Retry-After`).
struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    let catalog: RouteCatalog

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            return response(for: error, request: request, context: context)
        }
    }

    private func response(for error: any Error, request: Request, context: Context) -> Response {
        var headers = HTTPFields()
        var status = HTTPResponse.Status.internalServerError
        var message = "internal error"

        switch error {
        case let busy as InferencePoolBusyError:  // any route whose inference queue is full
            status = .serviceUnavailable
            headers[.retryAfter] = "1"
            message = busy.description
        case let storage as StorageError:  // the database is unreachable or refused the operation
            status = .serviceUnavailable
            headers[.retryAfter] = "5"
            message = "storage is unavailable: " + storage.description
        case let httpError as HTTPError:
            status = httpError.status
            headers = httpError.headers
            message = httpError.body ?? defaultMessage(for: status, request: request)
        case let responseError as any HTTPResponseError:
            status = responseError.status
            message = defaultMessage(for: status, request: request)
        default:
            context.logger.error("unhandled error: \(String(reflecting: error))")
        }

        if status == .notFound, request.uri.path.hasPrefix("/api/") || request.uri.path == "/metrics" {
            let allowed = catalog.methods(for: request.uri.path)
            if !allowed.isEmpty, !allowed.contains(request.method) {
                status = .methodNotAllowed
                message = "\(request.method) is not allowed on \(request.uri.path); use \(allowed.map(\.rawValue).sorted().joined(separator: ", "))"
                headers[.allow] = allowed.map(\.rawValue).sorted().joined(separator: ", ")
            }
        }

        let body = ErrorBody(error: .init(status: Int(status.code), reason: status.reasonPhrase, message: message))
        let data = (try? JSONEncoder().encode(body)) ?? Data("{}".utf8)
        headers[.contentType] = "application/json; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    private func defaultMessage(for status: HTTPResponse.Status, request: Request) -> String {
        switch status {
        case .notFound: "no route for \(request.method) \(request.uri.path)"
        case .contentTooLarge: "request body is larger than this server accepts"
        default: status.reasonPhrase
        }
    }
}

/// Rejects a request whose declared body is larger than the configured limit before reading it.
/// Bodies without a length are limited where they are collected.
struct BodyLimitMiddleware<Context: RequestContext>: RouterMiddleware {
    let maxBytes: Int

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let declared = request.headers[.contentLength].flatMap(Int.init), declared > maxBytes {
            throw HTTPError(.contentTooLarge, message: "request body of \(declared) bytes exceeds the limit of \(maxBytes) bytes (setting max_body_bytes)")
        }
        return try await next(request, context)
    }
}

/// Counts requests and their duration by route, method and status, under the names Hummingbird's
/// `MetricsMiddleware` uses (`hb_requests`, `http_server_request_duration`), but with bounded labels: a path that matches no route is `unmatched`
/// (or `static` when a file answered it), and a method outside HTTP's usual set is `OTHER`, so
/// that clients cannot create new series at will.
struct RequestMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    static var knownMethods: Set<HTTPRequest.Method> { [.get, .head, .post, .put, .delete, .patch, .options] }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        let method = Self.knownMethods.contains(request.method) ? request.method.rawValue : "OTHER"
        func record(_ status: HTTPResponse.Status) {
            let route = context.endpointPath ?? (status.code < 400 ? "static" : "unmatched")
            let labels = [("http_route", route), ("http_request_method", method)]
            Counter(label: "hb_requests", dimensions: labels + [("http_response_status_code", String(status.code))]).increment()
            Timer(label: "http_server_request_duration", dimensions: labels, preferredDisplayUnit: .seconds)
                .recordNanoseconds(Int64((ContinuousClock.now - started).milliseconds * 1_000_000))
        }
        do {
            let response = try await next(request, context)
            record(response.status)
            return response
        } catch {
            record((error as? any HTTPResponseError)?.status ?? .internalServerError)
            throw error
        }
    }
}

/// Sends `GET /rooms?room=a` to `/rooms/?room=a`. `FileMiddleware` redirects a folder without
/// its trailing slash too, but drops the query, and the pages read their links from it.
struct FolderRedirectMiddleware<Context: RequestContext>: RouterMiddleware {
    /// Page folders, without the trailing slash (`/rooms`).
    let folders: Set<String>

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.method == .get || request.method == .head, folders.contains(request.uri.path) else {
            return try await next(request, context)
        }
        let query = request.uri.query.map { "?\($0)" } ?? ""
        return Response(status: .movedPermanently, headers: [.location: request.uri.path + "/" + query])
    }
}
