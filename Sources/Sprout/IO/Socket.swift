import CSproutContext
import CSproutSystem
import Glibc

/// A cooperative socket: TCP over IPv4/IPv6, UDP, or Unix-domain (gevent's `socket`).
///
/// Non-blocking from birth. Every operation tries the system call first and parks the calling
/// greenlet only when the kernel says `EAGAIN`; the descriptor is registered with the hub's
/// epoll once and stays registered until ``close()``. Closing a socket wakes every greenlet
/// waiting on it with an error. A socket belongs to the hub of the thread that created it; at
/// most one greenlet may wait to read and one to write at a time.
///
/// Errors are ``SystemError`` values carrying the errno and the operation; a wait longer than
/// ``timeout`` fails with `ETIMEDOUT`.
public final class Socket {
    /// What a socket carries.
    public enum Kind: Sendable {
        /// A byte stream (TCP, or a Unix stream socket).
        case stream
        /// Datagrams (UDP, or a Unix datagram socket).
        case datagram
    }

    /// Which direction ``shutdown(_:)`` closes.
    public enum ShutdownDirection: Sendable {
        case read, write, both
    }

    /// The file descriptor, or -1 once closed.
    @exclusivity(unchecked) public private(set) var fileDescriptor: Int32
    /// The longest time any single operation (recv, send, accept, connect) may wait; `nil`
    /// (the default) waits for ever. A `withTimeout` around the call works too.
    @exclusivity(unchecked) public var timeout: Duration?
    /// Treat a read that returns less than asked as proof that the receive buffer is empty,
    /// so the next ``recv(into:)`` parks at once instead of spending a system call on a
    /// certain `EAGAIN` (nginx does the same). Off by default: on a TCP socket a peer that
    /// sends urgent (out-of-band) data can end a read early with more data waiting, and that
    /// read then waits for the peer's next segment or the timeout; a Unix socket's ancillary
    /// data does the same. Servers of request/response protocols, where a misbehaving peer only
    /// delays itself, turn it on.
    @exclusivity(unchecked) public var shortReadsDrain = false
    /// Marks a listening socket that other processes or hubs accept from too (a pre-fork
    /// master's listener, inherited by every worker): epoll then wakes one of its waiters per
    /// incoming connection (`EPOLLEXCLUSIVE`) instead of all of them. Set it before the first
    /// ``accept()``; it takes effect when the socket is first waited on.
    @exclusivity(unchecked) public var isSharedListener = false
    let hub: Hub
    private var cachedLocal: SocketAddress?
    private var cachedRemote: SocketAddress?

    /// True once ``close()`` has been called.
    public var isClosed: Bool { fileDescriptor < 0 }

    /// Creates an unconnected socket.
    /// - Throws: ``SystemError`` from `socket(2)`.
    public convenience init(family: SocketAddress.Family, kind: Kind = .stream) throws {
        let domain: Int32 = switch family {
        case .ipv4: AF_INET
        case .ipv6: AF_INET6
        case .unix: AF_UNIX
        }
        let type = Int32(kind == .stream ? SOCK_STREAM.rawValue : SOCK_DGRAM.rawValue)
        let fd = sprout_socket(domain, type)
        guard fd >= 0 else { throw SystemError(errno: errno, operation: "socket") }
        self.init(adopting: fd)
    }

    /// Takes ownership of a descriptor, which must already be non-blocking (Sprout creates its
    /// sockets with `SOCK_NONBLOCK`).
    init(adopting fd: Int32, local: SocketAddress? = nil, remote: SocketAddress? = nil) {
        fileDescriptor = fd
        hub = Hub.current
        hub.poller.resetReadiness(fd)
        cachedLocal = local
        cachedRemote = remote
    }

