import Glibc
import Sprout

/// The package's root directory (for scripts and peers), from this file's path.
public func packageRoot() -> String {
    var path = #filePath   // Tests/SproutTestSupport/Peers.swift
    for _ in 0..<3 {
        while let last = path.last, last != "/" { path.removeLast() }
        path.removeLast()
    }
    return path
}

/// The test certificates (scripts/make-test-certs), made once per build directory.
public enum TestCertificates {
    public static var directory: String { packageRoot() + "/.build/test-certs" }

    /// Makes them if needed; returns the directory.
    public static func ensure() throws -> String {
        let (status, _) = try runCommand(["bash", packageRoot() + "/scripts/make-test-certs", directory], timeout: .seconds(60))
        guard status == 0 else { throw TestSupportError(description: "scripts/make-test-certs failed (status \(status))") }
        return directory
    }

    public static func path(_ name: String) -> String { directory + "/" + name }
}

/// A free loopback port (bound and released; nothing else here takes ports meanwhile).
public func freePort() throws -> Int {
    try freePorts(1)[0]
}

/// `count` different free loopback ports. All are held open together before any is released:
/// a port taken and released one at a time may be handed out again at the next request (it
/// was, once, in a fresh-clone run, and two nginx servers shared a port).
public func freePorts(_ count: Int) throws -> [Int] {
    var sockets: [Socket] = []
    defer { sockets.forEach { $0.close() } }
    for _ in 0..<count { sockets.append(try Socket.listen(host: "127.0.0.1", port: 0)) }
    return sockets.map { $0.localAddress.port }
}

/// Waits until something accepts connections on `port` (or the process exits).
public func waitForListener(_ port: Int, process: ChildProcess, log: String, timeout: Duration = .seconds(10)) throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if let socket = try? Socket.connect(host: "127.0.0.1", port: port, timeout: .seconds(1)) {
            socket.close()
            return
        }
        var status: Int32 = 0
        if waitpid(process.pid, &status, WNOHANG) == process.pid {
            throw TestSupportError(description: "the peer exited before listening on \(port): \(readFileText(log))")
        }
        try sleep(for: .milliseconds(20))
    }
    throw TestSupportError(description: "nothing listens on \(port) after \(timeout): \(readFileText(log))")
}

public func writeFile(_ path: String, _ text: String) throws {
    guard let file = fopen(path, "w") else { throw TestSupportError(description: "cannot write \(path)") }
    defer { fclose(file) }
    _ = text.withCString { fputs($0, file) }
}

public func readFileText(_ path: String) -> String {
    guard let file = fopen(path, "r") else { return "(no \(path))" }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = fread(&chunk, 1, chunk.count, file)
        if count == 0 { break }
        bytes += chunk[..<count]
    }
    return String(decoding: bytes, as: UTF8.self)
}
