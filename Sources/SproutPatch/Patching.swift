import CSproutPatch

/// Makes the blocking libc calls that C libraries (and Swift code calling Glibc directly) make
/// park only the calling greenlet, as gevent's `monkey.patch_all()` does for Python, but
/// reaching into C: libpq, libmemcached, hiredis and the like become cooperative unchanged.
///
/// Call it once, first thing in `main`, before the process starts threads. From then on a call
/// takes the cooperative path when it runs in a greenlet (not the hub's loop) and, for IO on one
/// descriptor, the descriptor is a socket or pipe its owner left blocking. Everything else —
/// other threads, the hub, regular files, descriptors made non-blocking by their owner — runs
/// the real call unchanged. `poll`, `ppoll` and `select` park whatever mode the descriptors
/// are in. Calling it again does nothing.
///
/// The hooks are in this module's C target, which linking `SproutPatch` puts into the program
/// (its libc names are exported, so shared libraries resolve to them: `nm -D` lists them). For
/// a program built without it, load the same hooks with
/// `LD_PRELOAD=…/libSproutPatchPreload.so`, which turns patching on by itself.
///
/// - Returns: True the first time, false if patching was already on.
@discardableResult
public func patchAll() -> Bool {
    sprout_patch_enable() != 0
}

/// True once ``patchAll()`` has run (or the hooks were preloaded).
public var isPatched: Bool { sprout_patch_enabled() != 0 }

/// True once a Sprout runtime has given the hooks a way to park greenlets (when the process
/// creates its first hub). Without one, every hooked call is the real call.
public var isPatchRuntimeAttached: Bool { sprout_patch_runtime_attached() != 0 }

/// Runs `body` with the cooperative path off on the calling thread: libc calls made inside
/// block the thread as they would unpatched (for a C library that must not interleave, or to
/// measure the difference). Nests.
///
/// - Returns: What `body` returns.
/// - Throws: What `body` throws.
public func withoutPatching<T>(_ body: () throws -> T) rethrows -> T {
    _ = sprout_patch_suspend_on_this_thread(1)
    defer { _ = sprout_patch_suspend_on_this_thread(-1) }
    return try body()
}

/// What the hooks know of an open descriptor (for diagnostics and tests).
public enum PatchedDescriptorKind: Equatable, Sendable {
    /// Not used through a hook yet.
    case unknown
    /// A socket.
    case socket
    /// A pipe or FIFO.
    case pipe
    /// A regular file, terminal or device: always the real call.
    case other
    /// Beyond the hooks' table (its size comes from RLIMIT_NOFILE's hard limit).
    case outOfRange

    /// The kind recorded for `fd`.
    public init(of fd: Int32) {
        switch sprout_patch_descriptor_kind(fd) {
        case 0: self = .unknown
        case 1: self = .socket
        case 2: self = .pipe
        case 3: self = .other
        default: self = .outOfRange
        }
    }
}
