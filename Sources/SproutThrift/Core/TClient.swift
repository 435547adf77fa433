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
