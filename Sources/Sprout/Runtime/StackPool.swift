import CSproutContext
import Glibc

/// One greenlet stack: its usable range and the guard region below it.
struct Stack {
    let low: UnsafeMutableRawPointer
    let high: UnsafeMutableRawPointer
    let guardLow: UnsafeMutableRawPointer

    var size: Int { high - low }
}

/// A per-hub pool of greenlet stacks, carved from large slabs and reused LIFO.
///
/// Stacks are reserved lazily (`MAP_NORESERVE`): only touched pages cost memory. A stack that
/// returns to the pool keeps its touched pages while the pool holds at most ``hotLimit`` free
/// stacks of its size (so spawn/finish cycles make no syscall); past that, its pages are given
/// back to the kernel. Slabs are unmapped when the hub ends.
///
/// Belongs to one hub's thread; not thread-safe.
final class StackPool {
    /// Default usable stack size: 256 KiB (Swift and glibc calls need 8–64 KiB; debug frames ~2x).
    static let defaultStackSize = 256 * 1024
    /// Smallest accepted stack size.
    static let minimumStackSize = 32 * 1024
    /// Guard bytes below every stack. Swift on Linux emits no stack probes, so one large frame
    /// can jump a small guard and land, silently, on the stack below (where that greenlet's
    /// saved context lives, at its top). With `MADV_GUARD_INSTALL` a guard costs neither memory
    /// nor a kernel mapping, only address space, so it is 1 MiB: larger than any sane frame.
    /// With `mprotect` guards (kernels before 6.13) it stays 64 KiB.
    static let guardSize = sprout_guard_mode() == SPROUT_GUARD_MADVISE ? 1 << 20 : 64 * 1024
    /// Address space one slab spans: guards are free in it with `MADV_GUARD_INSTALL`, so slabs
    /// are larger there, and fewer slabs mean fewer kernel mappings.
    static let slabSpan = sprout_guard_mode() == SPROUT_GUARD_MADVISE ? 128 << 20 : 8 << 20
    /// Free stacks per size kept with their pages resident.
    static let hotLimit = 64

    private var slabs: [sprout_slab_t] = []
    /// Free stacks of the default size (the common case, kept out of the dictionary).
    @exclusivity(unchecked) private var freeDefault: [Stack] = []
    /// Free stacks of other sizes.
    @exclusivity(unchecked) private var freeOther: [Int: [Stack]] = [:]
    private var fresh: [Int: (slab: Int, next: Int)] = [:]
    @exclusivity(unchecked) private(set) var inUse = 0


    /// Rounds a requested size up to whole pages, at least ``minimumStackSize``.
    static func normalizedSize(_ requested: Int) -> Int {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let size = max(requested, minimumStackSize)
        return (size + page - 1) / page * page
    }

    /// Takes a stack of `size` usable bytes (already normalized).
    func acquire(size: Int) throws -> Stack {
        inUse += 1
        if size == StackPool.defaultStackSize {
            if let stack = freeDefault.popLast() { return stack }
        } else if let stack = freeOther[size]?.popLast() {
            return stack
        }
        do {
            return try carve(size: size)
        } catch {
            inUse -= 1
            throw error
        }
    }

    /// Returns a stack that no greenlet uses any more.
    func release(_ stack: Stack) {
        inUse -= 1
        let size = stack.size
        let isDefault = size == StackPool.defaultStackSize
        if (isDefault ? freeDefault.count : freeOther[size]?.count ?? 0) >= StackPool.hotLimit {
            sprout_stack_discard(stack.low, size)
        }
        if isDefault {
            freeDefault.append(stack)
        } else {
            freeOther[size, default: []].append(stack)
        }
    }

    private func carve(size: Int) throws -> Stack {
        if let cursor = fresh[size] {
            var stack = (low: UnsafeMutableRawPointer?.none, high: UnsafeMutableRawPointer?.none,
                         guardLow: UnsafeMutableRawPointer?.none)
            withUnsafePointer(to: slabs[cursor.slab]) { slab in
                sprout_slab_stack(slab, cursor.next, &stack.low, &stack.high, &stack.guardLow)
            }
            let count = slabs[cursor.slab].count
            fresh[size] = cursor.next + 1 < count ? (cursor.slab, cursor.next + 1) : nil
            return Stack(low: stack.low!, high: stack.high!, guardLow: stack.guardLow!)
        }
        let count = max(1, StackPool.slabSpan / (size + StackPool.guardSize))
        var slab = sprout_slab_t()
        let rc = sprout_slab_create(&slab, size, StackPool.guardSize, count)
        guard rc == 0 else {
            throw SystemError(errno: rc, operation: "mmap (greenlet stack slab)")
        }
        slabs.append(slab)
        fresh[size] = (slabs.count - 1, 0)
        return try carve(size: size)
    }

    deinit {
        for index in slabs.indices {
            sprout_slab_destroy(&slabs[index])
        }
    }
}
