import Synchronization

private let greenletLocalKeys = Atomic<UInt64>(0)

/// A value with a separate copy in every greenlet (gevent's `local`), the replacement for
/// `TaskLocal` and thread-locals in green code.
///
/// Each greenlet sees the default until it assigns its own value; the value is dropped when
/// the greenlet is. The thread's main greenlet has its own copy too. Greenlet-safe, not
/// thread-safe.
public final class GreenletLocal<Value> {
    private let makeDefault: () -> Value
    private let key = greenletLocalKeys.add(1, ordering: .relaxed).newValue

    /// Creates a local whose initial value in each greenlet is `makeDefault()`, evaluated on
    /// that greenlet's first read.
    public init(_ makeDefault: @autoclosure @escaping () -> Value) {
        self.makeDefault = makeDefault
    }

    /// The running greenlet's value.
    public var value: Value {
        get {
            let greenlet = Hub.current.current!
            if let stored = greenlet.extras.locals[key] { return stored as! Value }
            let initial = makeDefault()
            greenlet.extras.locals[key] = initial
            return initial
        }
        set {
            Hub.current.current!.extras.locals[key] = newValue
        }
    }
}
