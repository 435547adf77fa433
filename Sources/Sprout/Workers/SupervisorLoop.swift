import CSproutSystem
import Glibc
import Logging

// The master's side of a Supervisor: one loop in the main greenlet that takes commands from
// the signal handlers, reaps, checks heartbeats and forks; and the first steps of a forked
// worker, which never return into the master's code.

extension Supervisor {
    enum StopKind { case graceful, immediate }

    enum Command {
        case stop(StopKind)
        case reload, add, remove, reap
        case forward(Int32)
    }

    /// One worker process as the master tracks it.
    struct WorkerProcess {
        let pid: Int32
        let index: Int
        let generation: Int
        let slot: Int
        let startedAt: UInt64
        /// Asked to stop (reload, fewer workers, stop): its exit is not replaced.
        var retiring = false
        /// When it was asked to stop: past the graceful timeout it is killed.
        var retiredAt: UInt64 = 0
        /// Seen beating since it started: it serves.
        var booted = false
        var killed = false
    }

    /// How often the loop looks at heartbeats and dead workers without being told.
    private var tick: Duration { .milliseconds(100) }

    func superviseUntilStopped() throws {
        while true {
            if let command = try? commands.get(timeout: tick) {
                try handle(command)
                while let more = try? commands.tryGet() { try handle(more) }
            }
            checkHeartbeats()
            reap()
            killOverdueRetirees()
            if stopping != nil {
                if processes.isEmpty {
                    logger.info("supervisor stopped")
                    return
                }
                continue
            }
            if startupFailures >= configuration.maxStartupFailures {
                if abandonFailedReload() { continue }
                logger.critical("workers keep failing at start-up; giving up",
                                metadata: ["failures": "\(startupFailures)", "last": "\(lastFailure)"])
                beginStop(.immediate)
                while !processes.isEmpty {
                    try sleep(for: tick)
                    reap()
                }
                throw SupervisorError.workersFailAtStartup(lastFailure)
            }
            startMissingWorkers()
            retireReplacedWorkers()
        }
    }

    private func handle(_ command: Command) throws {
        switch command {
        case .stop(let kind):
            if stopping == nil || kind == .immediate { beginStop(kind) }
        case .reload:
            guard stopping == nil else { return }
            // Workers of an earlier reload that do not serve yet are superseded at once: a
            // burst of SIGHUPs must not pile up sets of workers.
            for index in processes.indices where !processes[index].booted && !processes[index].retiring {
                retire(index)
            }
            generation += 1
            logger.info("reloading: starting new workers, then draining the old ones", metadata: ["generation": "\(generation)"])
        case .add:
            guard stopping == nil, target < Supervisor.maxWorkers else { return }
            target += 1
            logger.info("one worker more", metadata: ["workers": "\(target)"])
        case .remove:
            guard stopping == nil, target > 1 else { return }
            target -= 1
            if let victim = processes.indices.filter({ !processes[$0].retiring && processes[$0].index >= target }).last {
                retire(victim)
            }
            logger.info("one worker fewer", metadata: ["workers": "\(target)"])
        case .reap:
            break   // done after every command
        case .forward(let signal):
            for process in processes { kill(process.pid, signal) }
        }
    }

    private func beginStop(_ kind: StopKind) {
        stopping = kind
        willStop?()
        willStop = nil
        switch kind {
        case .graceful:
            logger.info("stopping gracefully", metadata: ["workers": "\(processes.count)"])
            for index in processes.indices { retire(index) }
        case .immediate:
            killAll(reason: "immediate stop")
        }
    }

    private func retire(_ index: Int) {
        guard !processes[index].retiring else { return }
        processes[index].retiring = true
        processes[index].retiredAt = sprout_now_ns()
        kill(processes[index].pid, SIGTERM)
    }

    private func killAll(reason: String) {
        var killed = 0
        for index in processes.indices where !processes[index].killed {
            processes[index].killed = true
            processes[index].retiring = true
            kill(processes[index].pid, SIGKILL)
            killed += 1
        }
        if killed > 0 { logger.info("killed the remaining workers", metadata: ["reason": "\(reason)", "killed": "\(killed)"]) }
    }

