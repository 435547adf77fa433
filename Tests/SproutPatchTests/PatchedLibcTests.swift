import Foundation
import Glibc
import Sprout
import SproutPatch
import SproutTestSupport
import Testing

/// A greenlet that counts hub turns while others are parked in patched calls: if a call
/// blocked the thread instead, it would not count.
private final class Ticker {
    private(set) var ticks = 0
    private var greenlet: Greenlet<Void>?
    init() {
        greenlet = spawn { [unowned self] in
            while true {
                try sleep(for: .milliseconds(5))
                self.ticks += 1
            }
        }
    }
    func stop() { greenlet?.kill() }
}

extension PatchSuites {
    @Suite(.timeLimit(.minutes(2)))
    struct PatchedLibcTests {
        @Test func glibcReadOnAPipeAndUsleepYieldToOtherGreenlets() async {
            let result = await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
                try inPatchedHub {
                    let ticker = Ticker()
                    var fds: [Int32] = [0, 0]
                    guard pipe(&fds) == 0 else { failChild("pipe") }
                    let writer = spawn {
                        try sleep(for: .milliseconds(100))
                        var message = Array("hello".utf8)
                        guard write(fds[1], &message, message.count) == 5 else { failChild("write: \(errno)") }
                    }
                    var buffer = [UInt8](repeating: 0, count: 16)
                    let before = ticker.ticks
                    let count = read(fds[0], &buffer, buffer.count)   // a blocking read, as the C code wrote it
                    guard count == 5, String(decoding: buffer[..<5], as: UTF8.self) == "hello" else { failChild("read gave \(count), errno \(errno)") }
                    guard ticker.ticks - before >= 5 else { failChild("the hub did not run during read (\(ticker.ticks - before) ticks)") }
                    try writer.join()
                    // The owner still sees the blocking mode it asked for.
                    guard fcntl(fds[0], F_GETFL) & O_NONBLOCK == 0 else { failChild("O_NONBLOCK showed through") }
                    close(fds[0]); close(fds[1])

                    // Ten greenlets in usleep(100 ms) at once: about 100 ms, not a second.
                    var naps: [(start: Double, end: Double)] = []
                    let sleepers = (0..<10).map { _ in
                        spawn {
                            let began = monotonicSeconds()
                            guard usleep(100_000) == 0 else { failChild("usleep: \(errno)") }
                            naps.append((began, monotonicSeconds()))
                        }
                    }
                    for sleeper in sleepers { try sleeper.join() }
                    guard maxOverlap(naps) == 10 else { failChild("only \(maxOverlap(naps)) of ten usleep(100 ms) overlapped") }
                    var request = timespec(tv_sec: 0, tv_nsec: 50_000_000)
                    let napStart = monotonicSeconds()
                    guard nanosleep(&request, nil) == 0, monotonicSeconds() - napStart >= 0.045 else { failChild("nanosleep") }
                    ticker.stop()
                }
            }
            explainChildFailure(result)
            let text = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
            #expect(!text.contains("FAILED"), "\(text)")
        }

