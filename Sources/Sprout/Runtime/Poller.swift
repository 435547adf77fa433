import CSproutSystem
import Glibc

/// The hub's epoll instance: descriptor registration, readiness waits and the poll itself.
///
/// Edge-triggered (`EPOLLET`), registered once per descriptor. Sprout's IO always tries the
/// syscall first and parks only after `EAGAIN`, and `EAGAIN` guarantees that the next change of
/// readiness produces an edge, so no readiness is lost; in exchange a descriptor needs no
/// `epoll_ctl` per wait (level-triggered would need re-arming or would report a writable
/// socket on every poll while nobody waits to write). The hub's own descriptors (the inbox's
/// eventfd, the signal pipe) are level-triggered: they are drained on every report.
///
/// Belongs to one hub; not thread-safe.
final class Poller {
    private struct Waiters {
        var reader: Unmanaged<AnyGreenlet>?
        var writer: Unmanaged<AnyGreenlet>?
        var registered = false
        var isInternal = false
        /// A read emptied the receive buffer and epoll has reported nothing since, so the next
        /// read would fail with `EAGAIN` (see ``Socket/shortReadsDrain``).
        var drained = false
        /// Epoll reported a hang-up or an error: reads must go on until they see it. Sticky.
        var hungUp = false
        /// SproutPatch's generation of the descriptor when it was registered for a hook's wait.
        var patchGeneration: UInt32 = 0
    }

    let epollFD: Int32
    private var events: UnsafeMutablePointer<epoll_event>
    private var capacity = 256
    @exclusivity(unchecked) private var table: [Waiters] = []
    /// Greenlets parked on descriptor readiness.
    private(set) var waiterCount = 0
    private var closed = false

    init() throws {
        epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epollFD >= 0 else { throw SystemError(errno: errno, operation: "epoll_create1") }
        sprout_hub_descriptor_track(epollFD)
        events = .allocate(capacity: capacity)
    }

    deinit {
        events.deallocate()
        close()
    }

    func close() {
        guard !closed else { return }
        closed = true
        sprout_hub_descriptor_untrack(epollFD)
        _ = Glibc.close(epollFD)
    }

    private func slot(_ fd: Int32) -> Int {
        let index = Int(fd)
        if index >= table.count {
            table.append(contentsOf: repeatElement(Waiters(), count: max(index + 1 - table.count, table.count)))
        }
        return index
    }

