// postgres-bridge [--port N] [--pg-host H] [--pg-port P] [--pg-user U] [--pg-database D] [--seed N]
// Serves GET /users/:id, GET /users/count and GET /broken from PostgreSQL; SIGTERM drains.

import Glibc
import Logging
import PostgresBridgeApp
import PostgresNIO
import SproutHTTP
import SproutLifecycle

func option(_ name: String) -> String? {
    let arguments = CommandLine.arguments
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return nil }
    return arguments[index + 1]
}

func number(_ name: String, default value: Int) -> Int {
    guard let text = option(name) else { return value }
    guard let number = Int(text), number >= 0 else {
        let line = "postgres-bridge: \(name) takes a whole number, got '\(text)'\n"
        _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
        exit(2)
    }
    return number
}

let logger = Logger(label: "postgres-bridge")
let client = PostgresClient(
    configuration: .init(host: option("--pg-host") ?? "127.0.0.1", port: number("--pg-port", default: 5432),
                         username: option("--pg-user") ?? "postgres", password: nil,
                         database: option("--pg-database") ?? "postgres", tls: .disable),
    backgroundLogger: logger)
let http = HTTPServerService(configuration: .init(port: number("--port", default: 8080))) {
    UsersApp.router(client: client)
}
let seed = number("--seed", default: 0)
let group = UsersApp.serviceGroup(client: client, http: http, logger: logger)
Task {
    if seed > 0 { try await UsersApp.seed(client, users: seed) }
    print("postgres-bridge: listening on http://127.0.0.1:\(try await http.listeningPort())")
    fflush(nil)
}
try await group.run()