    /// Workers asked to stop (a stop, a reload, one fewer) that are still draining after the
    /// graceful timeout are killed.
    private func killOverdueRetirees() {
        let now = sprout_now_ns()
        let limit = configuration.gracefulTimeout.nanoseconds
        for index in processes.indices where processes[index].retiring && !processes[index].killed
            && now &- processes[index].retiredAt > limit {
            processes[index].killed = true
            kill(processes[index].pid, SIGKILL)
            logger.warning("worker still draining after the graceful timeout; killed it",
                           metadata: ["worker": "\(processes[index].index)", "pid": "\(processes[index].pid)",
                                      "gracefulTimeout": "\(configuration.gracefulTimeout)"])
        }
    }

    /// New workers keep failing at start-up while older ones still serve: a reload gone
    /// wrong. Keeps the serving generation (and the service) instead of giving up. True if so.
    private func abandonFailedReload() -> Bool {
        guard let serving = processes.filter({ $0.booted && !$0.retiring }).map(\.generation).max(),
              serving < generation else { return false }
        logger.error("reload abandoned: the new workers keep failing at start-up; the old ones go on serving",
                     metadata: ["last": "\(lastFailure)"])
        for index in processes.indices where processes[index].generation > serving { retire(index) }
        generation = serving
        startupFailures = 0
        return true
    }

    /// Collects the workers that ended; the unexpected deaths are replaced by the loop.
    private func reap() {
        var index = 0
        while index < processes.count {
            var status: Int32 = 0
            let rc = sprout_wait_child(processes[index].pid, &status)
            guard rc == processes[index].pid || (rc < 0 && errno == ECHILD) else {
                index += 1
                continue
            }
            var process = processes.remove(at: index)
            if heartbeats.served(slot: process.slot, since: process.startedAt) { process.booted = true }
            let ending = describe(status: status, known: rc >= 0)
            if process.retiring {
                if process.killed || sprout_exit_code(status) != 0 {
                    logger.info("worker stopped", metadata: ["worker": "\(process.index)", "pid": "\(process.pid)", "how": "\(ending)"])
                }
            } else if process.generation < generation {
                logger.error("a worker of the set being replaced ended during the reload",
                             metadata: ["worker": "\(process.index)", "pid": "\(process.pid)", "how": "\(ending)"])
            } else {
                let lived = sprout_now_ns() &- process.startedAt
                // A worker that never beat failed to start, however long it took to fail (it may
                // have hung until the worker timeout); one that served and then died quickly too.
                if !process.booted || lived < configuration.startupGrace.nanoseconds {
                    startupFailures += 1
                    lastFailure = "worker \(process.index) \(ending) \(seconds(lived)) after starting"
                    let backoff = min(Duration.milliseconds(100) * (1 << min(startupFailures - 1, 20)), configuration.maxBackoff)
                    nextStartAllowed = sprout_now_ns() &+ backoff.nanoseconds
                    logger.error("worker failed at start-up",
                                 metadata: ["worker": "\(process.index)", "pid": "\(process.pid)", "how": "\(ending)",
                                            "after": "\(seconds(lived))", "inARow": "\(startupFailures)",
                                            "replacedIn": "\(backoff)"])
                } else {
                    logger.error("worker ended unexpectedly; replacing it",
                                 metadata: ["worker": "\(process.index)", "pid": "\(process.pid)", "how": "\(ending)"])
                }
            }
        }
    }

    private func describe(status: Int32, known: Bool) -> String {
        guard known else { return "ended (status unknown)" }
        let code = sprout_exit_code(status)
        if code >= 0 { return "exited with status \(code)" }
        let signal = sprout_exit_signal(status)
        return "was killed by signal \(signal) (\(String(cString: strsignal(signal))))"
    }

    private func seconds(_ nanoseconds: UInt64) -> String {
        let tenths = nanoseconds / 10_000_000
        return "\(tenths / 100).\(tenths % 100 < 10 ? "0" : "")\(tenths % 100) s"
    }

