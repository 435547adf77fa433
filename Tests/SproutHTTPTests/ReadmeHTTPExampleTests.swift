import Sprout
import SproutHTTP
import Testing

extension HTTPSuites {
    /// README's HTTP example, as written (on a free port), driven by a client.
    @Suite(.timeLimit(.minutes(1))) struct ReadmeHTTPExampleTests {
        @Test func readmeRouterServesItsThreeRoutes() async throws {
            try await green { () throws in
                let router = Router()
                router.get("/") { _ in .text("Hello, World!") }
                router.get("/feed/:user") { request in .text("feed of \(request.parameters["user"]!)") }
                router.post("/echo") { request in .bytes(try request.body.readAll()) }
                let server = HTTPServer(configuration: .init(port: 0), responder: router)
                let serving = spawn { try server.serveForever() }
                try sleep(for: .zero)
                #expect(try exchange(server.port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n").0.text == "Hello, World!")
                #expect(try exchange(server.port, "GET /feed/ann HTTP/1.1\r\nHost: a\r\n\r\n").0.text == "feed of ann")
                #expect(try exchange(server.port, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi").0.text == "hi")
                server.stop()
                try serving.get()
            }
        }
    }
}
