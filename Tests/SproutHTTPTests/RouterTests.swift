import HTTPTypes
import Sprout
import SproutHTTP
import Testing

extension HTTPSuites {
    /// The router, through a server on a free port.
    @Suite(.timeLimit(.minutes(1))) struct RouterTests {
        /// Sends `method path` to a server answering with ``sampleRouter()``.
        func route(_ method: HTTPRequest.Method, _ path: String) throws -> (status: Int, text: String, headers: HTTPFields) {
            try GreenThread.run {
                let router = HTTPSuites.RouterTests.sampleRouter()
                var result: (Int, String, HTTPFields) = (0, "", [:])
                let server = HTTPServer(configuration: testConfiguration(), responder: router)
                try server.start()
                defer { server.stop() }
                let client = try RawClient(port: server.port)
                try client.send("\(method.rawValue) \(path) HTTP/1.1\r\nHost: a\r\n\r\n")
                let response = try client.readResponse(forHead: method == .head)
                var fields = HTTPFields()
                for header in response.headers { fields.append(HTTPField(name: HTTPField.Name(header.name)!, value: header.value)) }
                result = (response.status, response.text, fields)
                return result
            }
        }

        static func sampleRouter() -> Router {
            let router = Router()
            router.get("/") { _ in .text("root") }
            router.get("/feed/:user") { request in .text("feed \(request.parameters["user"] ?? "?")") }
            router.get("/feed/:user/pins/:pin") { request in
                .text("pin \(request.parameters["pin"]!) of \(request.parameters.decoded("user")!)")
            }
            router.get("/static/*") { request in .text("file \(request.parameters["*"] ?? "")") }
            router.post("/feed/:user") { _ in .text("posted") }
            router.get("/query") { request in
                let query = request.query
                return .text("\(query["a"] ?? "-")|\(query["b"] ?? "-")|\(query.values(for: "c").joined(separator: ","))")
            }
            return router
        }

        @Test func staticAndParameterisedRoutes() throws {
            #expect(try route(.get, "/").text == "root")
            #expect(try route(.get, "/feed/ann").text == "feed ann")
            #expect(try route(.get, "/feed/a%20b/pins/7").text == "pin 7 of a b")
            #expect(try route(.get, "/feed/ann/").status == 404)
            #expect(try route(.get, "/feed/").status == 404)
            #expect(try route(.get, "/feed").status == 404)
        }

        @Test func trailingWildcardCapturesTheRest() throws {
            #expect(try route(.get, "/static/css/site.css").text == "file css/site.css")
            #expect(try route(.get, "/static/").text == "file ")
            #expect(try route(.get, "/staticx").status == 404)
        }

        @Test func methodsGive405With501ForUnknownOnes() throws {
            let wrong = try route(.delete, "/feed/ann")
            #expect(wrong.status == 405)
            #expect(wrong.headers[.allow] == "GET, POST, HEAD")
            #expect(try route(.post, "/feed/ann").text == "posted")
            #expect(try route(HTTPRequest.Method("BREW")!, "/").status == 501)
            #expect(try route(.head, "/feed/ann").status == 200)
        }

        @Test func queryParametersAreDecoded() throws {
            #expect(try route(.get, "/query?a=1+2&b=%41%42&c=x&c=y&junk").text == "1 2|AB|x,y")
            #expect(try route(.get, "/query").text == "-|-|")
            #expect(try route(.get, "/query?a=%zz").text == "%zz|-|")
        }
    }
}

extension HTTPSuites {
    @Suite(.timeLimit(.minutes(1)))
    struct ConnectionStackSizeTests {
        @Test func handlersRunOnTheConfiguredStackSize() async throws {
            try await green { () throws in
                let router = Router()
                router.get("/stack") { _ in .text("\(Greenlet.current.stackSize ?? 0)") }
                try withServer(testConfiguration { $0.connectionStackSize = 1 << 20 }, responder: router) { port, _ throws in
                    #expect(try exchange(port, "GET /stack HTTP/1.1\r\nHost: a\r\n\r\n").0.text == "\(1 << 20)")
                }
            }
        }
    }
}
