public import Logging

extension Socket {
    /// Accepts the next connection for a server's accept loop, riding out failures that pass
    /// (out of descriptors or memory: `EMFILE`, `ENFILE`, `ENOMEM`, …) with a logged back-off of
    /// 10 ms doubling to 1 s, while connections end and free what is missing.
    ///
    /// - Parameters:
    ///   - logger: Where each failure and its retry delay are logged (at `warning`).
    ///   - isServing: Asked after a failure; when false (the server is stopping) the loop ends.
    /// - Returns: The connection and its peer; nil once the listener is closed or `isServing`
    ///   says stop.
    /// - Throws: `GreenletExit` or an enclosing `Timeout` while waiting.
    /// - Note: A switch point.
    public func acceptRetrying(logger: Logger, while isServing: () -> Bool) throws -> (Socket, SocketAddress)? {
        var backoff: Duration = .milliseconds(10)
        while true {
            do {
                return try accept()
            } catch let error as SystemError {
                guard isServing() && !isClosed else { return nil }
                logger.warning("accept failed; retrying in \(backoff)", metadata: ["error": "\(error)"])
                try sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(1))
            }
        }
    }
}
