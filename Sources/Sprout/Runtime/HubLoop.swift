import CSproutContext
import CSproutSystem

// The hub's own greenlet: each loop turn runs callbacks, then ready greenlets, then polls
// for IO (spinning briefly when another thread's reply is due) and fires due timers; with
// nothing left that could ever wake a parked greenlet, it reports the deadlock.

extension Hub {
    func runLoop() {
        while true {
            loopTurns &+= 1
            beacon.turns.store(loopTurns, ordering: .relaxed)
            beacon.hasGreenlets.store(liveCount > 0, ordering: .relaxed)
            reclaimDead()
            runCallbacks()
            runReadyTurn()
            reclaimDead()
            poll()
        }
    }

    /// Runs the greenlets that are ready: those woken earlier, then those that yielded in the
    /// previous turn. Greenlets woken during the turn run in it too; ones that yield wait for
    /// the next. The turn ends when nothing is ready or its time budget is spent.
    func runReadyTurn() {
        while let node = yielded.pop() { ready.push(node) }
        guard !ready.isEmpty else { return }
        turnStart = sprout_now_ns()
        handoffs = 0
        guard let next = popRunnable() else { return }
        inTurn = true
        currentNode = next
        sprout_context_switch(hubGreenlet.context, next._withUnsafeGuaranteedRef { $0.context })
        inTurn = false
    }

    func runCallbacks() {
        var budget = callbacks.count
        while budget > 0, let callback = callbacks.popFirst() {
            budget -= 1
            callback()
        }
    }

    func poll() {
        if inbox.hasWork { drainInbox() }
        let timeout: Int64
        if !ready.isEmpty || !yielded.isEmpty || !callbacks.isEmpty {
            // Work is pending: poll without blocking, and not on every turn: a turn of a few
            // hand-offs is far cheaper than the syscall.
            let now = sprout_now_ns()
            if now &- lastPoll < busyPollInterval {
                self.now = now
                fireTimers()
                return
            }
            timeout = 0
        } else if let deadline = nextLiveDeadline() {
            let now = sprout_now_ns()
            timeout = deadline > now ? Int64(clamping: deadline - now) : 0
        } else if poller.waiterCount > 0 || expectedPosts > 0 || signalWatchers > 0 {
            timeout = -1
        } else {
            reportDeadlock()
            return
        }
        // Work from another thread arrived instead: run it; the busy path above still polls
        // IO at least every `busyPollInterval`.
        if timeout != 0 && expectedPosts > 0 && sprout_now_ns() &- lastPostExpected < spinWindow && spinForPosts() {
            drainInbox()
            return
        }
        if timeout != 0 && !inbox.prepareToSleep() {
            drainInbox()
            return
        }
        if timeout != 0 { beacon.sleeping.store(true, ordering: .relaxed) }
        poller.wait(timeoutNanos: timeout, hub: self)
        if timeout != 0 {
            beacon.sleeping.store(false, ordering: .relaxed)
            inbox.wokeUp()
        }
        now = sprout_now_ns()
        lastPoll = now
        fireTimers()
    }

    /// A reply from another thread is expected (a thread-pool job): wait for it a little while
    /// awake, since sleeping in epoll_wait and being woken costs the two threads several
    /// microseconds each. Returns true if work arrived.
    func spinForPosts() -> Bool {
        spinEpisodes += 1
        let limit = sprout_now_ns() &+ spinBeforeSleep
        var rounds = 0
        while true {
            if inbox.hasWork { return true }
            rounds &+= 1
            if rounds & 63 == 0 && sprout_now_ns() > limit { return false }
            sprout_cpu_relax()
        }
    }

    /// Nothing can ever wake a parked greenlet: tell the main greenlet, as gevent's LoopExit.
    func reportDeadlock() {
        if mainGreenlet.isParked {
            throwInto(mainGreenlet, HubError.wouldBlockForever(mainGreenlet.waitingOn.description))
        } else if let stuck = liveGreenlets.first(where: { $0.isParked }) {
            // The main greenlet is not waiting (only possible while shutting down).
            throwInto(stuck, HubError.wouldBlockForever(stuck.waitingOn.description))
        } else {
            fatalError("Sprout: the hub of this thread has nothing to run and nobody is waiting")
        }
    }

    /// The earliest deadline of a timer that can still fire; stale heads are dropped, so a
    /// long timeout that ended early does not postpone deadlock detection.
    func nextLiveDeadline() -> UInt64? {
        while let head = timers.first, !isLive(head.action) {
            _ = timers.popFirst()
            timers.noteStaleRemoved()
        }
        return timers.nextDeadline
    }

    func fireTimers() {
        while let entry = timers.popExpired(now: now) {
            switch entry.action {
            case .wake(let target, let token):
                if let greenlet = target.greenlet, greenlet.isParked && greenlet.waitToken == token {
                    wake(greenlet, normally: false)
                } else {
                    timers.noteStaleRemoved()
                }
            case .timeout(let target, let id, let duration):
                if let greenlet = target.greenlet, let extras = greenlet.extrasIfAny,
                   let index = extras.activeTimeouts.lastIndex(of: id) {
                    extras.activeTimeouts.remove(at: index)
                    throwInto(greenlet, Timeout(duration: duration, id: id))
                } else {
                    timers.noteStaleRemoved()
                }
            case .callback(let id):
                if let callback = timerCallbacks.removeValue(forKey: id) {
                    callback()
                } else {
                    timers.noteStaleRemoved()
                }
            }
        }
    }

    func isLive(_ action: TimerAction) -> Bool {
        switch action {
        case .wake(let target, let token):
            guard let greenlet = target.greenlet else { return false }
            return greenlet.isParked && greenlet.waitToken == token
        case .timeout(let target, let id, _):
            return target.greenlet?.extrasIfAny?.activeTimeouts.contains(id) ?? false
        case .callback(let id): return timerCallbacks[id] != nil
        }
    }
}
