import CSproutContext
import CSproutSystem
import DequeModule
import Glibc
import Synchronization

/// The event loop of one OS thread: it runs that thread's greenlets, timers, callbacks and
/// IO readiness, in a greenlet of its own.
///
/// There is one hub per thread, created on first use (``Hub/current``). The thread's own code
/// runs in its *main greenlet*: when it makes a blocking call, it parks and the hub runs
/// everything else until the call can return. Greenlets never move between threads; other
/// threads reach a hub only through its thread-safe inbox.
///
/// Each loop turn: run `callSoon` callbacks, then the greenlets that were ready when the turn
/// began (FIFO, within a time budget of ``switchInterval``, so a storm of `sleep(for: .zero)`
/// cannot starve IO; a greenlet that yields goes to the next turn), then poll for IO and fire
/// due timers. A parking greenlet hands over directly to the next ready one in the same turn,
/// without passing through the hub.
public final class Hub {
    /// The hub of the calling thread, created on first use.
    ///
    /// - Precondition: Not called from a Swift concurrency task or a Dispatch queue: their
    ///   threads are shared, and a greenlet must never leave its thread. Use ``GreenThread``.
    public static var current: Hub {
        if let raw = sprout_hub_get() {
            return Unmanaged<Hub>.fromOpaque(raw).takeUnretainedValue()
        }
        return Hub.createForCurrentThread()
    }

    /// The calling thread's hub, created if needed, unless the caller runs in a Swift
    /// concurrency task (whose thread must not get a hub).
    static var currentUnlessInTask: Hub? {
        if let hub = existing { return hub }
        let inTask = withUnsafeCurrentTask { $0 != nil }
        return inTask ? nil : current
    }

    /// The calling thread's hub if it has one.
    static var existing: Hub? {
        sprout_hub_get().map { Unmanaged<Hub>.fromOpaque($0).takeUnretainedValue() }
    }

    private static let hubCount = Atomic<UInt64>(0)
    /// Greenlet ids are `idBase + n`: small numbers on the first hub, and unique across hubs
    /// without an atomic operation per spawn.
    private let idBase: UInt64
    @exclusivity(unchecked) private var lastLocalID: UInt64 = 0

    private func nextGreenletID() -> UInt64 {
        lastLocalID &+= 1
        return idBase &+ lastLocalID
    }

    let thread: pthread_t
    /// The machine state of the thread's own stack while another greenlet runs.
    private let mainContext: UnsafeMutablePointer<sprout_context_t>
    /// The thread's own code, on the thread's own stack.
    @exclusivity(unchecked) private(set) var mainGreenlet: AnyGreenlet!
    /// The greenlet that runs the loop.
    @exclusivity(unchecked) private(set) var hubGreenlet: AnyGreenlet!
    /// The running greenlet (kept alive by the registry or by the hub itself), unretained so
    /// that the switch path does no reference counting.
    @exclusivity(unchecked) var currentNode: Unmanaged<AnyGreenlet>?
    /// The running greenlet.
    var current: AnyGreenlet! {
        get { currentNode?.takeUnretainedValue() }
        set { currentNode = newValue.map { Unmanaged.passUnretained($0) } }
    }

    @exclusivity(unchecked) var ready = ReadyQueue()
    var timers = TimerQueue()
    @exclusivity(unchecked) private var callbacks = Deque<() -> Void>()
    private var timerCallbacks: [UInt64: () -> Void] = [:]
    let stacks = StackPool()
    let poller: Poller
    let inbox: HubInbox
    /// What other threads may read of this hub (the monitor, run-info dumps).
    let beacon: HubBeacon

    /// Greenlets that finished and whose stacks can be reused once nobody runs on them.
    @exclusivity(unchecked) private var deadList: [Unmanaged<AnyGreenlet>] = []
    @exclusivity(unchecked) private var registryHead: Unmanaged<AnyGreenlet>?
    /// Number of spawned greenlets not yet reclaimed.
    @exclusivity(unchecked) private(set) var liveCount = 0

