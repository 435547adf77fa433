import CSproutSystem

/// Raises the soft limit on open file descriptors (`RLIMIT_NOFILE`) to the hard limit, as
/// servers do at start-up; ``StreamServer/start()`` calls it.
///
/// - Returns: The soft limit now in force.
/// - Throws: ``SystemError`` if the limit cannot be read or set.
@discardableResult
public func raiseOpenFileLimit() throws -> Int {
    var soft = 0
    let rc = sprout_raise_nofile_limit(&soft)
    guard rc == 0 else { throw SystemError(errno: rc, operation: "setrlimit(RLIMIT_NOFILE)") }
    return soft
}