    /// Registers one of the hub's own descriptors, level-triggered, for reading.
    func registerInternal(fd: Int32) throws {
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.fd = fd
        guard epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event) == 0 else {
            throw SystemError(errno: errno, operation: "epoll_ctl(ADD) of the hub's descriptor \(fd)")
        }
        table[slot(fd)].isInternal = true
        table[slot(fd)].registered = true
    }

    /// Registers `fd` (edge-triggered, read and write) if it is not registered yet. An
    /// `exclusive` registration (a listener shared with other epoll instances) asks only for
    /// readability, with `EPOLLEXCLUSIVE`: one waiting instance is woken per event, not all.
    func register(fd: Int32, exclusive: Bool = false) throws {
        let index = slot(fd)
        if table[index].registered { return }
        let edgeTriggered = EPOLLIN.rawValue | EPOLLPRI.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue | EPOLLET.rawValue
        var event = epoll_event()
        event.data.fd = fd
        event.events = exclusive ? EPOLLIN.rawValue | EPOLLET.rawValue | EPOLLEXCLUSIVE.rawValue : edgeTriggered
        var rc = epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event)
        if rc != 0 && errno == EINVAL && exclusive {
            // Kernels before 4.5 have no EPOLLEXCLUSIVE: every waiter is woken, as without it.
            event.events = edgeTriggered
            rc = epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event)
        }
        if rc != 0 {
            let error = errno
            guard error == EEXIST else { throw SystemError(errno: error, operation: "epoll_ctl(ADD) of descriptor \(fd)") }
            // A descriptor number reused after a close the poller was not told about: replace
            // the stale registration (one with EPOLLEXCLUSIVE cannot be modified in place).
            guard epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, nil) == 0 || errno == ENOENT,
                  epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event) == 0 else {
                throw SystemError(errno: errno, operation: "epoll_ctl(ADD) of descriptor \(fd), replacing a stale registration")
            }
        }
        table[index].registered = true
    }

    /// For SproutPatch's waits: if `fd` was registered under another generation of the hooks'
    /// table (closed and its number reused meanwhile, perhaps on another thread, where this
    /// poller heard nothing), drops the stale record so that the wait registers it afresh.
    func checkPatchGeneration(fd: Int32, _ generation: UInt32) {
        guard fd >= 0 else { return }
        let index = slot(fd)
        guard !table[index].isInternal, table[index].patchGeneration != generation else { return }
        if table[index].registered && table[index].reader == nil && table[index].writer == nil {
            _ = epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, nil)   // ENOENT if the kernel dropped it already
            table[index].registered = false
        }
        table[index].patchGeneration = generation
    }

    /// Starts `fd`'s read-readiness record afresh (for a new socket with a reused number).
    @inline(__always)
    func resetReadiness(_ fd: Int32) {
        let index = slot(fd)
        table[index].drained = false
        table[index].hungUp = false
    }

    /// Records that a read emptied `fd`'s receive buffer (unless a hang-up was reported: then
    /// the end of stream still has to be read).
    @inline(__always)
    func markDrained(_ fd: Int32) {
        let index = Int(fd)
        if index < table.count && !table[index].hungUp { table[index].drained = true }
    }

    /// True if a read of `fd` would certainly fail with `EAGAIN` now.
    @inline(__always)
    func isDrained(_ fd: Int32) -> Bool {
        let index = Int(fd)
        return index < table.count && table[index].drained
    }

    /// Forgets `fd` before it is closed, waking its waiters with `error`.
    func forget(fd: Int32, waking error: (any Error)?, hub: Hub) {
        let index = Int(fd)
        guard index < table.count, table[index].registered, !table[index].isInternal else { return }
        if let error {
            if let reader = table[index].reader { hub.throwInto(reader.takeUnretainedValue(), error) }
            if let writer = table[index].writer { hub.throwInto(writer.takeUnretainedValue(), error) }
        }
        _ = epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, nil)
        table[index].registered = false
        // The woken waiters clear their own slots, but a new descriptor with this number may
        // be waited on before they run.
        table[index].reader = nil
        table[index].writer = nil
    }

    /// Parks the current greenlet until `fd` is readable and/or writable (whichever comes
    /// first of those asked for), the deadline passes, or an error is thrown into it.
    ///
    /// `transient` descriptors (raw ones that Sprout does not own) are removed from epoll after
    /// the wait: their owner may close them without telling the poller, and a stale
    /// registration would then hide a new descriptor with the same number.
    ///
    /// - Returns: True if the descriptor became ready, false on deadline.
    /// - Throws: ``HubError/concurrentWait(_:)`` if another greenlet already waits on the same
    ///   descriptor in the same direction; errors thrown into the greenlet.
    func wait(fd: Int32, readable: Bool, writable: Bool, deadline: UInt64?, transient: Bool,
              checkFirst: Bool = false, exclusive: Bool = false, hub: Hub) throws -> Bool {
        guard readable || writable else {
            throw SystemError(errno: EINVAL, operation: "wait for neither reading nor writing on descriptor \(fd)")
        }
        guard fd >= 0 else { throw SystemError(errno: EBADF, operation: "wait on descriptor \(fd)") }
        let index = slot(fd)
        if table[index].isInternal { throw SystemError(errno: EBADF, operation: "wait on the hub's own descriptor \(fd)") }
        if readable && table[index].reader != nil { throw HubError.concurrentWait("descriptor \(fd) (reading)") }
        if writable && table[index].writer != nil { throw HubError.concurrentWait("descriptor \(fd) (writing)") }
        let wasRegistered = table[index].registered
        if checkFirst && wasRegistered && isReady(fd: fd, readable: readable, writable: writable) {
            return true
        }
        try register(fd: fd, exclusive: exclusive)
        let me = hub.currentNode!
        if readable { table[index].reader = me }
        if writable { table[index].writer = me }
        waiterCount += 1
        defer {
            waiterCount -= 1
            if table[index].reader?.toOpaque() == me.toOpaque() { table[index].reader = nil }
            if table[index].writer?.toOpaque() == me.toOpaque() { table[index].writer = nil }
            if transient && !wasRegistered && table[index].reader == nil && table[index].writer == nil
                && table[index].registered {
                _ = epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, nil)
                table[index].registered = false
            }
        }
        let what: StaticString = readable && writable ? "a descriptor to become ready"
            : readable ? "a descriptor to become readable" : "a descriptor to become writable"
        return try hub.park(on: what, deadline: deadline)
    }

    /// Parks the current greenlet until one of `fds` may have become ready for its `events`
    /// (a `pollfd` array, as `poll` takes), the deadline passes, or an error is thrown into it.
    /// For SproutPatch's `poll` hook: the descriptors stay registered (edge-triggered) after the
    /// wait, so that a library polling the same descriptors again costs no `epoll_ctl`; a
    /// hooked `close` forgets them. The caller has just seen nothing ready, so every later
    /// change of readiness brings an edge. A descriptor that cannot be registered, or that
    /// another greenlet waits on already, is looked at again after a millisecond instead.
    ///
    /// - Returns: True if woken, false on the deadline (or the millisecond's recheck).
    /// - Throws: Errors thrown into the greenlet.
    func waitAny(_ fds: UnsafePointer<pollfd>, count: Int, deadline: UInt64?, hub: Hub) throws -> Bool {
        let me = hub.currentNode!
        var watchedAll = true
        var claimed = 0
        for index in 0..<count {
            let fd = fds[index].fd
            guard fd >= 0 else { continue }
            let slot = self.slot(fd)
            if table[slot].isInternal { watchedAll = false; continue }
            do { try register(fd: fd) } catch { watchedAll = false; continue }
            let events = Int32(fds[index].events)
            if events & ~POLLOUT != 0 || events == 0 {
                if table[slot].reader == nil { table[slot].reader = me; claimed += 1 }
                else if table[slot].reader!.toOpaque() != me.toOpaque() { watchedAll = false }
            }
            if events & POLLOUT != 0 {
                if table[slot].writer == nil { table[slot].writer = me; claimed += 1 }
                else if table[slot].writer!.toOpaque() != me.toOpaque() { watchedAll = false }
            }
        }
        waiterCount += 1
        defer {
            waiterCount -= 1
            if claimed > 0 {
                for index in 0..<count {
                    let fd = Int(fds[index].fd)
                    guard fd >= 0, fd < table.count else { continue }
                    if table[fd].reader?.toOpaque() == me.toOpaque() { table[fd].reader = nil }
                    if table[fd].writer?.toOpaque() == me.toOpaque() { table[fd].writer = nil }
                }
            }
        }
        var until = deadline
        if !watchedAll {
            let recheck = hub.deadline(after: .milliseconds(1))
            until = min(until ?? recheck, recheck)
        }
        return try hub.park(on: "poll() in a patched C call", deadline: until)
    }

    /// Polls `fd`'s current readiness without waiting (one `poll` syscall).
    private func isReady(fd: Int32, readable: Bool, writable: Bool) -> Bool {
        var entry = pollfd(fd: fd, events: Int16((readable ? POLLIN : 0) | (writable ? POLLOUT : 0)), revents: 0)
        return Glibc.poll(&entry, 1, 0) > 0 && entry.revents != 0
    }

    /// Waits for events for at most `timeoutNanos` (negative: until one arrives) and wakes the
    /// greenlets waiting on them.
    func wait(timeoutNanos: Int64, hub: Hub) {
        let count = sprout_epoll_wait_ns(epollFD, events, Int32(capacity), timeoutNanos)
        guard count > 0 else {
            if count < 0 && errno != EINTR {
                fatalError("Sprout: epoll_wait failed: \(SystemError(errno: errno, operation: "epoll_wait"))")
            }
            return
        }
        for index in 0..<Int(count) {
            let event = events[index]
            let fd = event.data.fd
            let slot = Int(fd)
            guard slot < table.count else { continue }
            if table[slot].isInternal {
                hub.internalDescriptorReady(fd)
                continue
            }
            let flags = event.events
            let failed = flags & (EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0
            if flags & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue) != 0 || failed {
                table[slot].drained = false
                if failed || flags & EPOLLRDHUP.rawValue != 0 { table[slot].hungUp = true }
            }
            if flags & (EPOLLIN.rawValue | EPOLLPRI.rawValue | EPOLLRDHUP.rawValue) != 0 || failed, let reader = table[slot].reader {
                hub.wake(reader.takeUnretainedValue())
            }
            if flags & EPOLLOUT.rawValue != 0 || failed, let writer = table[slot].writer {
                hub.wake(writer.takeUnretainedValue())
            }
        }
        if Int(count) == capacity {
            // A full batch: grow, so that one poll can report more next time.
            events.deallocate()
            capacity *= 2
            events = .allocate(capacity: capacity)
        }
    }
}