    /// Greenlets that yielded (`sleep(for: .zero)`) during this turn; they run next turn.
    @exclusivity(unchecked) var yielded = ReadyQueue()
    /// True while a turn's greenlets are handing over to each other (cleared by the budget).
    @exclusivity(unchecked) private var inTurn = false
    @exclusivity(unchecked) private var turnStart: UInt64 = 0
    @exclusivity(unchecked) private var handoffs = 0
    /// Loop turns begun: the heartbeat the blocked-hub monitor watches.
    @exclusivity(unchecked) private(set) var loopTurns: UInt64 = 0
    @exclusivity(unchecked) private var lastPoll: UInt64 = 0
    /// While work is pending, the loop polls for IO at least this often (nanoseconds).
    private let busyPollInterval: UInt64 = 50_000
    /// How long an idle hub that expects a post from another thread spins before sleeping.
    private let spinBeforeSleep: UInt64 = 50_000
    /// Cached monotonic time of the current loop turn, in nanoseconds.
    @exclusivity(unchecked) private(set) var now: UInt64
    private var nextTimerID: UInt64 = 0
    /// Number of replies other threads owe this hub (thread-pool jobs, green threads); while
    /// non-zero, an otherwise idle loop waits for them instead of reporting a deadlock.
    var expectedPosts = 0 {
        didSet { if expectedPosts > oldValue { lastPostExpected = sprout_now_ns() } }
    }
    /// When a reply from another thread was last asked for: the hub spins for replies only
    /// shortly after (a long job, or a nested green thread, is slept through in epoll_wait).
    private var lastPostExpected: UInt64 = 0
    /// How long after asking for a reply an idle hub still spins for it.
    private let spinWindow: UInt64 = 200_000
    /// Idle turns that spun for a reply (for tests).
    private(set) var spinEpisodes = 0
    /// Entries in the timer heap, stale ones included (for tests).
    var timerEntryCount: Int { timers.count }
    /// Registered signal handlers; while non-zero the loop waits for signals.
    var signalWatchers = 0
    var signalState: SignalState?

    /// How long one loop turn may run ready greenlets before the hub polls for IO.
    public var switchInterval: Duration = .milliseconds(5) {
        didSet { switchIntervalNanos = switchInterval.nanoseconds }
    }
    private var switchIntervalNanos: UInt64 = 5_000_000

    private init() throws {
        thread = pthread_self()
        idBase = (Hub.hubCount.add(1, ordering: .relaxed).newValue - 1) << 32
        mainContext = UnsafeMutablePointer<sprout_context_t>.allocate(capacity: 1)
        sprout_context_init_main(mainContext)
        now = sprout_now_ns()
        poller = try Poller()
        inbox = try HubInbox()
        beacon = HubBeacon(number: HubDirectory.nextNumber(), thread: thread, inbox: inbox)
        try poller.registerInternal(fd: inbox.eventFD)
        mainGreenlet = AnyGreenlet(hub: self, id: nextGreenletID(),
                                   name: "main", context: mainContext)
        mainGreenlet.state = .started
        current = mainGreenlet
        sprout_context_set_current(mainContext)
        hubGreenlet = try makeHubGreenlet()
        HubDirectory.register(beacon)
    }

    deinit {
        ready.deallocate()
        yielded.deallocate()
        mainContext.deallocate()
    }

    private static func createForCurrentThread() -> Hub {
        let inTask = withUnsafeCurrentTask { $0 != nil }
        precondition(!inTask, """
            Sprout: a hub cannot run on a Swift concurrency thread (greenlets would be stranded \
            when the task moves); wrap green code in GreenThread.run { … }
            """)
        _ = sprout_exclusivity_hooks_available()
        sprout_overflow_handler_install_for_thread()
        sprout_sampler_accept_on_this_thread(BlockedHubMonitor.samplingSignal)
        // A thread that got its hub in passing (ThreadPool.run or a primitive on a thread of
        // its own) and exits without ending it: end it then, or its epoll and eventfd
        // descriptors, stack slab and signal stack would leak.
        sprout_hub_set_exit_callback { raw in
            Unmanaged<Hub>.fromOpaque(raw!).takeUnretainedValue().shutdown()
        }
        do {
            let hub = try Hub()
            sprout_hub_set(Unmanaged.passRetained(hub).toOpaque())
            return hub
        } catch {
            fatalError("Sprout: cannot create the hub for this thread: \(error)")
        }
    }

    private func makeHubGreenlet() throws -> AnyGreenlet {
        let stack = try stacks.acquire(size: StackPool.defaultStackSize)
        let context = Hub.contextSlot(of: stack)
        let greenlet = AnyGreenlet(hub: self, id: nextGreenletID(),
                                   name: "hub", context: context)
        greenlet.stack = stack
        greenlet.state = .started
        sprout_context_init(context, stack.low, UnsafeMutableRawPointer(context), stack.guardLow, { arg in
            // No strong reference may live in this frame: it is abandoned when the hub ends.
            sprout_context_entered()
            Unmanaged<Hub>.fromOpaque(arg!)._withUnsafeGuaranteedRef { $0.runLoop() }
        }, Unmanaged.passUnretained(self).toOpaque())
        return greenlet
    }

    /// The context of a spawned greenlet lives at the top of its own stack: no allocation.
    static func contextSlot(of stack: Stack) -> UnsafeMutablePointer<sprout_context_t> {
        let slot = (stack.high - 128).bindMemory(to: sprout_context_t.self, capacity: 1)
        return slot
    }

