import Foundation
import Hummingbird

/// `GET /openapi.json`: the OpenAPI 3.1 description of every HTTP route, checked in beside the
/// web UI (`Public/openapi.json`) and kept true by `OpenAPITests` and schemathesis.
struct OpenAPIController: Sendable {
    static var documentPath: String { ServerResources.publicDirectory + "/openapi.json" }

    func addRoutes(to router: Router<some RequestContext>, catalog: RouteCatalog) {
        router.on("/openapi.json", method: .get, catalog: catalog) { _, _ in
            guard let data = FileManager.default.contents(atPath: Self.documentPath) else {
                throw HTTPError(.notFound, message: "the OpenAPI document is missing from this build")
            }
            return Response(
                status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(data: data)))
        }
    }
}
