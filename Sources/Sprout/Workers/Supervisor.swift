import CSproutSystem
import Glibc
public import Logging

/// Pre-fork worker processes under a master that keeps them alive (gunicorn's arbiter, with
/// its gevent worker as the model): every core of a host serves, and a worker that crashes or
/// hangs is replaced while the others go on.
///
/// Bind the listening socket first, in the master, then run the supervisor; each worker
/// inherits the socket and serves it on a fresh hub:
///
/// ```swift
/// let listener = try Socket.listen(host: "0.0.0.0", port: 8080)
/// let supervisor = Supervisor(configuration: .init(workers: 4)) { worker in
///     let socket = try Socket(fileDescriptor: listener.fileDescriptor)   // the inherited copy
///     socket.isSharedListener = true
///     let server = HTTPServer(configuration: configuration, listener: socket, responder: router)
///     try worker.onStop { server.stop(timeout: .seconds(10)) }
///     try server.serveForever()
/// }
/// supervisor.willStop = { listener.close() }
/// try supervisor.run()
/// ```
///
/// Signals to the master:
/// - `SIGTERM`, `SIGINT`: graceful stop. Every worker gets `SIGTERM` and drains; one still
///   running after ``Configuration/gracefulTimeout`` is killed. ``run()`` then returns.
/// - `SIGQUIT`: stop at once (workers are killed with `SIGKILL`).
/// - `SIGHUP`: reload. A new set of workers is forked; once each has started serving (its
///   first heartbeat), the old ones get `SIGTERM` and drain.
/// - `SIGTTIN` / `SIGTTOU`: one worker more / fewer (never fewer than one).
/// - `SIGUSR1`: passed on to every worker (`sprout serve` prints its greenlets).
///
/// A worker that exits or is killed is replaced. One that dies before it served (its first
/// heartbeat) or within ``Configuration/startupGrace`` of starting counts as failing at
/// start-up: its replacement waits (100 ms, doubling up to ``Configuration/maxBackoff``), and
/// after ``Configuration/maxStartupFailures`` such deaths in a row the supervisor gives up (or,
/// during a reload with the old workers still serving, abandons the reload). A worker whose hub
/// has not turned for ``Configuration/workerTimeout`` is killed (`SIGKILL`) and replaced; one
/// asked to stop that is still draining after ``Configuration/gracefulTimeout`` is killed.
/// Workers get `SIGTERM` if the master dies; `SIGHUP`, `SIGTTIN`, `SIGTTOU` and `SIGUSR1` are
/// ignored in a worker unless its body handles them.
///
/// The master runs on the calling thread's hub, in its main greenlet, and forks from there:
/// start no other threads in the master before ``run()`` (threads do not survive `fork`).
public final class Supervisor {
    /// How many workers, and how they are watched.
    public struct Configuration: Sendable {
        /// Worker processes to keep running.
        public var workers: Int
        /// The longest a worker's hub may go without turning before the worker is killed and
        /// replaced; nil never kills.
        public var workerTimeout: Duration?
        /// How long workers asked to stop may drain before they are killed.
        public var gracefulTimeout: Duration
        /// A worker that dies sooner than this after it was forked failed at start-up.
        public var startupGrace: Duration
        /// Start-up failures in a row after which ``Supervisor/run()`` gives up.
        public var maxStartupFailures: Int
        /// The longest wait before replacing a worker that failed at start-up.
        public var maxBackoff: Duration

        /// - Parameter workers: Default: one per online CPU.
        public init(workers: Int = Supervisor.processorCount, workerTimeout: Duration? = .seconds(30),
                    gracefulTimeout: Duration = .seconds(30), startupGrace: Duration = .seconds(1),
                    maxStartupFailures: Int = 10, maxBackoff: Duration = .seconds(10)) {
            self.workers = workers
            self.workerTimeout = workerTimeout
            self.gracefulTimeout = gracefulTimeout
            self.startupGrace = startupGrace
            self.maxStartupFailures = maxStartupFailures
            self.maxBackoff = maxBackoff
        }
    }

    /// The most workers a supervisor runs (half its heartbeat slots: a reload runs two sets).
    public static let maxWorkers = HeartbeatTable.slotCount / 2

    /// CPUs this process may run on (its affinity mask), at least 1.
    public static var processorCount: Int {
        let count = Int(sprout_usable_cpu_count())
        return count > 0 ? count : max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    }

