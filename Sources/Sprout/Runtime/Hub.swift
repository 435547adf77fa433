import CSproutContext
import CSproutSystem
import DequeModule
import Glibc
import Synchronization

// The hub is one class in five files: this one (thread set-up, identity, state, teardown),
// HubRegistry.swift (spawning, finishing, reclaiming), HubScheduler.swift (park, wake,
// hand-off, the turn budget), HubLoop.swift (the loop turn, polling, deadlock detection) and
// HubCallbacks.swift (callbacks, timers, posts from other threads).

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
    let idBase: UInt64
    @exclusivity(unchecked) var lastLocalID: UInt64 = 0

    func nextGreenletID() -> UInt64 {
        lastLocalID &+= 1
        return idBase &+ lastLocalID
    }

    let thread: pthread_t
    /// The machine state of the thread's own stack while another greenlet runs.
    let mainContext: UnsafeMutablePointer<sprout_context_t>
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
    @exclusivity(unchecked) var callbacks = Deque<() -> Void>()
    var timerCallbacks: [UInt64: () -> Void] = [:]
    let stacks = StackPool()
    let poller: Poller
    let inbox: HubInbox
    /// What other threads may read of this hub (the monitor, run-info dumps).
    let beacon: HubBeacon

    /// Greenlets that finished and whose stacks can be reused once nobody runs on them.
    @exclusivity(unchecked) var deadList: [Unmanaged<AnyGreenlet>] = []
    @exclusivity(unchecked) var registryHead: Unmanaged<AnyGreenlet>?
    /// Number of spawned greenlets not yet reclaimed.
    @exclusivity(unchecked) var liveCount = 0

    /// Greenlets that yielded (`sleep(for: .zero)`) during this turn; they run next turn.
    @exclusivity(unchecked) var yielded = ReadyQueue()
    /// True while a turn's greenlets are handing over to each other (cleared by the budget).
    @exclusivity(unchecked) var inTurn = false
    @exclusivity(unchecked) var turnStart: UInt64 = 0
    @exclusivity(unchecked) var handoffs = 0
    /// Loop turns begun: the heartbeat the blocked-hub monitor watches.
    @exclusivity(unchecked) var loopTurns: UInt64 = 0
    @exclusivity(unchecked) var lastPoll: UInt64 = 0
    /// While work is pending, the loop polls for IO at least this often (nanoseconds).
    let busyPollInterval: UInt64 = 50_000
    /// How long an idle hub that expects a post from another thread spins before sleeping.
    let spinBeforeSleep: UInt64 = 50_000
    /// Cached monotonic time of the current loop turn, in nanoseconds.
    @exclusivity(unchecked) var now: UInt64
    var nextTimerID: UInt64 = 0
    /// Number of replies other threads owe this hub (thread-pool jobs, green threads); while
    /// non-zero, an otherwise idle loop waits for them instead of reporting a deadlock.
    var expectedPosts = 0 {
        didSet { if expectedPosts > oldValue { lastPostExpected = sprout_now_ns() } }
    }
    /// When a reply from another thread was last asked for: the hub spins for replies only
    /// shortly after (a long job, or a nested green thread, is slept through in epoll_wait).
    var lastPostExpected: UInt64 = 0
    /// How long after asking for a reply an idle hub still spins for it.
    let spinWindow: UInt64 = 200_000
    /// Idle turns that spun for a reply (for tests).
    var spinEpisodes = 0
    /// Entries in the timer heap, stale ones included (for tests).
    var timerEntryCount: Int { timers.count }
    /// Set in a forked child on the hub its thread had in the parent: it must never run again.
    @exclusivity(unchecked) var abandonedByFork = false
    /// Registered signal handlers; while non-zero the loop waits for signals.
    var signalWatchers = 0
    var signalState: SignalState?

    /// How long one loop turn may run ready greenlets before the hub polls for IO.
    public var switchInterval: Duration = .milliseconds(5) {
        didSet { switchIntervalNanos = switchInterval.nanoseconds }
    }
    @exclusivity(unchecked) var switchIntervalNanos: UInt64 = 5_000_000

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
        sprout_context_set_hub_loop(hubGreenlet.context)
        HubDirectory.register(beacon)
        PatchRuntime.offerToHooks()
    }

    deinit {
        ready.deallocate()
        yielded.deallocate()
        mainContext.deallocate()
    }

    static func createForCurrentThread() -> Hub {
        let inTask = withUnsafeCurrentTask { $0 != nil }
        precondition(!inTask, """
            Sprout: a hub cannot run on a Swift concurrency thread (greenlets would be stranded \
            when the task moves); wrap green code in GreenThread.run { … }
            """)
        ForkRecovery.recoverIfForked()
        _ = sprout_exclusivity_hooks_available()
        sprout_overflow_handler_install_for_thread()
        sprout_sampler_accept_on_this_thread(BlockedHubMonitor.samplingSignal)
        _ = sprout_throw_tracing_install()
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

    func makeHubGreenlet() throws -> AnyGreenlet {
        let stack = try stacks.acquire(size: StackPool.defaultStackSize)
        let context = Hub.contextSlot(of: stack)
        let greenlet = AnyGreenlet(hub: self, id: nextGreenletID(),
                                   name: "hub", context: context)
        greenlet.stack = stack
        greenlet.state = .started
        sprout_context_init(context, stack.low, UnsafeMutableRawPointer(context), stack.guardLow, { arg in
            // No strong reference may live in this frame: it is abandoned when the hub ends.
            if sprout_context_sanitized != 0 { sprout_context_entered() }
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
        sprout_context_set_hub_loop(nil)
        sprout_context_retire(mainContext)
        sprout_overflow_handler_release_for_thread()
        sprout_hub_set(nil)
        // The main and hub greenlets point back at the hub: break the cycle.
        current = nil
        mainGreenlet = nil
        hubGreenlet = nil
        Unmanaged.passUnretained(self).release()
    }
}

extension Duration {
    /// Whole nanoseconds, clamped at zero (and at `UInt64.max`).
    var nanoseconds: UInt64 { wholeNanoseconds }
}

extension Hub {
    /// Stacks of spawned greenlets currently taken from the pool (the hub's own included).
    public var stacksInUse: Int { stacks.inUse }
    /// The hub's small number in the process, from 1 in order of creation, as run-info dumps
    /// and blocked-hub reports name it.
    public var number: Int { beacon.number }
    /// Spawned greenlets not yet reclaimed (finished ones are reclaimed on the next loop turn).
    public var liveGreenletCount: Int { liveCount }
}
