/// A service's server side, as generated (`FooProcessor: TProcessor`): reads one call from
/// `inProtocol`, runs the handler, writes the reply to `outProtocol`.
public protocol TProcessor {
    /// Processes one message.
    /// - Throws: ``TProtocolError`` and ``TTransportError`` from reading or writing, and any
    ///   error the handler threw that the IDL does not declare (``ThriftServer`` answers those
    ///   with a ``TApplicationError``).
    func process(on inProtocol: any TProtocol, outProtocol: any TProtocol) throws
}
