import Glibc

// Plain blocking process, /proc and socket helpers for `sprout-bench http`. Nothing here
// runs on a hub: the benchmark drives external servers and external load generators, and the
// sprout-bench process itself only waits for them (or, for the idle-connection figure, holds
// blocking client sockets of its own, which live in this process and never count towards a
// server's RSS).

struct BenchFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Writes a line to stderr (progress and notes; stdout carries only the table or the JSON).
func note(_ text: String) {
    var line = text + "\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

func sleepSeconds(_ seconds: Double) {
    var request = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
}

func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

/// The whole contents of a file (works for /proc files, whose size reads as 0), or nil.
func readWholeFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0 {
            if errno == EINTR { continue }
            return nil
        }
        if count == 0 { break }
        bytes.append(contentsOf: chunk[0..<count])
    }
    return String(decoding: bytes, as: UTF8.self)
}

func writeWholeFile(_ path: String, _ text: String) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw BenchFailure("cannot create \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var text = text
    try text.withUTF8 { buffer in
        var offset = 0
        while offset < buffer.count {
            let count = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
            if count < 0 {
                if errno == EINTR { continue }
                throw BenchFailure("cannot write \(path): \(String(cString: strerror(errno)))")
            }
            offset += count
        }
    }
}

func fileExists(_ path: String) -> Bool { access(path, F_OK) == 0 }
func isExecutable(_ path: String) -> Bool { access(path, X_OK) == 0 }

/// Modification time in seconds since the epoch, or nil when the file does not exist.
func modificationTime(_ path: String) -> Double? {
    var info = stat()
    guard stat(path, &info) == 0 else { return nil }
    return Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9
}

/// Every regular file under `directory`, recursively.
/// A directory entry's name, read in place: an entry near the end of readdir's buffer is
/// shorter than `d_name`'s declared 256 bytes, so copying the whole tuple would read past it.
func direntName(_ entry: UnsafeMutablePointer<dirent>) -> String {
    withUnsafeMutablePointer(to: &entry.pointee.d_name) {
        $0.withMemoryRebound(to: CChar.self, capacity: 1) { String(cString: $0) }
    }
}

func filesUnder(_ directory: String) -> [String] {
    guard let dir = opendir(directory) else { return [] }
    defer { closedir(dir) }
    var result: [String] = []
    while let entry = readdir(dir) {
        let name = direntName(entry)
        if name == "." || name == ".." { continue }
        let path = directory + "/" + name
        var info = stat()
        guard stat(path, &info) == 0 else { continue }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            result += filesUnder(path)
        } else if (info.st_mode & S_IFMT) == S_IFREG {
            result.append(path)
        }
    }
    return result
}

/// A fresh directory under $TMPDIR (or /tmp), removed by `removeTree`.
func makeTemporaryDirectory(_ prefix: String) throws -> String {
    let base = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
    var template = Array((base + "/" + prefix + ".XXXXXX").utf8CString)
    guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
        throw BenchFailure("mkdtemp failed: \(String(cString: strerror(errno)))")
    }
    return template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}

