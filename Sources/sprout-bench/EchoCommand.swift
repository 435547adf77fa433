import ArgumentParser
import Sprout

/// `sprout-bench echo --port N`: drives any echo server on loopback.
struct EchoBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "echo",
        abstract: "Drive an external TCP echo server with ping-pong connections and report round trips per second.")

    @Option(help: "Server host.")
    var host = "127.0.0.1"

    @Option(help: "Server port.")
    var port: Int

    @Option(help: "Concurrent connections.")
    var connections = 100

    @Option(help: "Bytes per message.")
    var messageSize = 64

    @Option(help: "Seconds of measurement.")
    var duration = 5.0

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func validate() throws {
        guard (1...65535).contains(port) else { throw ValidationError("--port must be in 1...65535") }
        guard connections >= 1 else { throw ValidationError("--connections must be at least 1") }
        guard messageSize >= 1 else { throw ValidationError("--message-size must be at least 1") }
        guard duration > 0 else { throw ValidationError("--duration must be positive") }
    }

    func run() async throws {
        let load = EchoLoad(host: host, port: port, connections: connections, messageSize: messageSize,
                            duration: .milliseconds(Int64(duration * 1000)))
        let rate = try await GreenThread.run { try load.run() }
        if json {
            print("{\"server\":\"\(host):\(port)\",\"connections\":\(connections),\"message_size\":\(messageSize),"
                  + "\"duration_s\":\(duration),\"round_trips_per_s\":\(BenchmarkRow.format(rate))}")
        } else {
            print("\(host):\(port): \(BenchmarkRow.format(rate)) round trips/s "
                  + "(\(connections) connections, \(messageSize)-byte messages, \(duration) s)")
        }
    }
}
