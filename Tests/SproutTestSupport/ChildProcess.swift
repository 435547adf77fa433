import Glibc
import Sprout

/// A failure of the test support itself (a child that did not start, a peer that did not listen).
public struct TestSupportError: Error, CustomStringConvertible {
    public let description: String
    public init(description: String) { self.description = description }
}

/// Runs a command to its end and returns its exit status and standard output (standard error
/// is inherited). Only the calling greenlet waits: the output is read through the hub.
public func runCommand(_ arguments: [String], timeout: Duration = .seconds(30)) throws -> (status: Int32, output: String) {
    let child = try ChildProcess(arguments, searchPath: true)
    let output = try child.readToEnd(timeout: timeout)
    guard let status = try child.waitForExit(timeout: timeout) else {
        throw TestSupportError(description: "\(arguments[0]) did not exit within \(timeout)")
    }
    return (status, output)
}

/// True if `command` is on PATH.
public func commandExists(_ command: String) -> Bool {
    let path = String(cString: getenv("PATH") ?? strdup("/usr/bin:/bin"))
    return path.split(separator: ":").contains { access("\($0)/\(command)", X_OK) == 0 }
}

/// The `sprout` executable built beside this test bundle.
public func sproutExecutable() -> String {
    var buffer = [CChar](repeating: 0, count: 4096)
    let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    let path = String(decoding: buffer[0..<max(0, length)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    var directory = path
    while let last = directory.last, last != "/" { directory.removeLast() }
    return directory + "sprout"
}

/// A child process with its stdout readable through a pipe (for servers run as processes).
public final class ChildProcess {
    /// The child's process id.
    public let pid: pid_t
    /// The read end of the child's standard output (non-blocking).
    public let stdout: Int32

    /// Starts `arguments` (looked up on PATH with `searchPath`); its standard error goes to
    /// the file `standardErrorPath` (created or truncated) if given, else to ours.
    public init(_ arguments: [String], searchPath: Bool = false, standardErrorPath: String? = nil) throws {
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else { throw TestSupportError(description: "pipe failed") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
        posix_spawn_file_actions_addclose(&actions, pipeFDs[0])
        // The pipe's own write end must not live on in the child beside its stdout: a daemon
        // the child starts (pg_ctl's postgres) would hold it, and we would never see EOF.
        posix_spawn_file_actions_addclose(&actions, pipeFDs[1])
        if let standardErrorPath {
            posix_spawn_file_actions_addopen(&actions, 2, standardErrorPath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o644)
        }
        defer { posix_spawn_file_actions_destroy(&actions) }
        var argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        // A child inherits the signal mask of the spawning thread. Start it with SIGTERM and
        // SIGINT blocked on purpose, as a Swift concurrency thread would: `onSignal` must unblock
        // them for the server to stop.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var blocked = sigset_t()
        sigemptyset(&blocked)
        sigaddset(&blocked, SIGTERM)
        sigaddset(&blocked, SIGINT)
        posix_spawnattr_setsigmask(&attributes, &blocked)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGPIPE] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        let rc = searchPath ? posix_spawnp(&pid, arguments[0], &actions, &attributes, &argv, environ)
            : posix_spawn(&pid, arguments[0], &actions, &attributes, &argv, environ)
        close(pipeFDs[1])
        guard rc == 0 else { throw TestSupportError(description: "cannot start \(arguments[0]): errno \(rc)") }
        self.pid = pid
        stdout = pipeFDs[0]
        _ = fcntl(stdout, F_SETFL, fcntl(stdout, F_GETFL) | O_NONBLOCK)
    }

    private var reaped = false

    deinit {
        close(stdout)
        guard !reaped else { return }
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }

    /// Reads stdout until a line containing `marker` arrives; returns that line.
    public func waitForLine(containing marker: String, timeout: Duration = .seconds(20)) throws -> String {
        var text = ""
        try withTimeout(timeout) {
            var chunk = [UInt8](repeating: 0, count: 1024)
            while true {
                if let line = text.split(separator: "\n").first(where: { $0.contains(marker) }) { text = String(line); return }
                try wait(fd: stdout, readable: true)
                let count = read(stdout, &chunk, chunk.count)
                if count == 0 { throw TestSupportError(description: "child exited before printing \(marker)") }
                if count > 0 { text += String(decoding: chunk[..<count], as: UTF8.self) }
            }
        }
        return text
    }

    /// Reads stdout until the child closes it.
    public func readToEnd(timeout: Duration) throws -> String {
        var output: [UInt8] = []
        try withTimeout(timeout) {
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = read(stdout, &chunk, chunk.count)
                if count == 0 { return }
                if count > 0 {
                    output += chunk[..<count]
                } else {
                    try wait(fd: stdout, readable: true)
                }
            }
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// Waits (polling, so the hub keeps running) for the child to exit; its exit status, or
    /// nil if it did not exit within `timeout`.
    public func waitForExit(timeout: Duration) throws -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                reaped = true
                return (status & 0x7f) == 0 ? (status >> 8) & 0xff : -(status & 0x7f)
            }
            try sleep(for: .milliseconds(10))
        }
        return nil
    }
}
