import CSproutContext

/// Hooks that exist for Sprout's own tests. Not API.
@_spi(Testing)
public enum RuntimeTesting {
    /// Stops calling Swift's exclusivity hooks on switches (without disabling the checker), so
    /// that a test can show the trap they prevent. Only for a child process of a test.
    public static func testsOnly_disableExclusivityHooks() {
        sprout_testsonly_set_exclusivity_hooks(0)
    }

    /// Whether the switch calls `swift_task_{exit,enter}ThreadLocalContext`.
    public static var exclusivityHooksAvailable: Bool {
        sprout_exclusivity_hooks_available() != 0
    }

    /// Idle loop turns in which the calling thread's hub spun waiting for another thread's reply.
    public static var spinEpisodes: Int { Hub.current.spinEpisodes }

    /// Loop turns the calling thread's hub has begun.
    public static var loopTurns: Int { Int(truncatingIfNeeded: Hub.current.loopTurns) }

    /// The calling thread's hub's number, as run-info dumps and monitor reports give it.
    public static var hubNumber: Int { Hub.current.beacon.number }

    /// Entries in the calling thread's hub's timer heap, stale ones included.
    public static var timerEntries: Int { Hub.current.timerEntryCount }

    /// True when stack guards fall back to `mprotect` (kernels before 6.13), costing a kernel
    /// mapping each.
    public static var guardsCostAMappingEach: Bool { sprout_guard_mode() == SPROUT_GUARD_MPROTECT }
}
