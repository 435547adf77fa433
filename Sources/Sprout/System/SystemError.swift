import Glibc

/// A failed system call: the errno and the operation that failed.
public struct SystemError: Error, CustomStringConvertible, Equatable {
    /// The `errno` value the call failed with.
    public let errno: Int32
    /// What was being done, e.g. `"epoll_ctl"` or `"connect to 127.0.0.1:80"`.
    public let operation: String

    /// Creates an error for `operation` that failed with `errno`.
    public init(errno: Int32, operation: String) {
        self.errno = errno
        self.operation = operation
    }

    public var description: String {
        "\(operation) failed: \(String(cString: strerror(errno))) (errno \(errno))"
    }
}