func removeTree(_ path: String) {
    guard let dir = opendir(path) else {
        unlink(path)
        return
    }
    while let entry = readdir(dir) {
        let name = direntName(entry)
        if name == "." || name == ".." { continue }
        let child = path + "/" + name
        var info = stat()
        if lstat(child, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR { removeTree(child) } else { unlink(child) }
    }
    closedir(dir)
    rmdir(path)
}

/// The directory holding the running executable (from /proc/self/exe).
func executableDirectory() -> String {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    guard count > 0 else { return "." }
    let path = String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return String(path[..<slash])
}

/// The first directory named `name` found in $PATH holding an executable, or nil.
func findInPath(_ name: String) -> String? {
    let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin"
    for directory in path.split(separator: ":") {
        let candidate = "\(directory)/\(name)"
        if isExecutable(candidate) { return candidate }
    }
    for directory in ["/usr/sbin", "/sbin", "/usr/local/sbin"] where isExecutable("\(directory)/\(name)") {
        return "\(directory)/\(name)"
    }
    return nil
}

// MARK: - Descriptor limit

/// Raises RLIMIT_NOFILE so that 10,000 client sockets (and servers started from here, which
/// inherit it) fit: to `wanted` for both limits when allowed (root), else the soft limit to
/// the hard one. Returns the soft limit in force afterwards.
@discardableResult
func raiseDescriptorLimit(to wanted: rlim_t) -> rlim_t {
    let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    var limit = rlimit()
    guard getrlimit(resource, &limit) == 0 else { return 0 }
    if limit.rlim_cur >= wanted { return limit.rlim_cur }
    if limit.rlim_max < wanted {
        var raised = rlimit(rlim_cur: wanted, rlim_max: wanted)
        if setrlimit(resource, &raised) == 0 { return wanted }
    }
    limit.rlim_cur = min(wanted, limit.rlim_max)
    _ = setrlimit(resource, &limit)
    _ = getrlimit(resource, &limit)
    return limit.rlim_cur
}

// MARK: - Child processes

/// Process groups started here and not yet reaped, for the SIGINT/SIGTERM handler: a fixed
/// table, so the handler touches no Swift runtime state.
private let groupSlots = 32
nonisolated(unsafe) private let liveGroups: UnsafeMutablePointer<pid_t> = {
    let table = UnsafeMutablePointer<pid_t>.allocate(capacity: groupSlots)
    table.initialize(repeating: 0, count: groupSlots)
    return table
}()

private func registerGroup(_ pid: pid_t) {
    for slot in 0..<groupSlots where liveGroups[slot] == 0 {
        liveGroups[slot] = pid
        return
    }
}

private func unregisterGroup(_ pid: pid_t) {
    for slot in 0..<groupSlots where liveGroups[slot] == pid { liveGroups[slot] = 0 }
}

/// On SIGINT or SIGTERM: SIGTERM every child group still running, give them a moment, SIGKILL
/// what is left, and exit (130 or 143).
func installInterruptCleanup() {
    let handler: @convention(c) (Int32) -> Void = { signal in
        for slot in 0..<groupSlots where liveGroups[slot] > 0 { kill(-liveGroups[slot], SIGTERM) }
        var pause = timespec(tv_sec: 0, tv_nsec: 100_000_000)
        for _ in 0..<30 {
            var alive = false
            for slot in 0..<groupSlots where liveGroups[slot] > 0 && kill(-liveGroups[slot], 0) == 0 {
                var status: Int32 = 0
                if waitpid(liveGroups[slot], &status, WNOHANG) == liveGroups[slot] { continue }
                alive = true
            }
            if !alive { break }
            nanosleep(&pause, nil)
        }
        for slot in 0..<groupSlots where liveGroups[slot] > 0 { kill(-liveGroups[slot], SIGKILL) }
        _exit(128 + signal)
    }
    signal(SIGINT, handler)
    signal(SIGTERM, handler)
}

/// A child started with posix_spawnp in a process group of its own (whose id is its pid), its
/// stdin /dev/null and its stdout and stderr into `logPath`.
final class ChildProcess {
    let name: String
    let pid: pid_t
    let logPath: String
    private(set) var exitStatus: Int32?   // raw waitpid status once reaped

    init(name: String, arguments: [String], logPath: String) throws {
        precondition(!arguments.isEmpty)
        self.name = name
        self.logPath = logPath
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // A group of its own: a server that forks (nginx's master and worker) is stopped and
        // measured as a whole, and a Ctrl-C at the terminal reaches only this process, whose
        // handler stops the children.
        posix_spawnattr_setpgroup(&attributes, 0)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGINT)
        sigaddset(&defaults, SIGTERM)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        // An empty signal mask: `run()` executes on a Swift concurrency thread, which blocks
        // nearly every signal, and a child would inherit that (a server whose SIGTERM stays
        // blocked never sees it).
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        defer { for pointer in argv { free(pointer) } }
        var child: pid_t = 0
        let rc = posix_spawnp(&child, arguments[0], &actions, &attributes, argv, environ)
        guard rc == 0 else {
            throw BenchFailure("cannot start \(arguments[0]): \(String(cString: strerror(rc)))")
        }
        pid = child
        registerGroup(child)
    }

    /// Reaps the child if it has exited; true while it runs.
    var isRunning: Bool {
        if exitStatus != nil { return false }
        var status: Int32 = 0
        let rc = waitpid(pid, &status, WNOHANG)
        if rc == pid {
            exitStatus = status
            unregisterGroup(pid)
            return false
        }
        return rc == 0
    }

    /// Waits up to `timeout` seconds for the child to exit; true if it did.
    func wait(timeout: Double) -> Bool {
        let deadline = monotonicSeconds() + timeout
        while isRunning {
            if monotonicSeconds() >= deadline { return false }
            sleepSeconds(0.02)
        }
        return true
    }

    /// SIGTERM to the whole group, up to `grace` seconds, then SIGKILL; reaps the child.
    /// Returns a note when the stop was not clean (no exit 0 after SIGTERM), else nil.
    @discardableResult
    func stop(grace: Double = 3) -> String? {
        var problem: String?
        if isRunning {
            kill(-pid, SIGTERM)
            let deadline = monotonicSeconds() + grace
            while isRunning || kill(-pid, 0) == 0 {
                if monotonicSeconds() >= deadline {
                    problem = "\(name) (pid \(pid)) still running \(Int(grace)) s after SIGTERM; sent SIGKILL"
                    kill(-pid, SIGKILL)
                    _ = wait(timeout: 5)
                    break
                }
                sleepSeconds(0.02)
            }
            if problem == nil, let status = exitStatus, !(exitedNormally(status) && exitStatusCode(status) == 0) {
                problem = "\(name) did not exit 0 on SIGTERM (\(describeStatus(status)))"
            }
        } else {
            kill(-pid, SIGKILL)   // anything it left behind in its group
        }
        unregisterGroup(pid)
        return problem
    }

    var log: String { readWholeFile(logPath) ?? "" }
}

