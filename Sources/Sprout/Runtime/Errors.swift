/// Thrown inside a greenlet at its current switch point when another greenlet kills it.
///
/// A greenlet that ends by throwing `GreenletExit` counts as successful (as in gevent): its
/// failure is not reported, but it has no value, so ``Greenlet/get()`` throws it. Never swallow
/// it: a `catch` around a switch point must rethrow `GreenletExit`.
public struct GreenletExit: Error, CustomStringConvertible {
    /// Creates the error (as `kill()` does).
    public init() {}
    public var description: String { "GreenletExit" }
}

/// Thrown at the switch point that is running when a ``withTimeout(_:_:)`` deadline passes.
///
/// Each `withTimeout` call has its own identity, so nested timeouts fire as themselves: the
/// error that escapes is the timeout that expired, whichever block it was started by.
public struct Timeout: Error, CustomStringConvertible, Equatable {
    /// The duration the expired block was given.
    public let duration: Duration
    let id: UInt64

    public var description: String { "Timeout(\(duration))" }
}

/// Errors of the runtime itself: misuse and waits that can never end.
public struct HubError: Error, CustomStringConvertible, Equatable {
    enum Kind: Equatable {
        case blockingInHub(String)
        case wouldBlockForever(String)
        case wrongThread(String)
        case concurrentWait(String)
    }
    let kind: Kind

    /// A blocking call (a switch point) was made from the hub's own loop, for instance inside a
    /// `link` callback or a `callSoon` callback. The hub cannot park; spawn a greenlet instead.
    public static func blockingInHub(_ what: String) -> HubError { HubError(kind: .blockingInHub(what)) }
    /// The wait can never end: nothing is runnable, no timer is pending, no descriptor is
    /// watched and no other thread is expected to post to the hub (gevent's `LoopExit`).
    public static func wouldBlockForever(_ what: String) -> HubError { HubError(kind: .wouldBlockForever(what)) }
    /// A greenlet or primitive belonging to one hub was used from another thread.
    public static func wrongThread(_ what: String) -> HubError { HubError(kind: .wrongThread(what)) }

    /// Two greenlets waited on the same thing where only one may (gevent's
    /// `ConcurrentObjectUseError`), e.g. two readers of one socket.
    public static func concurrentWait(_ what: String) -> HubError { HubError(kind: .concurrentWait(what)) }
    var isConcurrentWait: Bool {
        if case .concurrentWait = kind { return true }
        return false
    }

    /// True for ``wouldBlockForever(_:)`` errors.
    public var isWouldBlockForever: Bool {
        if case .wouldBlockForever = kind { return true }
        return false
    }

    public var description: String {
        switch kind {
        case .blockingInHub(let what):
            return "HubError: '\(what)' would block inside the hub's loop (a link or callSoon callback);"
                + " the hub cannot park: spawn a greenlet for blocking work"
        case .wouldBlockForever(let what):
            return "HubError: this wait can never end: the greenlet waits on \(what), and nothing is"
                + " runnable, no timer is pending, no descriptor is watched and no thread will post"
                + " to this hub (a deadlock)"
        case .concurrentWait(let what):
            return "HubError: another greenlet is already waiting on \(what); a socket or descriptor"
                + " may have one reader and one writer at a time"
        case .wrongThread(let what):
            return "HubError: \(what) belongs to another thread's hub; greenlets and Sprout's primitives"
                + " are greenlet-safe, not thread-safe"
        }
    }
}
