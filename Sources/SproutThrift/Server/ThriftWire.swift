/// Which protocol a server or client speaks.
public enum ThriftProtocolKind: String, Sendable, CaseIterable {
    /// ``TBinaryProtocol`` (strict header written, both read).
    case binary
    /// ``TCompactProtocol``.
    case compact
}

/// Which transport a server or client speaks.
public enum ThriftTransportKind: String, Sendable, CaseIterable {
    /// ``TFramedTransport``: what non-blocking servers speak.
    case framed
    /// The unframed ``TSocketTransport``.
    case buffered
}

/// One connection's transport and protocol, made the same way by servers and clients.
struct ThriftWire {
    let base: TSocketTransport
    let framed: TFramedTransport?
    let proto: any HeaderRecordingProtocol

    init(socket: Socket, protocolKind: ThriftProtocolKind, transportKind: ThriftTransportKind,
         maxFrameSize: Int, strictRead: Bool = false) {
        // Request/response: a short read means the kernel has nothing more (saves an EAGAIN
        // read per message); a misbehaving peer only delays itself.
        socket.shortReadsDrain = true
        base = TSocketTransport(socket: socket, maxMessageSize: maxFrameSize)
        framed = transportKind == .framed ? TFramedTransport(base: base, maxFrameSize: maxFrameSize) : nil
        let transport: any TTransport = framed ?? base
        switch protocolKind {
        case .binary: proto = TBinaryProtocol(on: transport, strictRead: strictRead)
        case .compact: proto = TCompactProtocol(on: transport)
        }
    }

    func discardPendingWrites() {
        if let framed { framed.discardPendingWrites() } else { base.discardPendingWrites() }
    }
}

import Sprout
