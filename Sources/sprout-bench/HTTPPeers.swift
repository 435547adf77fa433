import Glibc

/// What a server is started for: the wrk runs, or the idle-connection memory figures (for
/// which `sprout serve` keeps idle connections long enough and admits all 10,000 at once).
enum HTTPRunPurpose {
    case throughput, memory
}

/// One server that `sprout-bench http` measures: how to start it on a port.
struct HTTPServerUnderTest {
    let name: String
    /// Whether `idle_conn_rss` and `rss_after_spike` are measured for it.
    let measuresMemory: Bool
    /// One line on what runs, for the progress output.
    let summary: String
    /// The CPUs it is pinned to (a `taskset -c` list).
    var cpus = String(HTTPBench.serverCPU)
    /// The command (before `taskset -c 0`) serving GET / on 127.0.0.1:port; may write
    /// files (nginx's configuration) under `work`.
    let command: (_ port: Int, _ work: String, _ purpose: HTTPRunPurpose) throws -> [String]
}

/// Finds and, where needed, builds the four servers. A peer that cannot be made ready is
/// returned as a skip reason instead.
struct HTTPPeers {
    let root: String
    let work: String
    let skipBuild: Bool

    /// The package root: the nearest directory above the sprout-bench executable holding
    /// Benchmarks/hummingbird-hello/Package.swift ($SPROUT_ROOT wins; the current directory is
    /// the fallback).
    static func packageRoot() -> String {
        if let explicit = getenv("SPROUT_ROOT") { return String(cString: explicit) }
        var directory = executableDirectory()
        while !directory.isEmpty && directory != "/" {
            if fileExists(directory + "/Benchmarks/hummingbird-hello/Package.swift") { return directory }
            guard let slash = directory.lastIndex(of: "/") else { break }
            directory = String(directory[..<slash])
        }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil, let end = buffer.firstIndex(of: 0) else { return "." }
        return String(decoding: buffer[..<end].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    // MARK: sprout

    /// `sprout serve` in one process (`--workers 0`), or with `processArguments` (workers,
    /// threads) on `cpus`.
    func sprout(name: String = "sprout", processArguments: [String] = ["--workers", "0"],
                cpus: String = String(HTTPBench.serverCPU)) -> Result<HTTPServerUnderTest, BenchFailure> {
        let binary = executableDirectory() + "/sprout"
        guard isExecutable(binary) else {
            return .failure(BenchFailure("\(binary) not found: build it with `swift build -c release` (sprout-bench expects it next to itself)"))
        }
        return .success(HTTPServerUnderTest(
            name: name, measuresMemory: name == "sprout", summary: "\(binary) serve \(processArguments.joined(separator: " "))",
            cpus: cpus,
            command: { port, _, purpose in
                var arguments = [binary, "serve", "--host", "127.0.0.1", "--port", String(port)] + processArguments
                if purpose == .memory {
                    // 10,000 idle connections must all stay open while they are counted: the
                    // default admits exactly 10,000 and closes connections idle for 10 s.
                    arguments += ["--max-connections", "20000", "--idle-timeout", "120"]
                }
                return arguments
            }))
    }

    // MARK: nginx

    /// nginx with `workers` worker processes on `cpus`.
    func nginx(name: String = "nginx", workers: Int = 1,
               cpus: String = String(HTTPBench.serverCPU)) -> Result<HTTPServerUnderTest, BenchFailure> {
        guard let binary = isExecutable("/usr/sbin/nginx") ? "/usr/sbin/nginx" : findInPath("nginx") else {
            return .failure(BenchFailure("nginx not found (apt-get install nginx-light)"))
        }
        // Temp-path directives exist only for the modules compiled in.
        let versionLog = work + "/nginx-V.log"
        _ = try? runToCompletion(name: "nginx -V", [binary, "-V"], logPath: versionLog, timeout: 10)
        let build = readWholeFile(versionLog) ?? ""
        let optionalModules = ["fastcgi", "uwsgi", "scgi"].filter { !build.contains("--without-http_\($0)_module") }
        let version = build.split(separator: "\n").first { $0.hasPrefix("nginx version:") }
            .map { String($0.dropFirst("nginx version: ".count)) } ?? "nginx"
        return .success(HTTPServerUnderTest(
            name: name, measuresMemory: name == "nginx", summary: "\(version), worker_processes \(workers)", cpus: cpus,
            command: { port, work, _ in
                let prefix = "\(work)/nginx-\(port)"
                guard mkdir(prefix, 0o755) == 0 || errno == EEXIST else {
                    throw BenchFailure("cannot create \(prefix): \(String(cString: strerror(errno)))")
                }
                var temps = ["client_body", "proxy"] + optionalModules
                if build.contains("--without-http_proxy_module") { temps.removeAll { $0 == "proxy" } }
                let tempLines = temps.map { "    \($0)_temp_path \(prefix)/\($0);" }.joined(separator: "\n")
                let configuration = """
                    worker_processes \(workers);
                    daemon off;
                    pid \(prefix)/nginx.pid;
                    error_log stderr;
                    events { worker_connections 20000; }
                    http {
                        access_log off;
                    \(tempLines)
                        server {
                            listen 127.0.0.1:\(port);
                            location / { return 200 "Hello, World!"; }
                        }
                    }

                    """
                try writeWholeFile(prefix + "/nginx.conf", configuration)
                return [binary, "-p", prefix + "/", "-c", prefix + "/nginx.conf"]
            }))
    }

    // MARK: Hummingbird

    /// Builds Benchmarks/hummingbird-hello into .build-hummingbird/ unless the binary is newer
    /// than every source file (or --skip-build).
    func hummingbird() -> Result<HTTPServerUnderTest, BenchFailure> {
        let package = root + "/Benchmarks/hummingbird-hello"
        let scratch = root + "/.build-hummingbird"
        let binary = scratch + "/release/hummingbird-hello"
        guard fileExists(package + "/Package.swift") else {
            return .failure(BenchFailure("\(package)/Package.swift not found"))
        }
        let sources = [package + "/Package.swift"] + filesUnder(package + "/Sources")
        let newestSource = sources.compactMap(modificationTime).max() ?? 0
        let upToDate = (modificationTime(binary) ?? -1) > newestSource
        if !upToDate {
            if skipBuild {
                guard isExecutable(binary) else {
                    return .failure(BenchFailure("\(binary) not built and --skip-build given"))
                }
                note("note: \(binary) is older than its sources; using it anyway (--skip-build)")
            } else {
                note("building hummingbird-hello: swift build -c release --package-path \(package) --scratch-path \(scratch) (several minutes the first time)")
                let log = work + "/hummingbird-build.log"
                let started = monotonicSeconds()
                let status: Int32?
                do {
                    status = try runToCompletion(
                        name: "swift build (hummingbird-hello)",
                        ["swift", "build", "-c", "release", "--package-path", package, "--scratch-path", scratch],
                        logPath: log, timeout: 3600)
                } catch {
                    return .failure(error as? BenchFailure ?? BenchFailure("\(error)"))
                }
                guard let status, exitedNormally(status), exitStatusCode(status) == 0, isExecutable(binary) else {
                    let tail = (readWholeFile(log) ?? "").split(separator: "\n").suffix(15).joined(separator: "\n    ")
                    return .failure(BenchFailure("the hummingbird-hello build failed; its last lines:\n    \(tail)"))
                }
                note("  built in \(Int(monotonicSeconds() - started)) s")
            }
        }
        return .success(HTTPServerUnderTest(
            name: "hummingbird", measuresMemory: false, summary: binary,
            command: { port, _, _ in [binary, "--host", "127.0.0.1", "--port", String(port)] }))
    }

    // MARK: gevent

    /// gevent's pywsgi in the virtualenv .build-bench-venv/ (shared with scripts/bench-echo;
    /// created and gevent pip-installed here when missing, unless --skip-build).
    func gevent() -> Result<HTTPServerUnderTest, BenchFailure> {
        let script = root + "/Benchmarks/peers/gevent_http.py"
        guard fileExists(script) else { return .failure(BenchFailure("\(script) not found")) }
        switch geventPython() {
        case .failure(let reason): return .failure(reason)
        case .success(let (python, version)):
            return .success(HTTPServerUnderTest(
                name: "gevent", measuresMemory: false, summary: "gevent \(version) pywsgi, \(python)",
                command: { port, _, _ in [python, script, String(port)] }))
        }
    }

    /// The Python of the virtualenv .build-bench-venv/ ($BENCH_VENV wins) and gevent's version
    /// there, after creating it and pip-installing gevent and `packages` where missing (unless
    /// --skip-build).
    func geventPython(packages: [String] = []) -> Result<(python: String, version: String), BenchFailure> {
        let venv = getenv("BENCH_VENV").map { String(cString: $0) } ?? root + "/.build-bench-venv"
        let python = venv + "/bin/python"
        let log = work + "/gevent-setup.log"
        let imports = (["gevent"] + packages).joined(separator: ", ")
        func importsGevent() -> String? {
            guard isExecutable(python),
                  let status = try? runToCompletion(
                      name: "python", [python, "-c", "import \(imports); print(gevent.__version__)"],
                      logPath: log, timeout: 60),
                  exitedNormally(status), exitStatusCode(status) == 0 else { return nil }
            return (readWholeFile(log) ?? "").split(separator: "\n").last.map(String.init)
        }
        func lastLine() -> String {
            (readWholeFile(log) ?? "").split(separator: "\n").last.map(String.init) ?? "(no output)"
        }
        if let version = importsGevent() { return .success((python, version)) }
        guard !skipBuild else { return .failure(BenchFailure("\(imports) not installed in \(venv) and --skip-build given")) }
        let system = getenv("PYTHON").map { String(cString: $0) } ?? "python3"
        note("setting up \(venv) with \(imports) (pip install)")
        var steps: [(String, [String])] = []
        if !isExecutable(python) { steps.append(("python -m venv", [system, "-m", "venv", venv])) }
        steps.append(("pip install \(imports)", [python, "-m", "pip", "install", "--disable-pip-version-check", "--quiet",
                                                  "gevent"] + packages))
        for (step, arguments) in steps {
            let status = try? runToCompletion(name: step, arguments, logPath: log, timeout: 900)
            guard let status, exitedNormally(status), exitStatusCode(status) == 0 else {
                return .failure(BenchFailure("gevent not available: \(step) failed: \(lastLine())"))
            }
        }
        guard let version = importsGevent() else {
            return .failure(BenchFailure("gevent not available: it does not import: \(lastLine())"))
        }
        return .success((python, version))
    }
}
