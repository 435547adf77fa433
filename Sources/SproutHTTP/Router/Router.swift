public import HTTPTypes
import Sprout

/// Routes requests by method and path pattern to handlers (an ``HTTPResponder``).
///
/// Patterns are literal segments, `:name` captures (read with `request.parameters["name"]`)
/// and a trailing `*` that captures the rest of the path (`request.parameters["*"]`). A static
/// path is found by one dictionary lookup; patterns with captures are tried in the order they
/// were added.
///
/// - An unknown path answers 404; a known path with another method answers 405 with `Allow`;
///   a method this server does not know at all answers 501.
/// - `HEAD` is answered by the `GET` handler when no `HEAD` route is given (the server sends
///   the headers only).
/// - Each route has a body limit (the server's `maxBodySize` by default); a declared
///   `Content-Length` above it answers 413 before the handler runs.
///
/// ```swift
/// let router = Router()
/// router.get("/feed/:user") { request in .text("feed of \(request.parameters["user"]!)") }
/// router.post("/upload", maxBodySize: 64 << 20) { request in
///     let bytes = try request.body.readAll()
///     return .text("got \(bytes.count) bytes")
/// }
/// ```
///
/// Add routes before the server starts; the router is read, never changed, while serving.
public final class Router: HTTPResponder {
    /// Answers one request.
    public typealias Handler = (Request) throws -> Response

    private struct Route {
        let method: HTTPRequest.Method
        let maxBodySize: Int?
        let handler: Handler
        let name: String
    }

    private final class PathEntry {
        let pattern: RoutePattern
        var routes: [Route] = []
        init(pattern: RoutePattern) { self.pattern = pattern }

        func route(for method: HTTPRequest.Method) -> Route? {
            routes.first { $0.method == method } ?? (method == .head ? routes.first { $0.method == .get } : nil)
        }

        var allowed: String {
            var methods = routes.map(\.method.rawValue)
            if methods.contains("GET") && !methods.contains("HEAD") { methods.append("HEAD") }
            return methods.joined(separator: ", ")
        }
    }

    private var staticEntries: [Substring: PathEntry] = [:]
    private var dynamicEntries: [PathEntry] = []

    /// An empty router: every path answers 404.
    public init() {}

    /// Routes `method` requests for paths matching `pattern` to `handler`.
    ///
    /// - Parameters:
    ///   - maxBodySize: The body limit for this route; the server's default when nil.
    /// - Precondition: `pattern` starts with `/`, `*` appears only as its last segment, and the
    ///   same method and pattern were not added before.
    public func on(_ method: HTTPRequest.Method, _ pattern: String, maxBodySize: Int? = nil, _ handler: @escaping Handler) {
        let parsed = RoutePattern(pattern)
        let entry: PathEntry
        if parsed.isStatic {
            if let existing = staticEntries[pattern[...]] {
                entry = existing
            } else {
                entry = PathEntry(pattern: parsed)
                staticEntries[Substring(pattern)] = entry
            }
        } else if let existing = dynamicEntries.first(where: { $0.pattern.text == pattern }) {
            entry = existing
        } else {
            entry = PathEntry(pattern: parsed)
            dynamicEntries.append(entry)
        }
        precondition(!entry.routes.contains { $0.method == method }, "Router: \(method) \(pattern) was added twice")
        entry.routes.append(Route(method: method, maxBodySize: maxBodySize, handler: handler, name: "\(method) \(pattern)"))
    }

    /// Routes `GET` (and so `HEAD`) requests.
    public func get(_ pattern: String, maxBodySize: Int? = nil, _ handler: @escaping Handler) {
        on(.get, pattern, maxBodySize: maxBodySize, handler)
    }

    /// Routes `POST` requests.
    public func post(_ pattern: String, maxBodySize: Int? = nil, _ handler: @escaping Handler) {
        on(.post, pattern, maxBodySize: maxBodySize, handler)
    }

    /// Routes `PUT` requests.
    public func put(_ pattern: String, maxBodySize: Int? = nil, _ handler: @escaping Handler) {
        on(.put, pattern, maxBodySize: maxBodySize, handler)
    }

    /// Routes `DELETE` requests.
    public func delete(_ pattern: String, maxBodySize: Int? = nil, _ handler: @escaping Handler) {
        on(.delete, pattern, maxBodySize: maxBodySize, handler)
    }

    /// Routes `PATCH` requests.
    public func patch(_ pattern: String, maxBodySize: Int? = nil, _ handler: @escaping Handler) {
        on(.patch, pattern, maxBodySize: maxBodySize, handler)
    }

    /// Routes `HEAD` requests (otherwise answered by the `GET` route).
    public func head(_ pattern: String, _ handler: @escaping Handler) {
        on(.head, pattern, handler)
    }

    /// Routes `OPTIONS` requests.
    public func options(_ pattern: String, _ handler: @escaping Handler) {
        on(.options, pattern, handler)
    }

    /// Finds the route and runs its handler.
    ///
    /// - Throws: ``HTTPError`` 404, 405, 413 or 501 as described above, or what the handler
    ///   throws: ``HTTPError`` as is, anything else wrapped in ``RouteHandlerError`` naming the
    ///   route.
    public func respond(to request: Request) throws -> Response {
        let method = request.method
        guard request.isKnownMethod else {
            if request.body.connection.server.metrics != nil { request.body.connection.routeLabel = "unmatched" }
            throw HTTPError(.notImplemented)
        }
        let path = request.path
        var parameters = RouteParameters()
        var found = staticEntries[path]
        if found == nil {
            for entry in dynamicEntries {
                if entry.pattern.match(path, into: &parameters) {
                    found = entry
                    break
                }
                parameters = RouteParameters()
            }
        }
        let connection = request.body.connection
        let labelsRoute = connection.server.metrics != nil
        guard let entry = found else {
            if labelsRoute { connection.routeLabel = "unmatched" }
            throw HTTPError(.notFound)
        }
        guard let route = entry.route(for: method) else {
            if labelsRoute { connection.routeLabel = "unmatched" }
            throw HTTPError(.methodNotAllowed, headerFields: [.allow: entry.allowed])
        }
        if labelsRoute { connection.routeLabel = entry.pattern.text }
        if let maxBodySize = route.maxBodySize { request.body.limit = maxBodySize }
        if let length = request.body.expectedLength, length > request.body.limit {
            throw HTTPError.closing(.contentTooLarge)
        }
        var routed = request
        routed.parameters = parameters
        do {
            return try route.handler(routed)
        } catch let error as HTTPError {
            throw error
        } catch let error as HTTPParseError {
            throw error
        } catch {
            if error is GreenletExit { throw error }
            throw RouteHandlerError(route: route.name, underlying: error)
        }
    }
}
