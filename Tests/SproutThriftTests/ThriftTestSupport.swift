import Follow
import Glibc
import Logging
import Sprout
import SproutTestSupport
import SproutThrift

/// Debian's python3 (where python3-thrift is installed), or the first python3 on the PATH.
let python: String = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3"

/// The Python peer script.
let pythonPeer = packageRoot() + "/Tests/SproutThriftTests/Peers/thrift_peer.py"

/// Python code generated from `idl` ("follow" or "alltypes") by Debian's thrift, in a folder
/// of its own; its path.
func pythonGenerated(_ idl: String) throws -> String {
    let source = idl == "follow" ? packageRoot() + "/Examples/follow.thrift" : packageRoot() + "/Tests/ThriftIDL/alltypes.thrift"
    let directory = "/tmp/sprout-thrift-py-\(getpid())-\(idl)"
    let (status, output) = try runCommand(["/bin/sh", "-c", "mkdir -p \(directory) && thrift --gen py -out \(directory) \(source) 2>&1"])
    guard status == 0 else { throw TestSupportError(description: "thrift --gen py failed: \(output)") }
    return directory
}

/// Every protocol × transport pair, as the CLI and the Python peer name them.
let wirePairs: [(String, String)] = [("binary", "framed"), ("binary", "buffered"), ("compact", "framed"), ("compact", "buffered")]

/// Log lines, kept for assertions (thread-safe: servers may log from any hub).
final class LogLines: Sendable {
    // Sprout's pthread lock: ThreadSanitizer cannot see inside Synchronization.Mutex.
    private let lines = ThreadLock<[String]>([])

    func add(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
    func contains(_ text: String) -> Bool { all.contains { $0.contains(text) } }
    func count(containing text: String) -> Int { all.filter { $0.contains(text) }.count }

    /// A logger whose lines land here.
    func logger(_ label: String = "sprout.thrift.test") -> Logger {
        Logger(label: label) { _ in LineHandler(lines: self) }
    }
}

private struct LineHandler: LogHandler {
    let lines: LogLines
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .debug
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) {
        let fields = (event.metadata ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        lines.add("\(event.level) \(event.message) \(fields)")
    }
}

/// Runs the Python peer as a client to `port` and returns what it printed (stderr included).
func runPythonClient(_ idl: String, protocol: String, transport: String, port: Int, generated: String) throws -> String {
    let child = try ChildProcess(["/bin/sh", "-c", "exec \(python) \(pythonPeer) \(idl) client \(`protocol`) \(transport) \(port) \(generated) 2>&1"])
    let output = try child.readToEnd(timeout: .seconds(60))
    let status = try child.waitForExit(timeout: .seconds(10))
    guard status == 0 else { throw TestSupportError(description: "the Python client exited \(status.map { "\($0)" } ?? "?"): \(output)") }
    return output
}

/// Starts the Python peer as a server on a free port; the process and its port.
func startPythonServer(_ idl: String, protocol: String, transport: String, generated: String) throws -> (ChildProcess, Int) {
    let port = try freePort()
    let log = "/tmp/sprout-thrift-py-server-\(getpid())-\(port).log"
    let child = try ChildProcess([python, pythonPeer, idl, "server", `protocol`, transport, "\(port)", generated],
                                 searchPath: true, standardErrorPath: log)
    try waitForListener(port, process: child, log: log)
    return (child, port)
}

/// Runs `body` with the follow service served in this hub on a free port.
func withFollowServer<T>(_ configuration: ThriftServer.Configuration = .init(port: 0), logs: LogLines = LogLines(),
                         _ body: (ThriftServer) throws -> T) throws -> T {
    var configuration = configuration
    configuration.port = 0
    let server = ThriftServer(configuration: configuration,
                              processor: FollowServiceProcessor(service: InMemoryFollowService()), logger: logs.logger())
    try server.start()
    defer { server.stop(timeout: .seconds(1)) }
    return try body(server)
}

/// A pool of follow-service clients of the server on `port` (framed binary), at most `maxOpen` connections.
func followPool(_ port: Int, maxOpen: Int) -> ThriftClientPool<FollowServiceClient> {
    ThriftClientPool<FollowServiceClient>(host: "127.0.0.1", port: port, configuration: .init(pool: .init(maxOpen: maxOpen)))
}
