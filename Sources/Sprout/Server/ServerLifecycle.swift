/// The parts of a server's life that ``StreamServer`` and ``DatagramServer`` share.
enum ServerLifecycle {
    /// Parks until `stopped` is set. If the caller is interrupted instead (killed, timed out),
    /// stops the server with a one-second grace period and rethrows.
    static func serve(until stopped: Event, stop: (Duration) -> Void) throws {
        do {
            try stopped.wait()
        } catch {
            stop(.seconds(1))
            throw error
        }
    }

    /// Lets `handlers` finish for up to `timeout`, then kills the rest. If the caller is
    /// interrupted while waiting, the rest are killed at once and the interruption is delivered
    /// at the caller's next switch point.
    ///
    /// A handler that stops its own server is left out: it cannot wait for itself.
    /// Called from a hub callback (which must not block), it kills them without waiting.
    static func drain(_ handlers: Group, timeout: Duration) {
        let hub = Hub.current
        let me = hub.current!
        let others = handlers.greenlets.filter { $0 !== me }
        guard !others.isEmpty else { return }
        if me === hub.hubGreenlet {
            killAll(others, block: false)
            return
        }
        do {
            try joinAll(others, timeout: timeout)
        } catch {
            if me.pendingError == nil { me.pendingError = error }
        }
        // A handler that swallows GreenletExit must not hold the stop for ever.
        if !killAll(others, timeout: killGrace) {
            writeToStandardError("sprout: a server handler did not end within \(killGrace) of being killed (it caught GreenletExit); stopping without it\n")
        }
    }

    /// How long killed handlers get to end.
    static let killGrace: Duration = .seconds(1)
}
