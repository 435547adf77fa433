// hummingbird-hello --port P [--host H]: GET / -> "Hello, World!" (text/plain), logging at
// level error. Exits 0 on SIGTERM or SIGINT (Hummingbird's graceful shutdown through
// ServiceLifecycle).
import Hummingbird
import Logging

var host = "127.0.0.1"
var port = 8080
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--port":
        guard let value = arguments.popFirst().flatMap({ Int($0) }), (1...65535).contains(value) else {
            fatalError("--port needs a port number")
        }
        port = value
    case "--host":
        guard let value = arguments.popFirst() else { fatalError("--host needs a value") }
        host = value
    default:
        fatalError("usage: hummingbird-hello --port P [--host H]")
    }
}

var logger = Logger(label: "hummingbird-hello")
logger.logLevel = .error

let router = Router()
router.get("/") { _, _ in "Hello, World!" }

let app = Application(
    router: router,
    configuration: .init(address: .hostname(host, port: port), serverName: nil),
    logger: logger
)
try await app.runService()
