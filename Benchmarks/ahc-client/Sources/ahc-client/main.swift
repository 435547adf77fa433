// ahc-client URL CONCURRENCY SECONDS [--insecure]
// Prints "requests N seconds S rate R" after a half-second warm-up that is not counted.
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOPosix
import NIOSSL

let arguments = CommandLine.arguments
guard arguments.count >= 4, let concurrency = Int(arguments[2]), let seconds = Double(arguments[3]) else {
    FileHandle.standardError.write("usage: ahc-client URL CONCURRENCY SECONDS [--insecure]\n".data(using: .utf8)!)
    exit(2)
}
let url = arguments[1]
var configuration = HTTPClient.Configuration()
configuration.httpVersion = .http1Only
configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: concurrency)
if arguments.contains("--insecure") {
    var tls = TLSConfiguration.makeClientConfiguration()
    tls.certificateVerification = .none
    configuration.tlsConfiguration = tls
}
// One event loop: the same one core Sprout's client gets.
let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let client = HTTPClient(eventLoopGroupProvider: .shared(group), configuration: configuration)

func run(for duration: Double) async throws -> Int {
    let end = Date().addingTimeInterval(duration)
    return try await withThrowingTaskGroup(of: Int.self) { tasks in
        for _ in 0..<concurrency {
            tasks.addTask {
                var count = 0
                while Date() < end {
                    let response = try await client.execute(HTTPClientRequest(url: url), timeout: .seconds(30))
                    guard response.status == .ok else { throw HTTPClientError.invalidURL }
                    _ = try await response.body.collect(upTo: 1 << 20)
                    count += 1
                }
                return count
            }
        }
        return try await tasks.reduce(0, +)
    }
}

_ = try await run(for: 0.5)
let started = Date()
let requests = try await run(for: seconds)
let elapsed = Date().timeIntervalSince(started)
print("requests \(requests) seconds \(elapsed) rate \(Double(requests) / elapsed)")
try await client.shutdown()
try await group.shutdownGracefully()