    /// Takes ownership of an open socket descriptor that Sprout did not create: one inherited
    /// from a supervisor or from systemd's socket activation, or made by a C library. It is
    /// made non-blocking and close-on-exec; ``close()`` closes it.
    ///
    /// - Throws: ``SystemError`` with `EBADF` if `fileDescriptor` is not open, `ENOTSOCK` if
    ///   it is not a socket.
    public convenience init(fileDescriptor fd: Int32) throws {
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw SystemError(errno: errno, operation: "fstat of descriptor \(fd)") }
        guard status.st_mode & S_IFMT == S_IFSOCK else {
            throw SystemError(errno: ENOTSOCK, operation: "adopt descriptor \(fd) as a socket")
        }
        let flags = fcntl(fd, F_GETFL)
        guard flags >= 0, fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0, fcntl(fd, F_SETFD, FD_CLOEXEC) == 0 else {
            throw SystemError(errno: errno, operation: "fcntl of descriptor \(fd)")
        }
        self.init(adopting: fd)
    }

    deinit {
        if fileDescriptor >= 0 { close() }
    }

    // MARK: Connecting and listening

    /// Connects to `host:port`, resolving the name on the thread pool and trying each address
    /// in turn until one answers.
    ///
    /// - Parameter timeout: The longest time for the whole attempt, lookup included; `nil`
    ///   waits for ever. It also becomes the new socket's ``timeout``.
    /// - Returns: A connected socket with `TCP_NODELAY` set.
    /// - Throws: ``ConnectError`` listing each address's failure; ``ResolverError`` if the
    ///   name does not resolve; `GreenletExit` or an enclosing `Timeout` while waiting.
    /// - Note: A switch point.
    public static func connect(host: String, port: Int, timeout: Duration? = nil) throws -> Socket {
        let hub = Hub.current
        let deadline = timeout.map { hub.deadline(after: $0) }
        let addresses = try withTimeout(timeout) { try resolve(host: host, port: port) }
        var failures: [(SocketAddress, any Error)] = []
        for address in addresses {
            do {
                let socket = try connect(to: address, deadline: deadline)
                socket.timeout = timeout
                return socket
            } catch let error as SystemError {
                failures.append((address, error))
                if error.errno == ETIMEDOUT { break }
            }
        }
        throw ConnectError(host: host, port: port, failures: failures)
    }

    /// Connects to `address`.
    ///
    /// - Returns: A connected socket (`TCP_NODELAY` set for TCP).
    /// - Throws: ``SystemError`` (`ECONNREFUSED`, `ETIMEDOUT` after `timeout`, …); `GreenletExit`
    ///   or an enclosing `Timeout` while waiting.
    /// - Note: A switch point.
    public static func connect(to address: SocketAddress, timeout: Duration? = nil) throws -> Socket {
        let hub = Hub.current
        let socket = try connect(to: address, deadline: timeout.map { hub.deadline(after: $0) })
        socket.timeout = timeout
        return socket
    }

    /// Connects to the Unix-domain stream socket at `path`.
    /// - Throws: ``SocketAddressError`` for a bad path; as ``connect(to:timeout:)``.
    public static func connect(unixPath path: String, timeout: Duration? = nil) throws -> Socket {
        try connect(to: SocketAddress(unixPath: path), timeout: timeout)
    }

    private static func connect(to address: SocketAddress, deadline: UInt64?) throws -> Socket {
        let fd = sprout_socket(address.domain, Int32(SOCK_STREAM.rawValue))
        guard fd >= 0 else { throw SystemError(errno: errno, operation: "socket") }
        let socket = Socket(adopting: fd, remote: address)
        do {
            let rc = address.withSockaddr { Glibc.connect(fd, $0, $1) }
            if rc != 0 {
                let error = errno
                guard error == EINPROGRESS || error == EINTR else {
                    throw SystemError(errno: error, operation: "connect to \(address)")
                }
                guard try socket.waitFor(writable: true, deadline: deadline) else {
                    throw SystemError(errno: ETIMEDOUT, operation: "connect to \(address)")
                }
                let pending = sprout_socket_error(fd)
                guard pending == 0 else { throw SystemError(errno: pending, operation: "connect to \(address)") }
            }
            if address.family != .unix {
                _ = sprout_set_int_option(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
            }
            return socket
        } catch {
            socket.close()
            throw error
        }
    }

    /// Binds a listening TCP socket to `host:port` (`SO_REUSEADDR` set).
    ///
    /// - Parameters:
    ///   - host: A numeric address to bind (`"0.0.0.0"`, `"::"`, `"127.0.0.1"`); a name is
    ///     resolved first.
    ///   - port: The port; 0 picks a free one (read it from ``localAddress``).
    ///   - backlog: The kernel's queue of connections not yet accepted.
    /// - Throws: ``SystemError`` (`EADDRINUSE`, …); ``ResolverError``; ``SocketAddressError``.
    public static func listen(host: String = "127.0.0.1", port: Int, backlog: Int32 = 1024) throws -> Socket {
        try listen(host: host, port: port, backlog: backlog, reusePort: false)
    }

    /// Binds a listening TCP socket to `host:port`, with `SO_REUSEPORT` if `reusePort`: then
    /// several sockets (one per hub or per process) may bind the same port, and the kernel
    /// spreads incoming connections over them by a hash of the client's address.
    /// - Throws: ``SystemError`` (`EADDRINUSE`, …); ``ResolverError``; ``SocketAddressError``.
    public static func listen(host: String = "127.0.0.1", port: Int, backlog: Int32 = 1024,
                              reusePort: Bool) throws -> Socket {
        let address = try resolve(host: host, port: port)[0]
        return try listen(on: address, backlog: backlog, reusePort: reusePort)
    }

    /// Binds a listening Unix-domain stream socket at `path` (which must not exist).
    /// - Throws: ``SystemError``; ``SocketAddressError`` for a bad path.
    public static func listen(unixPath path: String, backlog: Int32 = 1024) throws -> Socket {
        try listen(on: SocketAddress(unixPath: path), backlog: backlog)
    }

    /// Binds a listening stream socket to `address`.
    /// - Throws: ``SystemError``.
    public static func listen(on address: SocketAddress, backlog: Int32 = 1024) throws -> Socket {
        try listen(on: address, backlog: backlog, reusePort: false)
    }

    /// Binds a listening stream socket to `address`, with `SO_REUSEPORT` if `reusePort` (see
    /// ``listen(host:port:backlog:reusePort:)``).
    /// - Throws: ``SystemError``.
    public static func listen(on address: SocketAddress, backlog: Int32 = 1024, reusePort: Bool) throws -> Socket {
        let fd = sprout_socket(address.domain, Int32(SOCK_STREAM.rawValue))
        guard fd >= 0 else { throw SystemError(errno: errno, operation: "socket") }
        let socket = Socket(adopting: fd)
        do {
            if address.family != .unix {
                _ = sprout_set_int_option(fd, SOL_SOCKET, SO_REUSEADDR, 1)
            }
            if reusePort && sprout_set_int_option(fd, SOL_SOCKET, SO_REUSEPORT, 1) != 0 {
                throw SystemError(errno: errno, operation: "setsockopt(SO_REUSEPORT)")
            }
            try socket.bind(to: address)
            guard Glibc.listen(fd, backlog) == 0 else {
                throw SystemError(errno: errno, operation: "listen on \(address)")
            }
            return socket
        } catch {
            socket.close()
            throw error
        }
    }

    /// Creates a UDP socket bound to `host:port` (port 0 picks a free one).
    /// - Throws: ``SystemError``; ``ResolverError``; ``SocketAddressError``.
    public static func udp(host: String = "127.0.0.1", port: Int = 0) throws -> Socket {
        let address = try resolve(host: host, port: port, kind: .datagram)[0]
        let socket = try Socket(family: address.family, kind: .datagram)
        do {
            try socket.bind(to: address)
        } catch {
            socket.close()
            throw error
        }
        return socket
    }

    /// Binds the socket to `address`.
    /// - Throws: ``SystemError``.
    public func bind(to address: SocketAddress) throws {
        try checkOpen("bind")
        guard address.withSockaddr({ Glibc.bind(fileDescriptor, $0, $1) }) == 0 else {
            throw SystemError(errno: errno, operation: "bind to \(address)")
        }
        cachedLocal = nil
    }

    /// Waits for and accepts one connection.
    ///
    /// - Returns: The connected socket (non-blocking, `TCP_NODELAY` for TCP) and the peer.
    /// - Throws: ``SystemError`` (`EMFILE` when out of descriptors; `ETIMEDOUT` after
    ///   ``timeout``; `EBADF` if the socket is closed while waiting); `GreenletExit` or an
    ///   enclosing `Timeout`.
    /// - Note: A switch point when no connection is pending.
    public func accept() throws -> (Socket, SocketAddress) {
        try accept(waiting: true)!
    }

    /// Accepts a connection that is already in the kernel's queue, without waiting: for a
    /// server that stops listening and first takes in the clients already queued.
    ///
    /// - Returns: The connection and its peer, or nil if none is waiting.
    /// - Throws: ``SystemError`` as ``accept()``.
    public func acceptIfPending() throws -> (Socket, SocketAddress)? {
        try accept(waiting: false)
    }

    private func accept(waiting: Bool) throws -> (Socket, SocketAddress)? {
        try checkOpen("accept")
        let deadline = operationDeadline()
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        while true {
            let fd = sprout_accept(fileDescriptor, &storage, &length)
            if fd >= 0 {
                let peer = SocketAddress(storage: storage, length: length)
                if peer.family != .unix {
                    _ = sprout_set_int_option(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
                }
                return (Socket(adopting: fd, remote: peer), peer)
            }
            let error = errno
            switch error {
            case EINTR, ECONNABORTED:
                continue
            case EAGAIN, EWOULDBLOCK:
                guard waiting else { return nil }
                guard try waitFor(readable: true, deadline: deadline) else {
                    throw SystemError(errno: ETIMEDOUT, operation: "accept")
                }
            default:
                throw SystemError(errno: error, operation: "accept")
            }
        }
    }

    // MARK: Reading and writing

    /// Receives at most `maxLength` bytes.
    ///
    /// - Returns: The bytes received; empty when the peer has closed its side (end of stream).
    /// - Throws: as ``recv(into:)``.
    /// - Note: A switch point when nothing is buffered.
    public func recv(maxLength: Int) throws -> [UInt8] {
        precondition(maxLength > 0, "recv: maxLength must be positive")
        var bytes = [UInt8](repeating: 0, count: maxLength)
        let count = try bytes.withUnsafeMutableBytes { try recv(into: $0) }
        bytes.removeLast(maxLength - count)
        return bytes
    }

    /// Receives into `buffer`, the allocation-free form of ``recv(maxLength:)``.
    ///
    /// - Returns: The number of bytes written to `buffer`; 0 at end of stream.
    /// - Throws: ``SystemError`` (`ECONNRESET`, `ETIMEDOUT` after ``timeout``, `EBADF` if the
    ///   socket is closed, also by another greenlet while this one waits); `GreenletExit`
    ///   or an enclosing `Timeout`.
    /// - Note: A switch point when nothing is buffered.
    public func recv(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try checkOpen("recv")
        var deadline: UInt64?? = .none
        if shortReadsDrain && hub.poller.isDrained(fileDescriptor) {
            try handle(EAGAIN, "recv", readable: true, deadline: &deadline)
        }
        while true {
            let count = Glibc.recv(fileDescriptor, buffer.baseAddress, buffer.count, 0)
            if count >= 0 {
                if shortReadsDrain && count > 0 && count < buffer.count { hub.poller.markDrained(fileDescriptor) }
                return count
            }
            try handle(errno, "recv", readable: true, deadline: &deadline)
        }
    }

    /// Receives into `buffer` what the kernel already holds, without ever waiting.
    ///
    /// - Returns: The number of bytes written to `buffer`, 0 at end of stream, or `nil` when
    ///   nothing is there yet.
    /// - Throws: ``SystemError`` (`ECONNRESET`, `EBADF` on a closed socket).
    public func tryRecv(into buffer: UnsafeMutableRawBufferPointer) throws -> Int? {
        try checkOpen("recv")
        while true {
            let count = Glibc.recv(fileDescriptor, buffer.baseAddress, buffer.count, 0)
            if count >= 0 { return count }
            let error = errno
            switch error {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return nil
            default: throw SystemError(errno: error, operation: "recv")
            }
        }
    }

    /// Sends some of `buffer`, as much as the kernel takes at once (at least one byte).
    ///
    /// - Returns: The number of bytes sent.
    /// - Throws: ``SystemError`` (`EPIPE`, `ECONNRESET`, `ETIMEDOUT` after ``timeout``,
    ///   `EBADF`); `GreenletExit` or an enclosing `Timeout`.
    /// - Note: A switch point when the send buffer is full.
    public func send(_ buffer: UnsafeRawBufferPointer) throws -> Int {
        var deadline: UInt64?? = .none
        return try send(buffer, deadline: &deadline)
    }

    /// `send` with a deadline shared by the caller's other sends (computed at the first wait).
    private func send(_ buffer: UnsafeRawBufferPointer, deadline: inout UInt64??) throws -> Int {
        try checkOpen("send")
        while true {
            let count = Glibc.send(fileDescriptor, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL))
            if count >= 0 { return count }
            try handle(errno, "send", readable: false, deadline: &deadline)
        }
    }

    /// Sends some of `bytes`; see ``send(_:)-(UnsafeRawBufferPointer)``.
    public func send(_ bytes: [UInt8]) throws -> Int {
        try bytes.withUnsafeBytes { try send($0) }
    }

    /// Sends all of `buffer`, parking as often as the peer's window requires.
    ///
    /// - Throws: as ``send(_:)-(UnsafeRawBufferPointer)``; after an error, an unknown prefix
    ///   of the data has been sent. ``timeout`` bounds the whole call, counted from its first
    ///   wait: a peer that reads a byte now and then cannot keep it going for ever.
    /// - Note: A switch point when the send buffer fills.
    public func sendAll(_ buffer: UnsafeRawBufferPointer) throws {
        var offset = 0
        var deadline: UInt64?? = .none
        while offset < buffer.count {
            offset += try send(UnsafeRawBufferPointer(rebasing: buffer[offset...]), deadline: &deadline)
        }
    }

    /// Sends all of `bytes`; see ``sendAll(_:)-(UnsafeRawBufferPointer)``.
    public func sendAll(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try sendAll($0) }
    }

    /// Sends all of `text`, UTF-8 encoded.
    public func sendAll(_ text: String) throws {
        var text = text
        try text.withUTF8 { try sendAll(UnsafeRawBufferPointer($0)) }
    }

    /// Receives one datagram (at most `maxLength` bytes of it) and its sender.
    ///
    /// - Throws: as ``recv(into:)``.
    /// - Note: A switch point when no datagram is queued.
    public func recvFrom(maxLength: Int) throws -> ([UInt8], SocketAddress) {
        precondition(maxLength > 0, "recvFrom: maxLength must be positive")
        try checkOpen("recvfrom")
        var bytes = [UInt8](repeating: 0, count: maxLength)
        var storage = sockaddr_storage()
        var deadline: UInt64?? = .none
        while true {
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let count = bytes.withUnsafeMutableBytes { raw in
                withUnsafeMutablePointer(to: &storage) { pointer in
                    pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        Glibc.recvfrom(fileDescriptor, raw.baseAddress, raw.count, 0, $0, &length)
                    }
                }
            }
            if count >= 0 {
                bytes.removeLast(maxLength - count)
                return (bytes, SocketAddress(storage: storage, length: length))
            }
            try handle(errno, "recvfrom", readable: true, deadline: &deadline)
        }
    }

    /// Sends `bytes` as one datagram to `address`.
    ///
    /// - Returns: The number of bytes sent.
    /// - Throws: ``SystemError`` (`EMSGSIZE`, …); `GreenletExit` or an enclosing `Timeout`.
    /// - Note: A switch point when the send buffer is full.
    @discardableResult
    public func sendTo(_ bytes: [UInt8], address: SocketAddress) throws -> Int {
        try checkOpen("sendto")
        var deadline: UInt64?? = .none
        while true {
            let count = bytes.withUnsafeBytes { raw in
                address.withSockaddr { Glibc.sendto(fileDescriptor, raw.baseAddress, raw.count, Int32(MSG_NOSIGNAL), $0, $1) }
            }
            if count >= 0 { return count }
            try handle(errno, "sendto \(address)", readable: false, deadline: &deadline)
        }
    }

    /// True when ``shortReadsDrain`` is on and the last read emptied the kernel's receive
    /// buffer: a read now would certainly fail with `EAGAIN`. For protocol layers that read the
    /// descriptor themselves (TLS), so that they park instead of spending that system call.
    public var isDrained: Bool { shortReadsDrain && fileDescriptor >= 0 && hub.poller.isDrained(fileDescriptor) }

    /// Records that a read made by such a layer came back short (see ``isDrained``).
    public func markDrained() {
        if shortReadsDrain && fileDescriptor >= 0 { hub.poller.markDrained(fileDescriptor) }
    }

    /// Parks until the socket becomes readable, without polling its readiness first: for a
    /// caller that has just seen `EAGAIN` or ``isDrained`` (the registration is edge-triggered,
    /// so any byte arriving after that wakes it).
    ///
    /// - Returns: True when readable, false if `timeout` passed first.
    /// - Throws: as ``recv(into:)``.
    public func waitReadableAfterEAGAIN(timeout: Duration?) throws -> Bool {
        try checkOpen("wait")
        return try waitFor(readable: true, deadline: timeout.map { hub.deadline(after: $0) })
    }

    /// Waits until the socket is readable and/or writable (gevent's `wait_read`/`wait_write`).
    ///
    /// - Returns: True when ready, false if `timeout` passed first.
    /// - Throws: as ``recv(into:)``.
    public func wait(readable: Bool = false, writable: Bool = false, timeout: Duration? = nil) throws -> Bool {
        try checkOpen("wait")
        return try waitFor(readable: readable, writable: writable, deadline: timeout.map { hub.deadline(after: $0) },
                           checkFirst: true)
    }

    // MARK: Closing

    /// Shuts down one or both directions; the peer sees end of stream after a write shutdown.
    /// - Throws: ``SystemError`` (`ENOTCONN`, …).
    public func shutdown(_ direction: ShutdownDirection = .both) throws {
        try checkOpen("shutdown")
        let how: Int32 = switch direction {
        case .read: Int32(SHUT_RD)
        case .write: Int32(SHUT_WR)
        case .both: Int32(SHUT_RDWR)
        }
        guard Glibc.shutdown(fileDescriptor, how) == 0 else {
            throw SystemError(errno: errno, operation: "shutdown")
        }
    }

    /// Closes the socket. Greenlets waiting on it are woken with ``SystemError`` `EBADF`
    /// ("closed while waiting"), as gevent's `cancel_wait`. Idempotent. Called from a thread
    /// other than its hub's (or a `deinit` there), the descriptor is closed by the hub on its
    /// next loop turn.
    public func close() {
        let fd = fileDescriptor
        guard fd >= 0 else { return }
        if cachedLocal == nil { cachedLocal = queryAddress(local: true) }
        fileDescriptor = -1
        if sprout_hub_get() == Unmanaged.passUnretained(hub).toOpaque() {
            hub.poller.forget(fd: fd, waking: SystemError(errno: EBADF, operation: "socket closed while waiting"), hub: hub)
            _ = Glibc.close(fd)
            return
        }
        // Another thread: the hub must forget the descriptor before its number can be reused,
        // or a new socket with that number would never be added to epoll. So the close itself
        // happens on the hub's thread; a hub that has ended cannot be told and needs nothing.
        let owner = UncheckedHub(hub)
        let posted = hub.post {
            owner.hub.poller.forget(fd: fd, waking: SystemError(errno: EBADF, operation: "socket closed while waiting"),
                                    hub: owner.hub)
            _ = Glibc.close(fd)
        }
        if !posted { _ = Glibc.close(fd) }
    }

    // MARK: Addresses and options

    /// The address the socket is bound to.
    public var localAddress: SocketAddress {
        if let cachedLocal { return cachedLocal }
        let address = queryAddress(local: true)
        if let address, address.port != 0 || address.family == .unix { cachedLocal = address }
        return address ?? SocketAddress.unspecified
    }

    /// The address of the peer (for connected and accepted sockets).
    public var remoteAddress: SocketAddress {
        if let cachedRemote { return cachedRemote }
        let address = queryAddress(local: false)
        cachedRemote = address
        return address ?? SocketAddress.unspecified
    }

    /// Sets `TCP_NODELAY` (already on for sockets from `connect` and `accept`).
    /// - Throws: ``SystemError``.
    public func setNoDelay(_ enabled: Bool) throws {
        try checkOpen("setsockopt(TCP_NODELAY)")
        guard sprout_set_int_option(fileDescriptor, Int32(IPPROTO_TCP), TCP_NODELAY, enabled ? 1 : 0) == 0 else {
            throw SystemError(errno: errno, operation: "setsockopt(TCP_NODELAY)")
        }
    }

    /// Sets an integer socket option (`setsockopt(level, name, value)`).
    /// - Throws: ``SystemError``.
    public func setOption(level: Int32, name: Int32, value: Int32) throws {
        try checkOpen("setsockopt")
        guard sprout_set_int_option(fileDescriptor, level, name, value) == 0 else {
            throw SystemError(errno: errno, operation: "setsockopt(\(level), \(name))")
        }
    }

    // MARK: Internals

    private func queryAddress(local: Bool) -> SocketAddress? {
        guard fileDescriptor >= 0 else { return nil }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                local ? getsockname(fileDescriptor, $0, &length) : getpeername(fileDescriptor, $0, &length)
            }
        }
        return rc == 0 ? SocketAddress(storage: storage, length: length) : nil
    }

    @inline(__always)
    private func checkOpen(_ operation: StaticString) throws {
        guard fileDescriptor >= 0 else {
            throw SystemError(errno: EBADF, operation: "\(operation) on a closed socket")
        }
    }

    private func operationDeadline() -> UInt64? {
        timeout.map { hub.deadline(after: $0) }
    }

    /// Turns a failed call's errno into a wait (EAGAIN), a retry (EINTR) or an error.
    /// `deadline` is computed on the first wait only, so the fast path reads no clock.
    @inline(__always)
    private func handle(_ error: Int32, _ operation: @autoclosure () -> String, readable: Bool,
                        deadline: inout UInt64??) throws {
        switch error {
        case EINTR:
            return
        case EAGAIN, EWOULDBLOCK:
            if deadline == nil { deadline = .some(operationDeadline()) }
            guard try waitFor(readable: readable, writable: !readable, deadline: deadline!) else {
                throw SystemError(errno: ETIMEDOUT, operation: operation())
            }
            guard fileDescriptor >= 0 else {
                throw SystemError(errno: EBADF, operation: "\(operation()) on a socket closed while waiting")
            }
        default:
            throw SystemError(errno: error, operation: operation())
        }
    }

    /// Parks until ready. `checkFirst` is for callers that did not just see `EAGAIN`: an
    /// edge-triggered registration reports only changes, so current readiness is polled first.
    private func waitFor(readable: Bool = false, writable: Bool = false, deadline: UInt64?,
                         checkFirst: Bool = false) throws -> Bool {
        try hub.checkThread("Socket")
        // A shared listener stays in this hub's epoll only while someone here waits to accept:
        // the kernel wakes one registered instance per connection (EPOLLEXCLUSIVE), and a hub
        // that is not accepting (its server full, or busy elsewhere) would take the wake-up and
        // leave the client queued while another worker waits in vain (nginx removes its accept
        // events for the same reason).
        return try hub.poller.wait(fd: fileDescriptor, readable: readable, writable: writable,
                                   deadline: deadline, transient: isSharedListener, checkFirst: checkFirst,
                                   exclusive: isSharedListener, hub: hub)
    }
}

