import CSproutContext
import CSproutSystem

// The hub's greenlets: giving a new one its stack and place in the registry, running its
// body, recording its end, and reclaiming its stack once nothing runs on it.

extension Hub {
    /// Gives a new greenlet a stack, an id and a place in the registry, and queues it unless
    /// `queue` is false (its start timer queues it later). Without a stack it ends at once with
    /// the error.
    @usableFromInline
    func start(_ greenlet: AnyGreenlet, name: String?, stackSize: Int?, queue: Bool) {
        reclaimDead()
        let size = stackSize.map(StackPool.normalizedSize) ?? StackPool.defaultStackSize
        let id = nextGreenletID()
        let stack: Stack
        do {
            stack = try stacks.acquire(size: size)
        } catch {
            let context = UnsafeMutablePointer<sprout_context_t>.allocate(capacity: 1)
            sprout_context_init_main(context)
            greenlet.context = context
            greenlet.ownsContextAllocation = true
            greenlet.assignIdentity(id: id, name: name)
            greenlet.cancelBeforeStart(error)
            markDead(greenlet)   // reports the failure and fires links, as for any greenlet
            return
        }
        let context = Hub.contextSlot(of: stack)
        greenlet.context = context
        greenlet.stack = stack
        greenlet.assignIdentity(id: id, name: name)
        sprout_context_init(context, stack.low, UnsafeMutableRawPointer(context), stack.guardLow, { arg in
            if sprout_context_sanitized != 0 { sprout_context_entered() }
            Hub.runGreenlet(arg!)
        }, Unmanaged.passUnretained(greenlet).toOpaque())
        register(greenlet)
        if queue { ready.push(.passUnretained(greenlet)) }
    }

    func register(_ greenlet: AnyGreenlet) {
        let node = Unmanaged.passRetained(greenlet)
        greenlet.registryNext = registryHead
        greenlet.registryPrev = nil
        registryHead?.takeUnretainedValue().registryPrev = node
        registryHead = node
        liveCount += 1
    }

    func unregister(_ node: Unmanaged<AnyGreenlet>) {
        let greenlet = node.takeUnretainedValue()
        let next = greenlet.registryNext
        let prev = greenlet.registryPrev
        if let prev { prev.takeUnretainedValue().registryNext = next } else { registryHead = next }
        if let next { next.takeUnretainedValue().registryPrev = prev }
        greenlet.registryNext = nil
        greenlet.registryPrev = nil
        liveCount -= 1
        node.release()
    }

    /// Every greenlet of this hub that has not been reclaimed yet (for diagnostics and tests).
    var liveGreenlets: [AnyGreenlet] {
        var result: [AnyGreenlet] = []
        var node = registryHead
        while let current = node {
            let greenlet = current.takeUnretainedValue()
            result.append(greenlet)
            node = greenlet.registryNext
        }
        return result
    }

    /// Gives the stacks of finished greenlets back to the pool. Never called on one of them.
    func reclaimDead() {
        while let node = deadList.popLast() {
            let greenlet = node.takeUnretainedValue()
            if let stack = greenlet.stack {
                greenlet.stack = nil
                if sprout_context_sanitized != 0 || greenlet.context.pointee.last_throw != nil {
                    sprout_context_retire(greenlet.context)
                }
                stacks.release(stack)
            }
            unregister(node)
        }
    }

    /// The body of every spawned greenlet's first frame. Everything Swift holds is released
    /// before the last switch, which goes straight to C: the frame is never resumed.
    static func runGreenlet(_ arg: UnsafeMutableRawPointer) {
        var from: UnsafeMutablePointer<sprout_context_t>?
        var to: UnsafeMutablePointer<sprout_context_t>?
        runAndFinish(arg, from: &from, to: &to)
        sprout_context_switch_final(from!, to!)
    }

    @inline(never)
    static func runAndFinish(_ arg: UnsafeMutableRawPointer,
                                     from: inout UnsafeMutablePointer<sprout_context_t>?,
                                     to: inout UnsafeMutablePointer<sprout_context_t>?) {
        Unmanaged<AnyGreenlet>.fromOpaque(arg)._withUnsafeGuaranteedRef { greenlet in
            let hub = greenlet.hub
            greenlet.state = .started
            greenlet.runBody()
            hub.finish(greenlet)
            from = greenlet.context
            let next = hub.nextToRun()
            hub.currentNode = next
            to = next._withUnsafeGuaranteedRef { $0.context }
        }
    }

    /// Marks `greenlet` finished: wakes joiners, schedules links, reports an unobserved failure.
    func finish(_ greenlet: AnyGreenlet) {
        reclaimDead()
        markDead(greenlet)
        deadList.append(.passUnretained(greenlet))
    }

    func markDead(_ greenlet: AnyGreenlet) {
        greenlet.state = .dead
        if let extras = greenlet.extrasIfAny {
            extras.activeTimeouts.removeAll()
            // Its timer entries are all stale now: they must not keep it alive until they surface.
            if let target = extras.timerTarget {
                target.greenlet = nil
                extras.timerTarget = nil
            }
        }
        if let error = greenlet.storedError, !(error is GreenletExit), !greenlet.failureObserved,
           !greenlet.hasJoiners {
            reportFailure(of: greenlet, error)
        }
        greenlet.wakeJoiners()
        if greenlet.hasLinks {
            callSoon { greenlet.fireLinks() }
        }
    }

    /// Prints the failure of a greenlet nobody joins or links, with where the error was last
    /// thrown on its stack (Swift errors carry no backtrace; the throw hook keeps one).
    func reportFailure(of greenlet: AnyGreenlet, _ error: any Error) {
        var message = "sprout: greenlet '\(greenlet.name)' failed: \(error)\n"
        if let thrown = greenlet.context.pointee.last_throw, thrown.pointee.count > 0 {
            message += "  last thrown at:\n" + GreenletBacktrace(RawBacktrace(thrown.pointee)).description + "\n"
        }
        writeToStandardError(message)
    }
}
