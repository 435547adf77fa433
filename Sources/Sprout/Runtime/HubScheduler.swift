import CSproutContext
import CSproutSystem

// Parking, waking and handing over: how greenlets leave and regain the CPU, and the turn
// budget that keeps a chain of hand-offs from starving IO.

extension Hub {
    /// Parks the running greenlet until woken, until `deadline`, or until an error is thrown
    /// into it.
    ///
    /// - Returns: True if woken, false if the deadline passed.
    /// - Throws: The error thrown into the greenlet (kill, timeout, deadlock); ``HubError`` if
    ///   called from the hub's loop.
    func park(on what: StaticString, deadline: UInt64?) throws -> Bool {
        #if DEBUG
        assertNotInTask(what)
        #endif
        if _slowPath(abandonedByFork) { ForkRecovery.trapUseOfParentsHub(what) }
        return try currentNode!._withUnsafeGuaranteedRef { greenlet in
            if greenlet === hubGreenlet { throw HubError.blockingInHub(what.description) }
            if let error = greenlet.pendingError {
                greenlet.pendingError = nil
                if !greenlet.patchedCall.contains(.waiting) { greenlet.patchedCall = [] }
                throw error
            }
            greenlet.waitToken &+= 1
            greenlet.isParked = true
            greenlet.waitingOn = what
            if let deadline {
                timers.schedule(at: deadline, .wake(greenlet.timerTarget, token: greenlet.waitToken))
            }
            switchAway(from: greenlet)
            if let error = greenlet.resumeError {
                greenlet.resumeError = nil
                if deadline != nil && greenlet.wokenNormally { timers.noteCancelled(isLive: isLive) }
                throw error
            }
            if deadline != nil && greenlet.wokenNormally { timers.noteCancelled(isLive: isLive) }
            return greenlet.wokenNormally
        }
    }

    #if DEBUG
    /// Debug builds: a switch inside an async job would let other greenlets run "inside" that
    /// task (Swift concurrency's per-thread state cannot follow a greenlet).
    func assertNotInTask(_ what: StaticString) {
        let inTask = withUnsafeCurrentTask { $0 != nil }
        precondition(!inTask, "Sprout: '\(what)' would switch greenlets inside a Swift concurrency task; run green code in GreenThread.run")
    }
    #endif

    /// Lets every other ready greenlet run, then continues (`sleep(for: .zero)`).
    func yield() throws {
        let greenlet = current!
        if greenlet === hubGreenlet { throw HubError.blockingInHub("sleep(for: .zero)") }
        if let error = greenlet.pendingError {
            greenlet.pendingError = nil
            greenlet.patchedCall = []
            throw error
        }
        greenlet.waitToken &+= 1
        greenlet.waitingOn = "sleep(for: .zero)"
        yielded.push(.passUnretained(greenlet))
        switchAway(from: greenlet)
        if let error = greenlet.resumeError {
            greenlet.resumeError = nil
            throw error
        }
    }

    /// Makes a parked greenlet ready. `normally` false means its deadline passed.
    func wake(_ greenlet: AnyGreenlet, normally: Bool = true) {
        guard greenlet.isParked else { return }
        precondition(greenlet.hub === self && sprout_hub_get() == Unmanaged.passUnretained(self).toOpaque(),
                     "Sprout: greenlet '\(greenlet.name)' was woken from another thread; greenlets and Sprout's primitives are greenlet-safe, not thread-safe")
        greenlet.isParked = false
        greenlet.wokenNormally = normally
        ready.push(.passUnretained(greenlet))
    }

    /// Delivers `error` to `greenlet` at its current switch point (kill, timeout).
    func throwInto(_ greenlet: AnyGreenlet, _ error: any Error) {
        switch greenlet.state {
        case .dead:
            return
        case .scheduled:
            // Never started: it never will. A queued one leaves the ready queue when popped;
            // one waiting for its start timer is reclaimed now.
            greenlet.cancelBeforeStart(error)
            markDead(greenlet)
            if let timer = greenlet.extrasIfAny?.startTimer {
                greenlet.extras.startTimer = nil
                cancelTimer(timer)
                deadList.append(.passUnretained(greenlet))
            }
        case .started:
            if greenlet === current {
                if greenlet.pendingError == nil { greenlet.pendingError = error }
            } else if greenlet.isParked {
                greenlet.resumeError = error
                wake(greenlet)
            } else if greenlet.resumeError == nil {
                greenlet.resumeError = error   // ready already: thrown when it resumes
            } else if greenlet.pendingError == nil {
                greenlet.pendingError = error
            }
        }
    }

    /// Switches from `greenlet` (which has parked or queued itself) to the next ready greenlet
    /// of this turn, or to the hub.
    @inline(__always)
    func switchAway(from greenlet: AnyGreenlet) {
        let next = nextToRun()
        currentNode = next
        sprout_context_switch(greenlet.context, next._withUnsafeGuaranteedRef { $0.context })
    }

    @inline(__always)
    func nextToRun() -> Unmanaged<AnyGreenlet> {
        if inTurn {
            handoffs &+= 1
            if handoffs & 3 == 0 && turnBudgetSpent() {
                inTurn = false   // budget spent: let the hub poll and fire timers
            } else if let next = popRunnable() {
                return next
            }
        }
        return .passUnretained(hubGreenlet)
    }

    /// Whether this turn has run its greenlets for longer than ``switchInterval``. The precise
    /// clock costs about as much as a switch, so between its readings (every 64 hand-offs) the
    /// kernel's tick clock is read instead (a few nanoseconds; it lags the precise one by at
    /// most a tick, 1–4 ms): greenlets that each run long between switches end the turn within
    /// a tick of the budget, not 64 runs later.
    @inline(never)
    func turnBudgetSpent() -> Bool {
        let end = turnStart &+ switchIntervalNanos
        if handoffs & 63 == 0 { return sprout_now_ns() > end }
        return sprout_coarse_now_ns() > end
    }

    /// Pops the next ready greenlet, skipping (and reclaiming) ones killed before they started.
    func popRunnable() -> Unmanaged<AnyGreenlet>? {
        while let node = ready.pop() {
            if node._withUnsafeGuaranteedRef({ $0.state != .dead }) { return node }
            deadList.append(node)
        }
        return nil
    }
}