/// A hub carried into work posted to its own inbox, which runs on its thread.
private struct UncheckedHub: @unchecked Sendable {
    let hub: Hub
    init(_ hub: Hub) { self.hub = hub }
}

extension SocketAddress {
    /// `0.0.0.0:0`, reported for sockets whose address cannot be read (closed ones).
    static let unspecified = try! SocketAddress(ip: "0.0.0.0", port: 0)
}

/// Every address ``Socket/connect(host:port:timeout:)`` tried failed.
public struct ConnectError: Error, CustomStringConvertible {
    /// The host that was asked for.
    public let host: String
    /// The port that was asked for.
    public let port: Int
    /// Each address tried and why it failed, in order.
    public let failures: [(address: SocketAddress, error: any Error)]

    public var description: String {
        let tried = failures.map { "\($0.address): \($0.error)" }.joined(separator: "; ")
        return "cannot connect to \(host):\(port): \(tried.isEmpty ? "no address tried" : tried)"
    }
}

/// Waits until the raw descriptor `fd` is readable and/or writable (gevent's `wait_read`,
/// `wait_write`, `wait_readwrite`), for descriptors Sprout does not own: pipes, descriptors
/// of C libraries. The descriptor is made non-blocking by its owner, not here.
///
/// - Returns: True when ready, false if `timeout` passed first.
/// - Throws: ``SystemError`` `EINVAL` if neither `readable` nor `writable` is asked;
///   ``HubError/concurrentWait(_:)`` if another greenlet waits on it in the same
///   direction; ``SystemError`` for a bad descriptor; `GreenletExit` or an enclosing `Timeout`.
/// - Note: A switch point. Costs two `epoll_ctl` calls (register, remove), since the owner may
///   close the descriptor without telling Sprout.
@discardableResult
public func wait(fd: Int32, readable: Bool = false, writable: Bool = false, timeout: Duration? = nil) throws -> Bool {
    let hub = Hub.current
    return try hub.poller.wait(fd: fd, readable: readable, writable: writable,
                               deadline: timeout.map { hub.deadline(after: $0) }, transient: true, checkFirst: true, hub: hub)
}
