public import Logging
public import PostgresNIO
public import ServiceLifecycle
import Sprout
import SproutAsync
public import SproutHTTP
public import SproutLifecycle
public import UnixSignals

/// The example's application: users kept in PostgreSQL, served by a Sprout router whose
/// handlers are plain blocking code. Each query crosses into postgres-nio with `awaitAsync`:
/// only the handler's greenlet waits, the hub serves the other connections meanwhile.
public enum UsersApp {
    /// The table the example reads.
    public static let table = "bridge_users"

    /// The routes:
    /// - `GET /users/:id`: the user as JSON, 404 if there is none, 400 for an id that is not a number;
    /// - `GET /users/count`: how many users there are;
    /// - `GET /broken`: a query PostgreSQL rejects, whose error reaches the handler unchanged
    ///   (answered 500 by the server, logged with the route).
    public static func router(client: PostgresClient) -> Router {
        let router = Router()
        router.get("/users/count") { _ in
            let count = try awaitAsync { () async throws -> Int in
                let rows = try await client.query("SELECT count(*) FROM bridge_users")
                for try await count in rows.decode(Int.self) { return count }
                return 0
            }
            return .text("\(count)\n")
        }
        router.get("/users/:id") { request in
            guard let id = request.parameters["id"].flatMap({ Int($0) }) else {
                throw HTTPError(.badRequest, message: "the id must be a number")
            }
            let name = try awaitAsync { () async throws -> String? in
                let rows = try await client.query("SELECT name FROM bridge_users WHERE id = \(id)")
                for try await name in rows.decode(String.self) { return name }
                return nil
            }
            guard let name else { throw HTTPError(.notFound) }
            return Response(status: .ok, headerFields: [.contentType: "application/json"],
                            body: .string("{\"id\":\(id),\"name\":\"\(name)\"}"))
        }
        router.get("/broken") { _ in
            do {
                _ = try awaitAsync { try await client.query("SELECT no_such_column FROM bridge_users") }
            } catch let error as PSQLError {
                // The driver's own error type, unchanged by the crossing.
                throw HTTPError(.internalServerError, message: "PostgreSQL said \(error.serverInfo?[.sqlState] ?? "?")")
            }
            return .text("unreachable\n")
        }
        return router
    }

    /// Creates the table afresh with `count` users named `user-<id>`.
    public static func seed(_ client: PostgresClient, users count: Int) async throws {
        try await client.query("DROP TABLE IF EXISTS bridge_users")
        try await client.query("CREATE TABLE bridge_users (id integer PRIMARY KEY, name text NOT NULL)")
        try await client.query("INSERT INTO bridge_users SELECT i, 'user-' || i FROM generate_series(1, \(count)) AS i")
    }

    /// PostgreSQL's client and the Sprout server side by side in one group: `SIGTERM` (when
    /// `signals` has it) drains the server's in-flight requests, then the client's connections close.
    public static func serviceGroup(client: PostgresClient, http: HTTPServerService,
                                    signals: [UnixSignal] = [.sigterm, .sigint], logger: Logger) -> ServiceGroup {
        // The server first in shutdown order: services stop last-to-first, so the database
        // client outlives the requests that use it.
        ServiceGroup(configuration: .init(
            services: [.init(service: client), .init(service: http)],
            gracefulShutdownSignals: signals,
            logger: logger))
    }
}