    /// Notes which workers serve, and kills those whose hub stopped turning.
    private func checkHeartbeats() {
        for index in processes.indices {
            let process = processes[index]
            if !process.booted && heartbeats.served(slot: process.slot, since: process.startedAt) {
                processes[index].booted = true
                startupFailures = 0
            }
            guard let timeout = configuration.workerTimeout, !process.killed else { continue }
            let oldest = heartbeats.oldestBeat(slot: process.slot)
            let now = sprout_now_ns()
            if oldest != HeartbeatTable.gone && now > oldest && now - oldest > timeout.nanoseconds {
                processes[index].killed = true
                kill(process.pid, SIGKILL)
                logger.error("worker timed out: its hub has not turned; killed it",
                             metadata: ["worker": "\(process.index)", "pid": "\(process.pid)",
                                        "silentFor": "\(seconds(now - oldest))", "workerTimeout": "\(timeout)"])
            }
        }
    }

    /// Forks the workers of the current generation that are missing, if the back-off allows.
    /// A fork that fails (`EAGAIN`: the process limit) is retried a second later.
    private func startMissingWorkers() {
        let present = Set(processes.filter { $0.generation == generation && !$0.retiring }.map(\.index))
        for index in 0..<target where !present.contains(index) {
            guard sprout_now_ns() >= nextStartAllowed else { return }
            do {
                try startWorker(index: index)
            } catch {
                logger.error("cannot start a worker; retrying in 1 s", metadata: ["worker": "\(index)", "error": "\(error)"])
                nextStartAllowed = sprout_now_ns() &+ 1_000_000_000
                return
            }
        }
    }

    /// After a reload, drains the old generation once every new worker serves.
    private func retireReplacedWorkers() {
        let current = processes.filter { $0.generation == generation && !$0.retiring }
        guard current.count >= target, current.allSatisfy(\.booted) else { return }
        for index in processes.indices where processes[index].generation < generation && !processes[index].retiring {
            retire(index)
        }
    }

    private func freeSlot() -> Int? {
        let used = Set(processes.map(\.slot))
        return (0..<HeartbeatTable.slotCount).first { !used.contains($0) }
    }

    private func startWorker(index: Int) throws {
        guard let slot = freeSlot() else {
            logger.error("no heartbeat slot free; not starting a worker", metadata: ["worker": "\(index)"])
            return
        }
        let startedAt = sprout_now_ns()
        heartbeats.prepare(slot: slot, now: startedAt)
        let worker = Worker(index: index, generation: generation, slot: slot, heartbeats: heartbeats,
                            beatInterval: beatInterval)
        let pid = try forkProcess(parentDeathSignal: SIGTERM) { [self] in runWorker(worker) }
        processes.append(WorkerProcess(pid: pid, index: index, generation: generation, slot: slot, startedAt: startedAt))
        logger.info("worker started", metadata: ["worker": "\(index)", "pid": "\(pid)", "generation": "\(generation)"])
    }

    /// A quarter of the worker timeout, between 10 ms and 1 s.
    private var beatInterval: Duration {
        let quarter = (configuration.workerTimeout ?? .seconds(4)) / 4
        return min(max(quarter, .milliseconds(10)), .seconds(1))
    }

    /// In the forked child, on its fresh thread: the worker's exit status.
    private func runWorker(_ worker: Worker) -> Int32 {
        // Signals the master handles (or passes on) mean nothing to a worker unless it says so;
        // by default two of them would stop it (SIGTTIN, SIGTTOU) and two would end it
        // (SIGHUP, SIGUSR1). A handler the body sets with onSignal replaces the SIG_IGN.
        for signal in [SIGHUP, SIGTTIN, SIGTTOU, SIGUSR1] { Glibc.signal(signal, SIG_IGN) }
        worker.startHeartbeat(hub: 0)
        do {
            try body(worker)
            return 0
        } catch {
            logger.error("worker failed", metadata: ["worker": "\(worker.index)", "pid": "\(getpid())", "error": "\(error)"])
            return 1
        }
    }
}