        @Test func foundationFileHandleReadingASocketYields() async {
            let outcome = await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
                try inPatchedHub {
                    let ticker = Ticker()
                    var pair: [Int32] = [0, 0]
                    guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0 else { failChild("socketpair") }
                    let handle = FileHandle(fileDescriptor: pair[0], closeOnDealloc: true)
                    let writer = spawn {
                        try sleep(for: .milliseconds(100))
                        var message = Array("from the other end".utf8)
                        guard send(pair[1], &message, message.count, 0) == message.count else { failChild("send") }
                    }
                    let before = ticker.ticks
                    let data = handle.availableData
                    guard String(decoding: data, as: UTF8.self) == "from the other end" else { failChild("read \(data.count) bytes") }
                    guard ticker.ticks - before >= 5 else { failChild("the hub did not run while FileHandle read") }
                    try writer.join()
                    close(pair[1])
                    ticker.stop()
                }
            }
            explainChildFailure(outcome)
        }

        @Test func pollAndSelectParkAndReportWhatTheKernelSays() async {
            let outcome = await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
                try inPatchedHub {
                    let ticker = Ticker()
                    var pair: [Int32] = [0, 0]
                    guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0 else { failChild("socketpair") }
                    // A library doing its own non-blocking IO: poll is where it waits.
                    _ = fcntl(pair[0], F_SETFL, fcntl(pair[0], F_GETFL) | O_NONBLOCK)
                    var empty = [UInt8](repeating: 0, count: 8)
                    guard read(pair[0], &empty, 8) == -1, errno == EAGAIN else { failChild("a non-blocking read parked") }
                    spawn {
                        try sleep(for: .milliseconds(80))
                        var byte: UInt8 = 7
                        _ = write(pair[1], &byte, 1)
                    }
                    var entry = pollfd(fd: pair[0], events: Int16(POLLIN), revents: 0)
                    let before = ticker.ticks
                    guard poll(&entry, 1, 5_000) == 1, entry.revents & Int16(POLLIN) != 0 else { failChild("poll") }
                    guard ticker.ticks - before >= 5 else { failChild("the hub did not run during poll") }
                    // Zero timeout: a check, not a park. A timeout that passes: 0, on time.
                    _ = read(pair[0], &empty, 8)
                    guard poll(&entry, 1, 0) == 0 else { failChild("poll(0) saw data") }
                    let start = monotonicSeconds()
                    guard poll(&entry, 1, 100) == 0 else { failChild("poll(100) saw data") }
                    let waited = monotonicSeconds() - start
                    guard waited >= 0.095, waited < 3 else { failChild("poll(100) returned after \(waited) s") }
                    // select, with the remaining time written back.
                    spawn {
                        try sleep(for: .milliseconds(50))
                        var byte: UInt8 = 9
                        _ = write(pair[1], &byte, 1)
                    }
                    var readable = fd_set()
                    withUnsafeMutableBytes(of: &readable) { _ = $0.initializeMemory(as: UInt8.self, repeating: 0) }
                    let word = Int(pair[0]) / (MemoryLayout<Int>.size * 8)
                    let bit = Int(pair[0]) % (MemoryLayout<Int>.size * 8)
                    withUnsafeMutableBytes(of: &readable) { $0.storeBytes(of: 1 << bit, toByteOffset: word * MemoryLayout<Int>.size, as: Int.self) }
                    var timeout = timeval(tv_sec: 2, tv_usec: 0)
                    guard select(pair[0] + 1, &readable, nil, nil, &timeout) == 1 else { failChild("select") }
                    guard timeout.tv_sec <= 1 else { failChild("select left \(timeout.tv_sec) s") }
                    // A closed descriptor: poll reports POLLNVAL as the kernel does.
                    close(pair[1])
                    var closed = pollfd(fd: pair[1], events: Int16(POLLIN), revents: 0)
                    guard poll(&closed, 1, 1_000) == 1, closed.revents & Int16(POLLNVAL) != 0 else { failChild("POLLNVAL") }
                    close(pair[0])
                    ticker.stop()
                }
            }
            explainChildFailure(outcome)
        }

        @Test func pollingManyDescriptorsAgainAndAgainKeepsThemRegistered() async {
            let outcome = await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
                try inPatchedHub {
                    // Fifty non-blocking socket pairs, polled together twenty times, as an event
                    // loop inside a C library would: one byte on one of them each round.
                    var pairs: [[Int32]] = []
                    for _ in 0..<50 {
                        var pair: [Int32] = [0, 0]
                        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &pair) == 0 else {
                            failChild("socketpair")
                        }
                        pairs.append(pair)
                    }
                    var entries = pairs.map { pollfd(fd: $0[0], events: Int16(POLLIN), revents: 0) }
                    for round in 0..<20 {
                        let target = pairs[(round * 7) % 50]
                        spawn {
                            try sleep(for: .milliseconds(2))
                            var byte: UInt8 = 1
                            _ = write(target[1], &byte, 1)
                        }
                        guard poll(&entries, nfds_t(entries.count), 5_000) == 1 else { failChild("round \(round): poll") }
                        var byte: UInt8 = 0
                        guard read(target[0], &byte, 1) == 1 else { failChild("round \(round): read") }
                        // Still registered after the call returned: the next poll adds nothing.
                        let watched = epollWatchedDescriptors()
                        let missing = pairs.map { $0[0] }.filter { !watched.contains($0) }
                        guard missing.isEmpty else { failChild("round \(round): \(missing.count) descriptors left epoll") }
                    }
                    // A hooked close forgets the registration.
                    close(pairs[0][0])
                    guard !epollWatchedDescriptors().contains(pairs[0][0]) else { failChild("a closed descriptor stayed in epoll") }
                }
            }
            explainChildFailure(outcome)
        }

        @Test func aBlockingWriteLargerThanTheSocketBufferWritesEverythingWhileOthersRun() async {
            let outcome = await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
                try inPatchedHub {
                    let ticker = Ticker()
                    var pair: [Int32] = [0, 0]
                    guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0 else { failChild("socketpair") }
                    let total = 4 << 20
                    let reader = spawn { () throws -> Int in
                        var received = 0
                        var buffer = [UInt8](repeating: 0, count: 65536)
                        while received < total {
                            try sleep(for: .milliseconds(1))   // a slow reader: the writer must wait
                            let count = read(pair[1], &buffer, buffer.count)
                            guard count > 0 else { failChild("read: \(count), errno \(errno)") }
                            received += count
                        }
                        return received
                    }
                    let payload = [UInt8](repeating: 0x5a, count: total)
                    let before = ticker.ticks
                    // One blocking write: it returns when all four megabytes are in.
                    let written = payload.withUnsafeBytes { write(pair[0], $0.baseAddress, total) }
                    guard written == total else { failChild("write returned \(written) of \(total)") }
                    guard try reader.get() == total else { failChild("the reader got a different count") }
                    guard ticker.ticks > before else { failChild("nothing else ran while the write waited") }
                    // writev with several pieces, the same.
                    let pieces = [payload[0..<1000], payload[0..<(1 << 20)], payload[0..<7]].map { Array($0) }
                    let expected = pieces.reduce(0) { $0 + $1.count }
                    let drain = spawn { () throws -> Int in
                        var received = 0
                        var buffer = [UInt8](repeating: 0, count: 65536)
                        while received < expected {
                            let count = read(pair[1], &buffer, buffer.count)
                            guard count > 0 else { failChild("read: \(count)") }
                            received += count
                        }
                        return received
                    }
                    let vectored = pieces[0].withUnsafeBytes { a in pieces[1].withUnsafeBytes { b in pieces[2].withUnsafeBytes { c in
                        var vectors = [iovec(iov_base: UnsafeMutableRawPointer(mutating: a.baseAddress), iov_len: a.count),
                                       iovec(iov_base: UnsafeMutableRawPointer(mutating: b.baseAddress), iov_len: b.count),
                                       iovec(iov_base: UnsafeMutableRawPointer(mutating: c.baseAddress), iov_len: c.count)]
                        return writev(pair[0], &vectors, 3)
                    } } }
                    guard vectored == expected, try drain.get() == expected else { failChild("writev wrote \(vectored) of \(expected)") }
                    close(pair[0]); close(pair[1])
                    ticker.stop()
                }
            }
            explainChildFailure(outcome)
        }

        @Test func descriptorsReusedOrSharedKeepTheirOwnRecords() async {
            let outcome = await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
                try inPatchedHub {
                    // A descriptor polled here, closed on another thread (this hub hears nothing),
                    // its number reused: a poll on the new one still wakes.
                    var first: [Int32] = [0, 0]
                    guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &first) == 0 else { failChild("socketpair") }
                    spawn { try sleep(for: .milliseconds(5)); var byte: UInt8 = 1; _ = write(first[1], &byte, 1) }
                    var entry = pollfd(fd: first[0], events: Int16(POLLIN), revents: 0)
                    guard poll(&entry, 1, 2_000) == 1 else { failChild("first poll") }
                    let number = first[0]
                    _ = try ThreadPool.shared.run { close(number) }
                    close(first[1])
                    var second: [Int32] = [0, 0]
                    guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &second) == 0 else { failChild("socketpair") }
                    guard second[0] == number || second[1] == number else { failChild("the number was not reused") }
                    let reused = second[0] == number ? second[0] : second[1]
                    let other = reused == second[0] ? second[1] : second[0]
                    spawn { try sleep(for: .milliseconds(20)); var byte: UInt8 = 2; _ = write(other, &byte, 1) }
                    entry = pollfd(fd: reused, events: Int16(POLLIN), revents: 0)
                    guard poll(&entry, 1, 2_000) == 1 else { failChild("the reused number's poll did not wake") }
                    close(second[0]); close(second[1])

                    // The two ends of a pipe share an inode, not an open file: making one end
                    // blocking leaves the other non-blocking (a full write end says EAGAIN).
                    var ends: [Int32] = [0, 0]
                    guard pipe(&ends) == 0 else { failChild("pipe") }
                    let readCopy = dup(ends[0]), writeCopy = dup(ends[1])   // shared open files
                    _ = fcntl(ends[0], F_SETFL, O_NONBLOCK)
                    _ = fcntl(ends[1], F_SETFL, O_NONBLOCK)
                    guard fcntl(ends[0], F_SETFL, 0) == 0 else { failChild("F_SETFL") }
                    var chunk = [UInt8](repeating: 1, count: 65536)
                    var full = false
                    for _ in 0..<64 where write(writeCopy, &chunk, chunk.count) < 0 {
                        full = errno == EAGAIN
                        break
                    }
                    guard full else { failChild("a write to a full non-blocking pipe did not say EAGAIN") }
                    guard fcntl(readCopy, F_GETFL) & O_NONBLOCK == 0 else { failChild("the read end's copy is not blocking") }
                    for fd in [ends[0], ends[1], readCopy, writeCopy] { close(fd) }

                    // recv(MSG_PEEK | MSG_WAITALL) waits for the whole count and consumes nothing.
                    var pair: [Int32] = [0, 0]
                    guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0 else { failChild("socketpair") }
                    spawn {
                        for piece in ["ab", "cd", "ef"] {
                            try sleep(for: .milliseconds(10))
                            var bytes = Array(piece.utf8)
                            _ = write(pair[1], &bytes, 2)
                        }
                    }
                    var peeked = [UInt8](repeating: 0, count: 6)
                    guard recv(pair[0], &peeked, 6, Int32(MSG_PEEK | MSG_WAITALL)) == 6,
                          String(decoding: peeked, as: UTF8.self) == "abcdef" else { failChild("peek: \(peeked)") }
                    guard read(pair[0], &peeked, 6) == 6 else { failChild("the peek consumed bytes") }
                    close(pair[0]); close(pair[1])

                    // gethostbyname from two greenlets at once: each answer is intact.
                    let lookups = (0..<2).map { _ in
                        spawn { () -> String? in
                            guard let host = gethostbyname("localhost") else { return nil }
                            return String(cString: host.pointee.h_name)
                        }
                    }
                    for lookup in lookups { guard try lookup.get() != nil else { failChild("gethostbyname") } }
                }
            }
            explainChildFailure(outcome)
        }

        @Test func socketTimeoutsAndConnectBehaveAsTheBlockingCalls() async {
            let outcome = await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
                try inPatchedHub {
                    let listener = try Socket.listen(host: "127.0.0.1", port: 0)
                    let port = listener.localAddress.port
                    let server = spawn { () throws -> Void in
                        let (connection, _) = try listener.accept()
                        try sleep(for: .milliseconds(300))
                        try connection.sendAll(Array("late".utf8))
                        try sleep(for: .milliseconds(200))
                        connection.close()
                    }
                    // A plain blocking C-style client: socket, connect, setsockopt, recv.
                    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                    var address = sockaddr_in()
                    address.sin_family = sa_family_t(AF_INET)
                    address.sin_port = in_port_t(UInt16(port).bigEndian)
                    address.sin_addr.s_addr = inet_addr("127.0.0.1")
                    let connected = withUnsafePointer(to: &address) {
                        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                    }
                    guard connected == 0 else { failChild("connect: \(errno)") }
                    guard fcntl(fd, F_GETFL) & O_NONBLOCK == 0 else { failChild("connect left the socket non-blocking") }
                    var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
                    guard setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size)) == 0 else { failChild("setsockopt") }
                    var buffer = [UInt8](repeating: 0, count: 16)
                    let start = monotonicSeconds()
                    let early = recv(fd, &buffer, 16, 0)
                    let waited = monotonicSeconds() - start
                    guard early == -1, errno == EAGAIN else { failChild("SO_RCVTIMEO: recv gave \(early), errno \(errno)") }
                    guard waited >= 0.095, waited < 3 else { failChild("SO_RCVTIMEO expired after \(waited) s") }
                    timeout = timeval(tv_sec: 0, tv_usec: 0)
                    _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                    guard recv(fd, &buffer, 16, Int32(MSG_WAITALL)) == 4 else { failChild("MSG_WAITALL: \(errno)") }
                    guard String(decoding: buffer[..<4], as: UTF8.self) == "late" else { failChild("wrong bytes") }
                    guard read(fd, &buffer, 16) == 0 else { failChild("end of stream") }
                    close(fd)
                    try server.join()
                    // A refused connect reports ECONNREFUSED, as the blocking call does.
                    let refused = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                    address.sin_port = in_port_t(UInt16(try freePort()).bigEndian)
                    let result = withUnsafePointer(to: &address) {
                        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(refused, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                    }
                    guard result == -1, errno == ECONNREFUSED else { failChild("refused connect gave \(result), errno \(errno)") }
                    close(refused)
                    // getaddrinfo goes to the thread pool: twenty lookups at once from greenlets.
                    let lookups = (0..<20).map { _ in
                        spawn { () -> Bool in
                            var result: UnsafeMutablePointer<addrinfo>?
                            guard getaddrinfo("localhost", "80", nil, &result) == 0, result != nil else { return false }
                            freeaddrinfo(result)
                            return true
                        }
                    }
                    guard try lookups.allSatisfy({ try $0.get() }) else { failChild("getaddrinfo") }
                    guard gethostbyname("localhost") != nil else { failChild("gethostbyname") }
                }
            }
            explainChildFailure(outcome)
        }

        @Test func threadsOutsideSproutAndRegularFilesKeepTheRealCalls() async {
            let outcome = await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
                try inPatchedHub {
                    // A ThreadPool thread blocks in read on a pipe, as unpatched: the greenlet that
                    // asked waits (parked), the hub goes on, and the write from here releases it.
                    var fds: [Int32] = [0, 0]
                    guard pipe(&fds) == 0 else { failChild("pipe") }
                    let readEnd = fds[0], writeEnd = fds[1]
                    let ticker = Ticker()
                    let reader = spawn {
                        try ThreadPool.shared.run { () -> Int in
                            var byte: UInt8 = 0
                            return read(readEnd, &byte, 1)
                        }
                    }
                    try sleep(for: .milliseconds(100))
                    var byte: UInt8 = 1
                    _ = write(writeEnd, &byte, 1)
                    guard try reader.get() == 1 else { failChild("the pool thread's read") }
                    // A plain pthread: usleep really sleeps its thread.
                    let started = monotonicSeconds()
                    var thread = pthread_t()
                    _ = pthread_create(&thread, nil, { _ in _ = usleep(50_000); return nil }, nil)
                    _ = try ThreadPool.shared.run { [thread] in pthread_join(thread, nil) }
                    guard monotonicSeconds() - started >= 0.045 else { failChild("the thread's usleep did not sleep") }
                    // A regular file: the real read.
                    let path = "/tmp/sprout-patch-\(getpid())"
                    let file = open(path, O_CREAT | O_RDWR | O_TRUNC, 0o600)
                    guard write(file, "abc", 3) == 3, lseek(file, 0, SEEK_SET) == 0 else { failChild("file write") }
                    var text = [UInt8](repeating: 0, count: 3)
                    guard read(file, &text, 3) == 3 else { failChild("file read") }
                    guard PatchedDescriptorKind(of: file) == .other else { failChild("a regular file was taken for \(PatchedDescriptorKind(of: file))") }
                    close(file)
                    unlink(path)
                    // A bad descriptor: the real EBADF.
                    guard read(9999, &text, 1) == -1, errno == EBADF else { failChild("EBADF") }
                    ticker.stop()
                    guard ticker.ticks > 10 else { failChild("the hub stalled") }
                }
            }
            explainChildFailure(outcome)
        }

        @Test func aCLockHeldAcrossAParkIsReportedInsteadOfDeadlocking() async {
            let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
                try inPatchedHub {
                    let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
                    pthread_mutex_init(mutex, nil)
                    // A "library" that holds its lock while it waits for IO.
                    let first = spawn {
                        pthread_mutex_lock(mutex)
                        usleep(200_000)
                        pthread_mutex_unlock(mutex)
                    }
                    let second = spawn {
                        usleep(10_000)
                        pthread_mutex_lock(mutex)   // would block the thread for ever
                        pthread_mutex_unlock(mutex)
                    }
                    try first.join()
                    try second.join()
                }
            }
            let text = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
            #expect(text.contains("deadlock") && text.contains("one greenlet at a time"), "\(text)")
        }

        @Test func theHooksAreExportedForSharedLibraries() throws {
            // Shared libraries (libpq, Foundation) resolve libc's names to the program's hooks only
            // if the program exports them.
            var path = [CChar](repeating: 0, count: 4096)
            let length = readlink("/proc/self/exe", &path, path.count - 1)
            let executable = String(decoding: path[0..<max(0, length)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let (status, output) = try runSync(["nm", "-D", "--defined-only", executable])
            #expect(status == 0)
            for name in ["read", "write", "recv", "send", "poll", "connect", "close", "fcntl", "usleep", "getaddrinfo"] {
                #expect(output.split(separator: "\n").contains { $0.hasSuffix(" T \(name)") }, "\(name) is not exported")
            }
        }
    }
}

/// Runs a command outside any hub (the test's own thread) and returns status and stdout.
private func runSync(_ arguments: [String]) throws -> (Int32, String) {
    try GreenThread.run { try runCommand(arguments) }
}

/// The descriptors that an epoll instance of this process watches (from /proc's fdinfo).
private func epollWatchedDescriptors() -> Set<Int32> {
    var watched = Set<Int32>()
    var target = [CChar](repeating: 0, count: 256)
    for descriptor in 0..<1024 {
        let length = readlink("/proc/self/fd/\(descriptor)", &target, target.count - 1)
        guard length > 0, String(decoding: target[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self).contains("eventpoll")
        else { continue }
        guard let file = fopen("/proc/self/fdinfo/\(descriptor)", "r") else { continue }
        var line = [CChar](repeating: 0, count: 512)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(cString: line)
            let words = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" })
            for (index, word) in words.enumerated() where word == "tfd:" && index + 1 < words.count {
                if let fd = Int32(words[index + 1]) { watched.insert(fd) }
            }
        }
        fclose(file)
    }
    return watched
}
