import CEchoPeer
import Glibc

/// The C epoll echo reference server, running on an OS thread of this process.
final class CEchoServer: @unchecked Sendable {
    let port: Int
    private let listenFD: Int32
    private let stopFD: Int32
    private let stopWriteFD: Int32
    private var thread = pthread_t()

    struct StartError: Error, CustomStringConvertible {
        let description: String
    }

    init() throws {
        listenFD = c_echo_listen(0)
        guard listenFD >= 0 else { throw StartError(description: "c_echo_listen: errno \(errno)") }
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw StartError(description: "pipe: errno \(errno)") }
        stopFD = fds[0]
        stopWriteFD = fds[1]
        port = Int(c_echo_port(listenFD))
        let context = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&thread, nil, { arg in
            let server = Unmanaged<CEchoServer>.fromOpaque(arg!).takeRetainedValue()
            _ = c_echo_serve(server.listenFD, server.stopFD)
            return nil
        }, context)
        guard rc == 0 else {
            Unmanaged<CEchoServer>.fromOpaque(context).release()
            throw StartError(description: "pthread_create: \(rc)")
        }
    }

    /// Stops the server thread and waits for it.
    func stop() {
        var one: UInt8 = 1
        _ = write(stopWriteFD, &one, 1)
        pthread_join(thread, nil)
        close(listenFD)
        close(stopFD)
        close(stopWriteFD)
    }
}