    /// Ends the hub of a thread that is about to exit: kills the greenlets still alive (their
    /// `defer` blocks run), then frees the stacks. Called from the thread's main greenlet.
    func shutdown() {
        precondition(current === mainGreenlet, "Sprout: a hub can only be shut down from its main greenlet")
        reclaimDead()
        for greenlet in liveGreenlets where greenlet.state != .dead {
            greenlet.kill(block: true)
            mainGreenlet.pendingError = nil
        }
        // Greenlets killed before they started leave the ready queue on the loop's next turn.
        var rounds = 0
        while liveGreenlets.contains(where: { $0.state == .dead }) && rounds < 3 {
            try? yield()
            reclaimDead()
            rounds += 1
        }
        mainGreenlet.pendingError = nil
        if liveCount > 0 {
            // Their frames still hold references: freeing the stacks would corrupt memory.
            writeToStandardError("sprout: warning: \(liveCount) greenlet(s) did not end when killed at thread"
                                 + " exit; their stacks are leaked\n")
            _ = Unmanaged.passRetained(stacks)
        }
        HubDirectory.unregister(beacon)
        inbox.shut()
        signalState = nil
        // Timer entries, callbacks and queued work hold greenlets, which hold the hub: drop
        // them, or the hub (its descriptors and stack slabs) would never be freed.
        timers = TimerQueue()
        timerCallbacks = [:]
        callbacks.removeAll()
        while ready.pop() != nil {}
        while yielded.pop() != nil {}
        poller.close()
        sprout_context_set_current(nil)
        sprout_overflow_handler_release_for_thread()
        sprout_hub_set(nil)
        // The main and hub greenlets point back at the hub: break the cycle.
        current = nil
        mainGreenlet = nil
        hubGreenlet = nil
        Unmanaged.passUnretained(self).release()
    }

