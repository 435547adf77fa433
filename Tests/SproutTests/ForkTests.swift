import Glibc
import Sprout
import Testing

// Forking is tried in exit tests: each runs in a process of its own, so that no other test's
// thread holds a lock at the moment of the fork.

/// Waits for `pid` without blocking the hub; its raw wait status.
private func waitStatus(_ pid: Int32) throws -> Int32 {
    var status: Int32 = 0
    while waitpid(pid, &status, WNOHANG) == 0 { try sleep(for: .milliseconds(5)) }
    return status
}

/// True if an epoll instance of this process watches descriptor `fd` (from /proc's fdinfo).
private func epollWatches(_ fd: Int32) -> Bool {
    var target = [CChar](repeating: 0, count: 256)
    for descriptor in 0..<1024 {
        let length = readlink("/proc/self/fd/\(descriptor)", &target, target.count - 1)
        guard length > 0, String(decoding: target[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self).contains("eventpoll")
        else { continue }
        let words = readFile("/proc/self/fdinfo/\(descriptor)").split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" })
        for (index, word) in words.enumerated() where word == "tfd:" && index + 1 < words.count {
            if words[index + 1] == "\(fd)" { return true }
        }
    }
    return false
}

private func readFile(_ path: String) -> String {
    guard let file = fopen(path, "r") else { return "" }
    defer { fclose(file) }
    var text = ""
    var buffer = [CChar](repeating: 0, count: 4096)
    while fgets(&buffer, Int32(buffer.count), file) != nil { text += String(cString: buffer) }
    return text
}

private func fail(_ message: String) -> Int32 {
    writeError("fork test child: \(message)\n")
    return 1
}

private func writeError(_ text: String) {
    var text = text
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

@Suite(.timeLimit(.minutes(2)))
struct ForkTests {
    @Test func aForkedChildRunsGreenletsAndSocketsOnAFreshHubWhileTheParentsHubGoesOn() async {
        let result = await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            let outcome = Result { try GreenThread.run { () throws -> String in
                // The parent's hub has a greenlet parked on a listener when it forks.
                let listener = try Socket.listen(port: 0)
                let parentPort = listener.localAddress.port
                let accepted = spawn { () throws -> String in
                    let (connection, _) = try listener.accept()
                    var text = ""
                    var buffer = [UInt8](repeating: 0, count: 256)
                    while true {
                        let count = try buffer.withUnsafeMutableBytes { try connection.recv(into: $0) }
                        if count == 0 { return text }
                        text += String(decoding: buffer[..<count], as: UTF8.self)
                    }
                }
                try sleep(for: .milliseconds(10))
                let parentEpolls = epollDescriptorCount()
                let pid = try forkProcess {
                    do {
                        // The parent's hub's epoll instance did not come along (the one that
                        // watches the listener); this hub's own replaces it (libdispatch may
                        // hold one of its own in both).
                        _ = Hub.current
                        guard epollDescriptorCount() == parentEpolls else {
                            return fail("\(epollDescriptorCount()) epoll descriptors (the parent had \(parentEpolls))")
                        }
                        guard !epollWatches(listener.fileDescriptor) else {
                            return fail("an inherited epoll instance still watches the parent's listener")
                        }
                        let echo = try Socket.listen(port: 0)
                        let port = echo.localAddress.port
                        let server = spawn {
                            let group = Group()
                            while true {
                                let (connection, _) = try echo.accept()
                                group.spawn {
                                    var buffer = [UInt8](repeating: 0, count: 64)
                                    let count = try buffer.withUnsafeMutableBytes { try connection.recv(into: $0) }
                                    try connection.sendAll(Array(buffer[..<count]))
                                    connection.close()
                                }
                            }
                        }
                        let clients = (0..<100).map { index in
                            spawn { () throws -> Bool in
                                let socket = try Socket.connect(host: "127.0.0.1", port: port, timeout: .seconds(5))
                                defer { socket.close() }
                                try sleep(for: .milliseconds(index % 10))
                                try socket.sendAll(Array("n\(index)".utf8))
                                var buffer = [UInt8](repeating: 0, count: 64)
                                let count = try buffer.withUnsafeMutableBytes { try socket.recv(into: $0) }
                                return String(decoding: buffer[..<count], as: UTF8.self) == "n\(index)"
                            }
                        }
                        guard try clients.allSatisfy({ try $0.get() }) else { return fail("an echo came back wrong") }
                        server.kill()
                        guard try ThreadPool.shared.run({ 6 * 7 }) == 42 else { return fail("the thread pool") }
                        let signalled = Event()
                        try onSignal(SIGUSR2) { signalled.set() }
                        kill(getpid(), SIGUSR2)
                        guard try signalled.wait(timeout: .seconds(5)) else { return fail("no signal handled") }
                        let toParent = try Socket.connect(host: "127.0.0.1", port: parentPort, timeout: .seconds(5))
                        try toParent.sendAll(Array("hello from the child".utf8))
                        toParent.close()
                        return 0
                    } catch {
                        return fail("\(error)")
                    }
                }
                let status = try waitStatus(pid)
                guard status == 0 else { return "the child ended with wait status \(status)" }
                guard try accepted.join(timeout: .seconds(5)) else { return "the parent's accept got nothing" }
                return try accepted.get()
            } }
            guard case .success("hello from the child") = outcome else {
                writeError("parent: \(outcome)\n")
                exit(1)
            }
        }
        let stderr = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(!stderr.contains("fork test"), "\(stderr)")
    }

    @Test func aSocketOfTheParentsHubIsRefusedInTheChild() async {
        await #expect(processExitsWith: .success) {
            let status = try? GreenThread.run { () throws -> Int32 in
                let listener = try Socket.listen(port: 0)
                let pid = try forkProcess {
                    do {
                        _ = try listener.accept()
                        return fail("accepted on the parent's socket")
                    } catch let error as HubError {
                        return error.description.contains("thread") ? 0 : fail("\(error)")
                    } catch {
                        return fail("\(error)")
                    }
                }
                return try waitStatus(pid)
            }
            exit(status == 0 ? 0 : 1)
        }
    }

    @Test func aSupervisorRunsItsWorkersAndStopsThemOnSIGTERM() async {
        await #expect(processExitsWith: .success) {
            let seen = try? GreenThread.run { () throws -> String in
                var fds: [Int32] = [0, 0]
                guard pipe(&fds) == 0 else { return "pipe" }
                let supervisor = Supervisor(configuration: .init(workers: 2, workerTimeout: .seconds(5))) { worker in
                    let stop = Event()
                    try worker.onStop { stop.set() }
                    var line = "worker \(worker.index)\n"
                    line.withUTF8 { _ = write(fds[1], $0.baseAddress, $0.count) }
                    try stop.wait()
                }
                spawn {
                    try sleep(for: .milliseconds(500))
                    kill(getpid(), SIGTERM)
                }
                try supervisor.run()
                close(fds[1])
                var text = ""
                var buffer = [UInt8](repeating: 0, count: 256)
                while true {
                    let count = read(fds[0], &buffer, buffer.count)
                    if count <= 0 { break }
                    text += String(decoding: buffer[..<count], as: UTF8.self)
                }
                return text.split(separator: "\n").sorted().joined(separator: ",")
            }
            exit(seen == "worker 0,worker 1" && Supervisor.processorCount >= 1 ? 0 : 1)
        }
    }

    @Test func aSupervisorGivesUpOnWorkersThatFailAtStartup() async {
        await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            struct Broken: Error {}
            let outcome = Result { try GreenThread.run {
                let supervisor = Supervisor(configuration: .init(workers: 1, maxStartupFailures: 3,
                                                                 maxBackoff: .milliseconds(200))) { _ in throw Broken() }
                try supervisor.run()
            } }
            guard case .failure(let error as SupervisorError) = outcome, case .workersFailAtStartup(let last) = error,
                  last.contains("exited with status 1") else {
                writeError("outcome: \(outcome)\n")
                exit(1)
            }
        }
    }
}
