/// Something that answers requests: a ``Router``, or a closure wrapped by ``HTTPServer``.
///
/// `respond(to:)` runs in the connection's greenlet and may block (read the body, call other
/// services, sleep): only that connection waits. Throw ``HTTPError`` to answer with a status;
/// any other error is answered with 500 and logged, and the server keeps going.
public protocol HTTPResponder {
    /// Answers `request`.
    /// - Throws: ``HTTPError`` for a chosen status; anything else becomes a 500.
    func respond(to request: Request) throws -> Response
}

/// A closure as an ``HTTPResponder``.
public struct HTTPHandler: HTTPResponder {
    private let handler: (Request) throws -> Response

    /// Wraps `handler`.
    public init(_ handler: @escaping (Request) throws -> Response) {
        self.handler = handler
    }

    public func respond(to request: Request) throws -> Response {
        try handler(request)
    }
}
