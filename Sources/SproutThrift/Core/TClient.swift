/// The base of generated clients (`FooClient: TClient`): the protocols a call writes to and
/// reads from. A client is one connection's: use it from one greenlet at a time (a
/// ``ThriftClientPool`` hands each greenlet a client of its own).
open class TClient {
    /// What replies are read from.
    public let inProtocol: any TProtocol
    /// What calls are written to.
    public let outProtocol: any TProtocol

    /// A client that reads and writes through one protocol.
    public required init(inoutProtocol: any TProtocol) {
        inProtocol = inoutProtocol
        outProtocol = inoutProtocol
    }

    /// A client with separate input and output protocols.
    public required init(inProtocol: any TProtocol, outProtocol: any TProtocol) {
        self.inProtocol = inProtocol
        self.outProtocol = outProtocol
    }
}

/// A service's server side, as generated (`FooProcessor: TProcessor`): reads one call from
/// `inProtocol`, runs the handler, writes the reply to `outProtocol`.
public protocol TProcessor {
    /// Processes one message.
    /// - Throws: ``TProtocolError`` and ``TTransportError`` from reading or writing, and any
    ///   error the handler threw that the IDL does not declare (``ThriftServer`` answers those
    ///   with a ``TApplicationError``).
    func process(on inProtocol: any TProtocol, outProtocol: any TProtocol) throws
}
