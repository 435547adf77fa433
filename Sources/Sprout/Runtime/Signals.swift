import CSproutSystem
import Glibc

/// A registration made by ``onSignal(_:_:)``; call ``cancel()`` to remove it.
public final class SignalHandler {
    let signal: Int32
    let id: UInt64
    let hub: Hub
    private(set) var isActive = true

    init(signal: Int32, id: UInt64, hub: Hub) {
        self.signal = signal
        self.id = id
        self.hub = hub
    }

    /// Removes the handler. The loop no longer stays alive for it. Idempotent.
    public func cancel() {
        guard isActive else { return }
        isActive = false
        hub.removeSignalHandler(self)
    }
}

/// Runs `handler` in a new greenlet of the calling thread's hub every time the process
/// receives `signal` (gevent's `signal_handler`).
///
/// The signal may arrive on any thread: a process-wide handler relays it to every hub that
/// watches it. While a handler is registered, the hub's loop stays alive waiting for it. The
/// signal is unblocked in the calling thread, so a process that inherited a mask blocking it
/// (as children of Swift concurrency threads do) still receives it.
///
/// - Returns: A registration to ``SignalHandler/cancel()``.
/// - Throws: ``SystemError`` if the signal cannot be handled (`SIGKILL`, `SIGSTOP`, out of
///   range) or the relay pipe cannot be created.
@discardableResult
public func onSignal(_ signal: Int32, _ handler: @escaping () throws -> Void) throws -> SignalHandler {
    try Hub.current.addSignalHandler(signal, handler)
}

extension Hub {
    final class SignalState {
        let readFD: Int32
        let writeFD: Int32
        var handlers: [Int32: [(id: UInt64, run: () throws -> Void)]] = [:]
        var nextID: UInt64 = 0

        init() throws {
            var fds: [Int32] = [0, 0]
            guard sprout_pipe_nonblocking(&fds) == 0 else {
                throw SystemError(errno: errno, operation: "pipe2 (signal relay)")
            }
            readFD = fds[0]
            writeFD = fds[1]
            sprout_hub_descriptor_track(readFD)
            sprout_hub_descriptor_track(writeFD)
        }

        deinit {
            for signal in handlers.keys { sprout_signal_unwatch(signal, writeFD) }
            sprout_hub_descriptor_untrack(readFD)
            sprout_hub_descriptor_untrack(writeFD)
            _ = close(readFD)
            _ = close(writeFD)
        }
    }

    func addSignalHandler(_ signal: Int32, _ handler: @escaping () throws -> Void) throws -> SignalHandler {
        let state: SignalState
        if let existing = signalState {
            state = existing
        } else {
            state = try SignalState()
            try poller.registerInternal(fd: state.readFD)
            signalState = state
        }
        let rc = sprout_signal_watch(signal, state.writeFD)
        guard rc == 0 else { throw SystemError(errno: rc, operation: "sigaction(\(signal))") }
        // A process started by a parent that blocks the signal (a Swift concurrency thread
        // blocks nearly all) inherits that mask and would never receive it.
        var unblock = sigset_t()
        sigemptyset(&unblock)
        sigaddset(&unblock, signal)
        pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
        state.nextID += 1
        state.handlers[signal, default: []].append((state.nextID, handler))
        signalWatchers += 1
        return SignalHandler(signal: signal, id: state.nextID, hub: self)
    }

    func removeSignalHandler(_ registration: SignalHandler) {
        guard let state = signalState else { return }
        state.handlers[registration.signal]?.removeAll { $0.id == registration.id }
        if state.handlers[registration.signal]?.isEmpty ?? false {
            state.handlers[registration.signal] = nil
            sprout_signal_unwatch(registration.signal, state.writeFD)
        }
        signalWatchers -= 1
    }

    func dispatchSignals() {
        guard let state = signalState else { return }
        var buffer = [UInt8](repeating: 0, count: 64)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(state.readFD, $0.baseAddress, $0.count) }
            guard count > 0 else { break }
            for byte in buffer[0..<count] {
                for handler in state.handlers[Int32(byte)] ?? [] {
                    let run = handler.run
                    _ = spawn(name: "signal \(byte)", stackSize: nil) { try run() }
                }
            }
        }
    }

    func internalDescriptorReady(_ fd: Int32) {
        if fd == inbox.eventFD {
            inbox.acknowledgeWakeUp()
            drainInbox()
        } else if let state = signalState, fd == state.readFD {
            dispatchSignals()
        }
    }
}