    // MARK: - Spawning and finishing

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
            sprout_context_entered()
            Hub.runGreenlet(arg!)
        }, Unmanaged.passUnretained(greenlet).toOpaque())
        register(greenlet)
        if queue { ready.push(.passUnretained(greenlet)) }
    }

    private func register(_ greenlet: AnyGreenlet) {
        let node = Unmanaged.passRetained(greenlet)
        greenlet.registryNext = registryHead
        greenlet.registryPrev = nil
        registryHead?.takeUnretainedValue().registryPrev = node
        registryHead = node
        liveCount += 1
    }

    private func unregister(_ node: Unmanaged<AnyGreenlet>) {
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
                sprout_context_retire(greenlet.context)
                stacks.release(stack)
            }
            unregister(node)
        }
    }

    /// The body of every spawned greenlet's first frame. Everything Swift holds is released
    /// before the last switch, which goes straight to C: the frame is never resumed.
    private static func runGreenlet(_ arg: UnsafeMutableRawPointer) {
        var from: UnsafeMutablePointer<sprout_context_t>?
        var to: UnsafeMutablePointer<sprout_context_t>?
        runAndFinish(arg, from: &from, to: &to)
        sprout_context_switch_final(from!, to!)
    }

    @inline(never)
    private static func runAndFinish(_ arg: UnsafeMutableRawPointer,
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
    private func finish(_ greenlet: AnyGreenlet) {
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

    private func reportFailure(of greenlet: AnyGreenlet, _ error: any Error) {
        let message = "sprout: greenlet '\(greenlet.name)' failed: \(error)\n"
        writeToStandardError(message)
    }

    // MARK: - Parking and waking

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
        return try currentNode!._withUnsafeGuaranteedRef { greenlet in
            if greenlet === hubGreenlet { throw HubError.blockingInHub(what.description) }
            if let error = greenlet.pendingError {
                greenlet.pendingError = nil
                throw error
            }
            greenlet.waitToken &+= 1
            greenlet.isParked = true
            greenlet.waitingOn = what
            if let deadline {
                timers.schedule(at: deadline, .wake(greenlet.timerTarget, token: greenlet.waitToken))
            }
            let isMain = greenlet.context == mainContext
            if isMain { beacon.serving.store(true, ordering: .relaxed) }
            switchAway(from: greenlet)
            if isMain { beacon.serving.store(false, ordering: .relaxed) }
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
    private func assertNotInTask(_ what: StaticString) {
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
            throw error
        }
        greenlet.waitToken &+= 1
        greenlet.waitingOn = "sleep(for: .zero)"
        yielded.push(.passUnretained(greenlet))
        let isMain = greenlet.context == mainContext
        if isMain { beacon.serving.store(true, ordering: .relaxed) }
        switchAway(from: greenlet)
        if isMain { beacon.serving.store(false, ordering: .relaxed) }
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
    private func switchAway(from greenlet: AnyGreenlet) {
        let next = nextToRun()
        currentNode = next
        sprout_context_switch(greenlet.context, next._withUnsafeGuaranteedRef { $0.context })
    }

    @inline(__always)
    private func nextToRun() -> Unmanaged<AnyGreenlet> {
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
    private func turnBudgetSpent() -> Bool {
        let end = turnStart &+ switchIntervalNanos
        if handoffs & 63 == 0 { return sprout_now_ns() > end }
        return sprout_coarse_now_ns() > end
    }

    /// Pops the next ready greenlet, skipping (and reclaiming) ones killed before they started.
    private func popRunnable() -> Unmanaged<AnyGreenlet>? {
        while let node = ready.pop() {
            if node._withUnsafeGuaranteedRef({ $0.state != .dead }) { return node }
            deadList.append(node)
        }
        return nil
    }

    // MARK: - The loop

    private func runLoop() {
        while true {
            loopTurns &+= 1
            beacon.turns.store(loopTurns, ordering: .relaxed)
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
    private func runReadyTurn() {
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

    private func runCallbacks() {
        var budget = callbacks.count
        while budget > 0, let callback = callbacks.popFirst() {
            budget -= 1
            callback()
        }
    }

    private func poll() {
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
    private func spinForPosts() -> Bool {
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
    private func reportDeadlock() {
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
    private func nextLiveDeadline() -> UInt64? {
        while let head = timers.first, !isLive(head.action) {
            _ = timers.popFirst()
            timers.noteStaleRemoved()
        }
        return timers.nextDeadline
    }

    private func fireTimers() {
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

    private func isLive(_ action: TimerAction) -> Bool {
        switch action {
        case .wake(let target, let token):
            guard let greenlet = target.greenlet else { return false }
            return greenlet.isParked && greenlet.waitToken == token
        case .timeout(let target, let id, _):
            return target.greenlet?.extrasIfAny?.activeTimeouts.contains(id) ?? false
        case .callback(let id): return timerCallbacks[id] != nil
        }
    }

    // MARK: - Callbacks and timers

    /// Runs `callback` on this hub's loop at the start of its next turn, in FIFO order.
    ///
    /// The callback runs in the hub, not in a greenlet: it must not block (a switch point there
    /// throws ``HubError/blockingInHub(_:)``). Call it from the hub's own thread; other threads
    /// use ``post(_:)``.
    public func callSoon(_ callback: @escaping () -> Void) {
        callbacks.append(callback)
    }

    /// Runs `callback` on this hub's loop after `delay`. Returns an id for ``cancelTimer(_:)``.
    @discardableResult
    func callLater(_ delay: Duration, _ callback: @escaping () -> Void) -> UInt64 {
        nextTimerID &+= 1
        timerCallbacks[nextTimerID] = callback
        timers.schedule(at: deadline(after: delay), .callback(id: nextTimerID))
        return nextTimerID
    }

    func cancelTimer(_ id: UInt64) {
        if timerCallbacks.removeValue(forKey: id) != nil {
            timers.noteCancelled(isLive: isLive)
        }
    }

    /// A new identity for a `withTimeout` block.
    func nextTimeoutID() -> UInt64 {
        nextTimerID &+= 1
        return nextTimerID
    }

    func noteTimeoutCancelled() {
        timers.noteCancelled(isLive: isLive)
    }

    /// The monotonic time `duration` from now, in nanoseconds (saturating).
    func deadline(after duration: Duration) -> UInt64 {
        let start = sprout_now_ns()
        let nanos = duration.nanoseconds
        return start > UInt64.max - nanos ? UInt64.max : start + nanos
    }

    /// Throws ``HubError/wrongThread(_:)`` unless called on this hub's thread.
    func checkThread(_ what: StaticString) throws {
        guard sprout_hub_get() == Unmanaged.passUnretained(self).toOpaque() else {
            throw HubError.wrongThread(what.description)
        }
    }

    // MARK: - Other threads

    /// Runs `work` on this hub's loop; callable from any thread. Returns false if the hub has
    /// ended (its thread exited), in which case `work` is dropped.
    @discardableResult
    public func post(_ work: @escaping @Sendable () -> Void) -> Bool {
        inbox.post(work)
    }

    /// A handle through which any thread can post work to this hub.
    public var inboxHandle: HubInbox { inbox }

    func drainInbox() {
        for work in inbox.drain() {
            callbacks.append(work)
        }
    }
}

extension Duration {
    /// Whole nanoseconds, clamped at zero.
    var nanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        if seconds < 0 || (seconds == 0 && attoseconds <= 0) { return 0 }
        let whole = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        if whole.overflow { return UInt64.max }
        return whole.partialValue &+ UInt64(attoseconds / 1_000_000_000)
    }
}

extension Hub {
    /// Stacks of spawned greenlets currently taken from the pool (the hub's own included).
    public var stacksInUse: Int { stacks.inUse }
    /// Spawned greenlets not yet reclaimed (finished ones are reclaimed on the next loop turn).
    public var liveGreenletCount: Int { liveCount }
}