func exitedNormally(_ status: Int32) -> Bool { status & 0x7f == 0 }
func exitStatusCode(_ status: Int32) -> Int32 { (status >> 8) & 0xff }
func describeStatus(_ status: Int32) -> String {
    exitedNormally(status) ? "exit status \(exitStatusCode(status))" : "killed by signal \(status & 0x7f)"
}

/// Runs a command to completion (up to `timeout` seconds, then SIGKILL) with its output in
/// `logPath`; returns the raw status, or nil on timeout.
func runToCompletion(name: String, _ arguments: [String], logPath: String, timeout: Double) throws -> Int32? {
    let child = try ChildProcess(name: name, arguments: arguments, logPath: logPath)
    if child.wait(timeout: timeout) { return child.exitStatus }
    child.stop(grace: 1)
    return nil
}

// MARK: - /proc figures of a process group

/// utime + stime (clock ticks), VmRSS and Pss (bytes), summed over every process in group `pgid`.
///
/// RSS counts a page shared by several processes (a pre-fork master's code and heap in every
/// worker) once in each; Pss splits it between them, so a sum of Pss is what the group costs.
struct GroupUsage {
    var cpuTicks: Int = 0
    var rssBytes: Int = 0
    var pssBytes: Int = 0
    var processes: Int = 0

    static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    var cpuSeconds: Double { Double(cpuTicks) / GroupUsage.ticksPerSecond }

    static func of(group pgid: pid_t) -> GroupUsage {
        var usage = GroupUsage()
        guard let dir = opendir("/proc") else { return usage }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = direntName(entry)
            guard let pid = Int32(name), let stat = readWholeFile("/proc/\(pid)/stat"),
                  let close = stat.lastIndex(of: ")") else { continue }
            // Fields after the command name, which may itself hold spaces and parentheses:
            // [0] state (field 3), [2] pgrp (5), [11] utime (14), [12] stime (15).
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 12, Int32(fields[2]) == pgid, fields[0] != "Z" else { continue }
            usage.cpuTicks += (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0)
            usage.rssBytes += vmRSS(pid) ?? 0
            usage.pssBytes += proportionalSetSize(pid) ?? 0
            usage.processes += 1
        }
        return usage
    }

    /// Pss of one process in bytes, from /proc/PID/smaps_rollup.
    static func proportionalSetSize(_ pid: pid_t) -> Int? { kibField("Pss:", in: "/proc/\(pid)/smaps_rollup") }

    /// VmRSS of one process in bytes, from /proc/PID/status.
    static func vmRSS(_ pid: pid_t) -> Int? { kibField("VmRSS:", in: "/proc/\(pid)/status") }

    /// The bytes of the first `name  N kB` line of a /proc file.
    private static func kibField(_ name: String, in path: String) -> Int? {
        guard let text = readWholeFile(path) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(name) {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count >= 2, let kib = Int(parts[1]) else { return nil }
            return kib * 1024
        }
        return nil
    }
}

// MARK: - Blocking loopback sockets

