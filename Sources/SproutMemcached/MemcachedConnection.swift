import Glibc
import Sprout
import SproutTLS

/// One connection to one memcached server, used by one greenlet at a time (the pool's rule).
final class MemcachedConnection {
    let server: String
    @exclusivity(unchecked) private var stream: NetworkStream
    @exclusivity(unchecked) private var buffer: UnsafeMutableRawPointer
    @exclusivity(unchecked) private var capacity = 16 * 1024
    @exclusivity(unchecked) private var start = 0
    @exclusivity(unchecked) private var end = 0
    @exclusivity(unchecked) var output: [UInt8] = []
    private(set) var isBroken = false

    init(server: String, stream: NetworkStream) {
        self.server = server
        self.stream = stream
        buffer = .allocate(byteCount: capacity, alignment: 16)
        output.reserveCapacity(1024)
    }

    deinit {
        buffer.deallocate()
    }

    static func open(host: String, port: Int, connectTimeout: Duration, timeout: Duration) throws -> MemcachedConnection {
        let name = "\(host):\(port)"
        let socket: Socket
        do {
            socket = try Socket.connect(host: host, port: port, timeout: connectTimeout)
        } catch let error as SystemError where error.errno == ETIMEDOUT {
            throw MemcachedError.timeout(server: name)
        } catch {
            throw MemcachedError.connectionFailed(server: name, reason: "\(error)")
        }
        try? socket.setNoDelay(true)
        socket.shortReadsDrain = true
        socket.timeout = timeout
        return MemcachedConnection(server: name, stream: NetworkStream(socket: socket))
    }

    func close() {
        stream.close()
    }

    // MARK: Writing

    /// Sends what `output` holds, then empties it.
    func flush() throws {
        do {
            try output.withUnsafeBytes { try stream.sendAll($0) }
        } catch {
            throw broken(error)
        }
        output.removeAll(keepingCapacity: true)
    }

    // MARK: Reading

    /// The next line, without its CRLF.
    func readLine() throws -> UnsafeRawBufferPointer {
        while true {
            if end > start, let hit = memchr(buffer + start, 0x0A, end - start) {
                let lf = UnsafeRawPointer(hit) - UnsafeRawPointer(buffer)
                guard lf > start, buffer.load(fromByteOffset: lf - 1, as: UInt8.self) == 0x0D else {
                    throw fail(.protocolError("a reply line not ended by CRLF"))
                }
                let line = UnsafeRawBufferPointer(start: buffer + start, count: lf - 1 - start)
                start = lf + 1
                return line
            }
            if end - start > 8192 { throw fail(.protocolError("a reply line longer than 8 KiB")) }
            try receiveMore()
        }
    }

    /// The next `count` bytes followed by CRLF (a value's data block).
    func readData(_ count: Int) throws -> [UInt8] {
        while end - start < count + 2 { try receiveMore(atLeast: count + 2) }
        guard buffer.load(fromByteOffset: start + count, as: UInt8.self) == 0x0D,
              buffer.load(fromByteOffset: start + count + 1, as: UInt8.self) == 0x0A else {
            throw fail(.protocolError("a data block not followed by CRLF"))
        }
        let bytes = Array(UnsafeRawBufferPointer(start: buffer + start, count: count))
        start += count + 2
        return bytes
    }

    private func receiveMore(atLeast wanted: Int = 0) throws {
        // Room after `start` for the unread bytes and 4 KiB more (or `wanted` bytes in all).
        let unread = end - start
        let required = max(wanted, unread + 4096)
        if capacity - start < required {
            if required <= capacity {
                memmove(buffer, buffer + start, unread)
            } else {
                let larger = UnsafeMutableRawPointer.allocate(byteCount: max(required, capacity * 2), alignment: 16)
                larger.copyMemory(from: buffer + start, byteCount: unread)
                buffer.deallocate()
                buffer = larger
                capacity = max(required, capacity * 2)
            }
            start = 0
            end = unread
        }
        let count: Int
        do {
            count = try stream.recv(into: UnsafeMutableRawBufferPointer(start: buffer + end, count: capacity - end))
        } catch {
            throw broken(error)
        }
        guard count > 0 else { throw fail(.connectionFailed(server: server, reason: "the server closed the connection")) }
        end += count
    }

    /// Gives a large buffer back once a large value has been read.
    func trimBuffer() {
        guard start == end, capacity > 1 << 20 else { return }
        buffer.deallocate()
        capacity = 16 * 1024
        buffer = .allocate(byteCount: capacity, alignment: 16)
        start = 0
        end = 0
    }

    func fail(_ error: MemcachedError) -> MemcachedError {
        isBroken = true
        return error
    }

    private func broken(_ error: any Error) -> any Error {
        isBroken = true
        if let error = error as? SystemError {
            if error.errno == ETIMEDOUT { return MemcachedError.timeout(server: server) }
            return MemcachedError.connectionFailed(server: server, reason: "\(error)")
        }
        return error
    }
}

extension UnsafeRawBufferPointer {
    /// The line starts with `prefix`.
    func hasPrefix(_ prefix: StaticString) -> Bool {
        guard count >= prefix.utf8CodeUnitCount else { return false }
        return memcmp(baseAddress!, prefix.utf8Start, prefix.utf8CodeUnitCount) == 0
    }

    /// The line equals `text`.
    func equals(_ text: StaticString) -> Bool {
        count == text.utf8CodeUnitCount && hasPrefix(text)
    }

    var text: String { String(decoding: self, as: UTF8.self) }

    /// Space-separated words.
    var words: [Substring] { text.split(separator: " ") }
}
