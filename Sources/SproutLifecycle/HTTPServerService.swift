public import Logging
public import ServiceLifecycle
public import SproutHTTP
import Sprout

/// A Sprout HTTP server as a swift-service-lifecycle `Service`: it runs beside async services
/// (postgres-nio's `PostgresClient`, an OpenTelemetry exporter) in one `ServiceGroup`, and the
/// group's graceful shutdown (`SIGTERM`) drains it like `sprout serve` does.
///
/// ```swift
/// let http = HTTPServerService(configuration: .init(port: 8080)) {
///     let router = Router()
///     router.get("/") { _ in .text("hello") }
///     return router
/// }
/// let group = ServiceGroup(services: [postgres, http], gracefulShutdownSignals: [.sigterm],
///                          logger: logger)
/// try await group.run()
/// ```
///
/// ``run()`` serves on an OS thread with a hub of its own, so handlers are plain blocking
/// code; they reach async libraries through SproutAsync's `awaitAsync`. On graceful shutdown
/// the server stops accepting, closes idle connections, lets in-flight requests finish (with
/// `Connection: close`) for up to ``drainTimeout``, kills what is left, and ``run()`` returns.
/// Cancelling the task that runs it does the same with no grace period.
///
/// When a swift-metrics backend is bootstrapped, the server records its metrics and the hub's
/// runtime figures are sampled (`RuntimeMetrics`) while it runs.
public final class HTTPServerService: Service, Sendable {
    /// What the server does; the port may be 0 (read ``listeningPort()``).
    public let configuration: HTTPServer.Configuration
    /// The longest a graceful shutdown waits for in-flight requests.
    public let drainTimeout: Duration
    private let logger: Logger
    private let makeResponder: @Sendable () -> any HTTPResponder
    private let listening = ThreadLock<ListeningState>(ListeningState())

    private struct ListeningState {
        var port: Int?
        var failure: (any Error)?
        var waiters: [CheckedContinuation<Int, any Error>] = []
    }

    /// Creates the service; nothing is bound until ``run()``.
    ///
    /// - Parameters:
    ///   - configuration: The server's configuration.
    ///   - drainTimeout: The longest a graceful shutdown waits for in-flight requests.
    ///   - logger: The server's logger.
    ///   - makeResponder: Builds the responder (a ``Router``) on the server's own thread, where
    ///     it is used; it is called once per ``run()``.
    public init(configuration: HTTPServer.Configuration = .init(), drainTimeout: Duration = .seconds(10),
                logger: Logger = Logger(label: "sprout.http"),
                responder makeResponder: @escaping @Sendable () -> any HTTPResponder) {
        self.configuration = configuration
        self.drainTimeout = drainTimeout
        self.logger = logger
        self.makeResponder = makeResponder
    }

    /// Serves until the group shuts down gracefully or the task is cancelled.
    ///
    /// - Throws: What ``HTTPServer/start()`` throws (`EADDRINUSE`, a TLS certificate that does
    ///   not load); `SystemError` if the server's thread cannot be started.
    public func run() async throws {
        let control = StopControl()
        let configuration = configuration
        let logger = logger
        let makeResponder = makeResponder
        do {
            try await withTaskCancellationHandler {
                try await withGracefulShutdownHandler {
                    try await GreenThread.run { [self] in
                        let server = HTTPServer(configuration: configuration, logger: logger, responder: makeResponder())
                        try server.start()
                        let sampler = RuntimeMetrics.startSampling(dimensions: configuration.metricsDimensions)
                        defer { sampler?.kill() }
                        didStartListening(port: server.port)
                        control.started(ServerReference(server), inbox: Hub.current.inboxHandle)
                        // The server and its greenlets must end with this hub, not wherever
                        // the control's last reference goes.
                        defer { control.finished() }
                        try server.serveForever()
                    }
                } onGracefulShutdown: { [drainTimeout] in
                    control.requestStop(timeout: drainTimeout)
                }
            } onCancel: {
                control.requestStop(timeout: .zero)
            }
        } catch {
            didFailToListen(error)
            throw error
        }
        didFailToListen(CancellationError())  // wakes waiters of a run that ended before listening
    }

    /// Waits until ``run()`` has bound its listener and returns the port (useful with port 0).
    ///
    /// - Throws: What ``run()`` threw if it ended before listening.
    public func listeningPort() async throws -> Int {
        try await withCheckedThrowingContinuation { continuation in
            let outcome: Result<Int, any Error>? = listening.withLock { state in
                if let port = state.port { return .success(port) }
                if let failure = state.failure { return .failure(failure) }
                state.waiters.append(continuation)
                return nil
            }
            if let outcome { continuation.resume(with: outcome) }
        }
    }

    private func didStartListening(port: Int) {
        let waiters = listening.withLock { state in
            state.port = port
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: port) }
    }

    private func didFailToListen(_ error: any Error) {
        let waiters = listening.withLock { state -> [CheckedContinuation<Int, any Error>] in
            guard state.port == nil else { return [] }
            state.failure = error
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(throwing: error) }
    }
}

/// The server, carried to its own hub's inbox and used only there.
private final class ServerReference: @unchecked Sendable {
    let server: HTTPServer
    init(_ server: HTTPServer) { self.server = server }
}

/// Hands a stop request from the async side (any thread) to the server's hub, whether it comes
/// before the server has started or after.
private final class StopControl: Sendable {
    private struct State {
        var server: ServerReference?
        var inbox: HubInbox?
        var requested: Duration?
    }

    private let state = ThreadLock<State>(State())

    /// Called on the server's hub once it serves; stops at once if a stop came first.
    func started(_ server: ServerReference, inbox: HubInbox) {
        let early = state.withLock { state -> Duration? in
            state.server = server
            state.inbox = inbox
            return state.requested
        }
        if let early { spawn(name: "HTTPServerService stop") { server.server.stop(timeout: early) } }
    }

    /// Called on the server's hub as it ends: later stop requests have nothing to stop.
    func finished() {
        state.withLock { state in
            state.server = nil
            state.inbox = nil
            if state.requested == nil { state.requested = .zero }
        }
    }

    /// Asks the server to stop, draining for up to `timeout`. Only the first request counts.
    func requestStop(timeout: Duration) {
        let target = state.withLock { state -> (ServerReference, HubInbox)? in
            guard state.requested == nil else { return nil }
            state.requested = timeout
            guard let server = state.server, let inbox = state.inbox else { return nil }
            return (server, inbox)
        }
        guard let (server, inbox) = target else { return }
        // The stop waits for handlers, so it runs in a greenlet rather than in the hub's loop.
        inbox.post { spawn(name: "HTTPServerService stop") { server.server.stop(timeout: timeout) } }
    }
}
