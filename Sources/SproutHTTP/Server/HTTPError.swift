public import HTTPTypes

/// An error a handler throws to answer with a given status instead of 500.
///
/// ```swift
/// guard let id = Int(request.parameters["id"] ?? "") else {
///     throw HTTPError(.badRequest, message: "id must be a number")
/// }
/// ```
/// The server answers with `status`, `message` as a `text/plain` body (the status's reason
/// phrase when nil) and `headerFields`. Errors the server itself raises while reading a body
/// (413 over the limit, 408 on a read timeout) are of this type too, and close the connection.
public struct HTTPError: Error, CustomStringConvertible, Sendable {
    /// The status to answer with.
    public var status: HTTPResponse.Status
    /// The body to send; the reason phrase when nil.
    public var message: String?
    /// Extra header fields for the response (`Allow`, `Retry-After`, …).
    public var headerFields: HTTPFields
    /// True if the connection cannot carry another request after this answer.
    var closesConnection = false

    /// Creates an error answered with `status`.
    public init(_ status: HTTPResponse.Status, message: String? = nil, headerFields: HTTPFields = [:]) {
        self.status = status
        self.message = message
        self.headerFields = headerFields
    }

    public var description: String {
        "HTTP \(status.code) \(status.reasonPhrase)" + (message.map { ": \($0)" } ?? "")
    }

    /// The response the server sends for this error.
    public var response: Response {
        var fields = headerFields
        fields[.contentType] = "text/plain; charset=utf-8"
        return Response(status: status, headerFields: fields, body: .string((message ?? status.reasonPhrase) + "\n"))
    }

    static func closing(_ status: HTTPResponse.Status, message: String? = nil) -> HTTPError {
        var error = HTTPError(status, message: message)
        error.closesConnection = true
        return error
    }
}

/// A handler's error, with the route it came from, so that the server's log line names both.
public struct RouteHandlerError: Error, CustomStringConvertible {
    /// The route pattern, e.g. `GET /feed/:user`.
    public let route: String
    /// What the handler threw.
    public let underlying: any Error

    public var description: String { "\(route): \(underlying)" }
}