    /// What the supervisor was created with (``Configuration/workers`` is the starting count).
    public let configuration: Configuration
    /// Where worker starts, deaths, kills and reloads are logged.
    public var logger: Logger
    /// Called in the master when a stop begins (before workers are told): close the master's
    /// copy of the listening socket here, so that once the workers have closed theirs new
    /// connections are refused rather than queued for nobody.
    public var willStop: (() -> Void)?
    /// The pids of the workers running now.
    public var workerPIDs: [Int32] { processes.map(\.pid) }

    let body: (Worker) throws -> Void
    var processes: [WorkerProcess] = []
    var target: Int
    var generation = 0
    var stopping: StopKind?
    var startupFailures = 0
    var nextStartAllowed: UInt64 = 0
    var lastFailure = ""
    var heartbeats: HeartbeatTable!
    let commands = Queue<Command>()

    /// Creates a supervisor that runs `body` in each worker process. `body` runs as the main
    /// greenlet of the worker's fresh hub; when it returns the worker exits with status 0,
    /// and when it throws the error is logged and the worker exits with status 1.
    ///
    /// - Precondition: `configuration.workers` in `1...maxWorkers`, `maxStartupFailures >= 1`,
    ///   `workerTimeout` nil or at least 10 ms, `gracefulTimeout` not negative.
    public init(configuration: Configuration = Configuration(),
                logger: Logger = Logger(label: "sprout.supervisor"),
                worker body: @escaping (Worker) throws -> Void) {
        precondition((1...Supervisor.maxWorkers).contains(configuration.workers),
                     "Supervisor: workers must be in 1...\(Supervisor.maxWorkers) (got \(configuration.workers))")
        precondition(configuration.maxStartupFailures >= 1, "Supervisor: maxStartupFailures must be at least 1")
        precondition(configuration.workerTimeout.map { $0 >= .milliseconds(10) } ?? true,
                     "Supervisor: workerTimeout must be at least 10 ms (nil: never)")
        precondition(configuration.gracefulTimeout >= .zero, "Supervisor: gracefulTimeout must not be negative")
        self.configuration = configuration
        self.logger = logger
        self.body = body
        self.target = configuration.workers
    }

    /// Forks the workers and supervises them until a stop signal has been handled.
    ///
    /// - Throws: ``SupervisorError/notOnMainGreenlet`` from a spawned greenlet (the master
    ///   forks, and only a thread's own stack is a sound place to fork from);
    ///   ``SupervisorError/workersFailAtStartup(_:)`` after too many start-up failures in a
    ///   row (every worker is stopped first); ``SystemError`` if signals, shared memory or
    ///   `fork` fail.
    public func run() throws {
        let hub = Hub.current
        guard hub.current === hub.mainGreenlet else { throw SupervisorError.notOnMainGreenlet }
        heartbeats = try HeartbeatTable()
        var handlers: [SignalHandler] = []
        defer { handlers.forEach { $0.cancel() } }
        let relayed: [(Int32, Command)] = [(SIGTERM, .stop(.graceful)), (SIGINT, .stop(.graceful)),
                                           (SIGQUIT, .stop(.immediate)), (SIGHUP, .reload),
                                           (SIGTTIN, .add), (SIGTTOU, .remove), (SIGCHLD, .reap),
                                           (SIGUSR1, .forward(SIGUSR1))]
        for (signal, command) in relayed {
            handlers.append(try onSignal(signal) { [commands] in try commands.put(command) })
        }
        logger.info("supervisor started", metadata: ["workers": "\(target)", "pid": "\(getpid())"])
        try superviseUntilStopped()
    }
}

/// Why a ``Supervisor`` could not go on.
public enum SupervisorError: Error, Equatable, CustomStringConvertible {
    /// ``Supervisor/run()`` was called from a spawned greenlet.
    case notOnMainGreenlet
    /// Workers kept dying at start-up; the associated text says how the last one ended.
    case workersFailAtStartup(String)

    public var description: String {
        switch self {
        case .notOnMainGreenlet:
            return "Supervisor.run() must be called from a thread's main greenlet (it forks)"
        case .workersFailAtStartup(let last):
            return "workers keep failing at start-up; giving up (last: \(last))"
        }
    }
}
