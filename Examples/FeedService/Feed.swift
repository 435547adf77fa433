import HTTPTypes
import Sprout
import SproutHTTP

/// Builds one user's feed, written the way the seed's team wrote it: plain blocking calls.
///
/// A feed is the user's record and `pins` pin records, all fetched from the backend over
/// HTTP. In the green model the calls run at once, one greenlet each from a shared `Pool`,
/// so a feed takes about one backend call's time; in the sync model they run one after
/// another, as a single-threaded worker has to.
///
/// The backend's JSON documents are spliced into the answer as they came
/// (`{"user":…,"pins":[…]}`), in every model alike (the gevent peer does the same), so that a
/// comparison measures the serving model rather than a JSON library.
struct FeedBuilder {
    /// The pooled, greenlet-safe client the calls go through.
    let client: HTTPClient
    /// The backend's base URL (`http://host:port`).
    let backend: String
    /// Pin records fetched per feed.
    let pins: Int
    /// Runs the calls in parallel; `nil` makes them one after another.
    let fanOut: Pool?

    /// A backend call that did not answer 200.
    struct BackendFailure: Error, CustomStringConvertible {
        let url: String
        let status: Int
        var description: String { "\(url) answered \(status)" }
    }

    /// The feed of `user` as JSON.
    ///
    /// - Throws: ``BackendFailure`` when a call answers anything but 200; `HTTPClientError`
    ///   when the backend cannot be reached or times out.
    func feed(user: String) throws -> [UInt8] {
        let urls = ["\(backend)/users/\(user)"] + (0..<pins).map { "\(backend)/pins/\(user)-\($0)" }
        let records: [[UInt8]]
        if let fanOut {
            records = try fanOut.map(urls) { try fetch($0) }
        } else {
            records = try urls.map { try fetch($0) }
        }
        var body = Array("{\"user\":".utf8)
        body += records[0]
        body += Array(",\"pins\":[".utf8)
        for (index, pin) in records.dropFirst().enumerated() {
            if index > 0 { body.append(UInt8(ascii: ",")) }
            body += pin
        }
        body += Array("]}".utf8)
        return body
    }

    private func fetch(_ url: String) throws -> [UInt8] {
        let response = try client.get(url)
        guard response.status == .ok else { throw BackendFailure(url: url, status: response.status.code) }
        return response.body
    }

    /// The router of the service: `GET /feed/:user` (user ids of letters, digits, `-` and
    /// `_`, up to 64); a backend failure answers 502.
    static func router(_ builder: FeedBuilder, closeEachConnection: Bool) -> Router {
        let router = Router()
        router.get("/feed/:user") { request in
            let user = request.parameters["user"] ?? ""
            guard !user.isEmpty, user.utf8.count <= 64,
                  user.utf8.allSatisfy({ isIdentifierByte($0) }) else {
                throw HTTPError(.badRequest, message: "the user id must be 1 to 64 letters, digits, - or _")
            }
            var fields: HTTPFields = [.contentType: "application/json"]
            if closeEachConnection { fields[.connection] = "close" }
            do {
                return Response(headerFields: fields, body: .bytes(try builder.feed(user: String(user))))
            } catch is GreenletExit {
                throw GreenletExit()
            } catch {
                // A refused connect, a timeout, a reset, a non-200 answer: the gateway's failure.
                throw HTTPError(.badGateway, message: "backend: \(error)")
            }
        }
        return router
    }
}

/// Letters, digits, `-` and `_`.
func isIdentifierByte(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
         UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"): true
    default: false
    }
}