/// A port on 127.0.0.1 that nothing is bound to (not even in TIME_WAIT), below the ephemeral
/// range so that no outgoing connection can be holding it, and not handed out before.
func pickFreePort(excluding used: inout Set<Int>) throws -> Int {
    var low = 10_000
    var high = 32_767
    if let range = readWholeFile("/proc/sys/net/ipv4/ip_local_port_range"),
       let ephemeralLow = range.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).first.flatMap({ Int($0) }),
       ephemeralLow - 1 > low + 1000 {
        high = ephemeralLow - 1
    } else {
        low = 61_000
        high = 65_000
    }
    for _ in 0..<500 {
        let port = Int.random(in: low...high)
        if used.contains(port) { continue }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { continue }
        var address = loopbackAddress(port: port)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        close(fd)
        if rc == 0 {
            used.insert(port)
            return port
        }
    }
    throw BenchFailure("found no free port in \(low)-\(high)")
}

func loopbackAddress(port: Int) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = in_addr_t(UInt32(0x7f00_0001).bigEndian)
    return address
}

/// A blocking TCP connection to 127.0.0.1:port with send and receive timeouts, or nil.
func connectLoopback(port: Int, timeout: Double = 5) -> Int32? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { return nil }
    var time = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1e6))
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
    var address = loopbackAddress(port: port)
    let rc = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    if rc != 0 {
        close(fd)
        return nil
    }
    return fd
}

/// Sends `GET / HTTP/1.1` on a connected blocking socket and reads one whole response
/// (Content-Length or chunked body). Returns the status code and the body, or throws.
func httpGetRoot(_ fd: Int32) throws -> (status: Int, body: String) {
    try httpExchange(fd, method: "GET", target: "/")
}

/// Sends `method target HTTP/1.1` (no body) on a connected blocking socket and reads one whole
/// response (Content-Length or chunked body). Returns the status code and the body, or throws.
func httpExchange(_ fd: Int32, method: String, target: String) throws -> (status: Int, body: String) {
    var request = "\(method) \(target) HTTP/1.1\r\nHost: x\r\n\(method == "GET" ? "" : "Content-Length: 0\r\n")\r\n"
    try request.withUTF8 { buffer in
        var offset = 0
        while offset < buffer.count {
            let count = send(fd, buffer.baseAddress! + offset, buffer.count - offset, Int32(MSG_NOSIGNAL))
            if count < 0 {
                if errno == EINTR { continue }
                throw BenchFailure("send: \(String(cString: strerror(errno)))")
            }
            offset += count
        }
    }
    var received: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    let separator: [UInt8] = Array("\r\n\r\n".utf8)
    var headEnd: Int?
    var status = 0
    var contentLength: Int?
    var chunked = false
    while true {
        if headEnd == nil, let end = find(separator, in: received) {
            headEnd = end + 4
            let head = String(decoding: received[0..<end], as: UTF8.self)
            let lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
            let statusParts = lines.first?.split(separator: " ") ?? []
            status = statusParts.count >= 2 ? Int(statusParts[1]) ?? 0 : 0
            for line in lines.dropFirst() {
                guard let colon = line.firstIndex(of: ":") else { continue }
                let field = line[..<colon].lowercased()
                let value = line[line.index(after: colon)...].trimmingSpaces()
                if field == "content-length" { contentLength = Int(value) }
                if field == "transfer-encoding" && value.lowercased().contains("chunked") { chunked = true }
            }
        }
        if let start = headEnd {
            if let length = contentLength, received.count - start >= length {
                return (status, String(decoding: received[start..<(start + length)], as: UTF8.self))
            }
            if chunked, find(Array("0\r\n\r\n".utf8), in: Array(received[start...])) != nil {
                return (status, String(decoding: received[start...], as: UTF8.self))
            }
            if contentLength == nil && !chunked && (status == 204 || status == 304) { return (status, "") }
        }
        let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if count < 0 {
            if errno == EINTR { continue }
            throw BenchFailure("recv: \(String(cString: strerror(errno)))")
        }
        if count == 0 {
            if let start = headEnd, contentLength == nil, !chunked {
                return (status, String(decoding: received[start...], as: UTF8.self))   // close-delimited
            }
            throw BenchFailure("the server closed the connection before a whole response")
        }
        received.append(contentsOf: chunk[0..<count])
    }
}

private func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
    guard haystack.count >= needle.count else { return nil }
    for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
        if Array(haystack[start..<(start + needle.count)]) == needle { return start }
    }
    return nil
}

extension Substring {
    func trimmingSpaces() -> String {
        var view = self[...]
        while let first = view.first, first == " " || first == "\t" { view = view.dropFirst() }
        while let last = view.last, last == " " || last == "\t" { view = view.dropLast() }
        return String(view)
    }
}
