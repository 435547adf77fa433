/// The error a server sends instead of a result (Thrift's `TApplicationException`): an unknown
/// method, a handler that failed with an undeclared error, a request that did not parse.
///
/// It travels as a message of type ``TMessageType/exception``; a generated client throws it
/// from the call. The connection stays usable: the reply was read whole.
public struct TApplicationError: Error, CustomStringConvertible, Hashable, Sendable {
    /// The wire's error codes, with the method named where the code concerns one.
    public enum Code: Sendable, Hashable {
        case unknown
        case unknownMethod(methodName: String?)
        case invalidMessageType
        case wrongMethodName(methodName: String?)
        case badSequenceId
        case missingResult(methodName: String?)
        case internalError
        case protocolError
        case invalidTransform
        case invalidProtocol
        case unsupportedClientType

        /// The code for a wire value (0 and unknown values are ``unknown``).
        public init(thriftErrorCode: Int) {
            switch thriftErrorCode {
            case 1: self = .unknownMethod(methodName: nil)
            case 2: self = .invalidMessageType
            case 3: self = .wrongMethodName(methodName: nil)
            case 4: self = .badSequenceId
            case 5: self = .missingResult(methodName: nil)
            case 6: self = .internalError
            case 7: self = .protocolError
            case 8: self = .invalidTransform
            case 9: self = .invalidProtocol
            case 10: self = .unsupportedClientType
            default: self = .unknown
            }
        }

        /// The wire value (Thrift's `TApplicationException` type numbers).
        public var thriftErrorCode: Int {
            switch self {
            case .unknown: 0
            case .unknownMethod: 1
            case .invalidMessageType: 2
            case .wrongMethodName: 3
            case .badSequenceId: 4
            case .missingResult: 5
            case .internalError: 6
            case .protocolError: 7
            case .invalidTransform: 8
            case .invalidProtocol: 9
            case .unsupportedClientType: 10
            }
        }

        var defaultMessage: String {
            switch self {
            case .unknown: "unknown application error"
            case .unknownMethod(let name): "unknown method" + (name.map { " \($0)" } ?? "")
            case .invalidMessageType: "invalid message type"
            case .wrongMethodName(let name): "wrong method name" + (name.map { " \($0)" } ?? "")
            case .badSequenceId: "bad sequence id"
            case .missingResult(let name): "missing result" + (name.map { " for \($0)" } ?? "")
            case .internalError: "internal error"
            case .protocolError: "protocol error"
            case .invalidTransform: "invalid transform"
            case .invalidProtocol: "invalid protocol"
            case .unsupportedClientType: "unsupported client type"
            }
        }
    }

    /// The error's code.
    public var error: Code
    /// The message sent with it; when nil, one derived from the code is sent.
    public var message: String?

    /// Creates an error with `error` and an optional message.
    public init(error: Code = .unknown, message: String? = nil) {
        self.error = error
        self.message = message
    }

    /// Creates an error from a wire code.
    public init(thriftErrorCode code: Int, message: String? = nil) {
        self.init(error: Code(thriftErrorCode: code), message: message)
    }

    public var description: String { "TApplicationError(\(error.thriftErrorCode)): \(message ?? error.defaultMessage)" }

    public static func == (lhs: TApplicationError, rhs: TApplicationError) -> Bool {
        lhs.error.thriftErrorCode == rhs.error.thriftErrorCode && lhs.message == rhs.message
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(error.thriftErrorCode)
        hasher.combine(message)
    }
}

extension TApplicationError: TSerializable {
    public static var thriftType: TType { .struct }

    /// Reads the exception struct (field 1 the message, field 2 the type).
    /// - Throws: ``TProtocolError``, ``TTransportError``.
    public static func read(from proto: any TProtocol) throws -> TApplicationError {
        var code = 0
        var message: String?
        _ = try proto.readStructBegin()
        while true {
            let (_, type, id) = try proto.readFieldBegin()
            if type == .stop { break }
            switch (id, type) {
            case (1, .string): message = try proto.read() as String
            case (2, .i32): code = Int(try proto.read() as Int32)
            default: try proto.skip(type: type)
            }
            try proto.readFieldEnd()
        }
        try proto.readStructEnd()
        return TApplicationError(thriftErrorCode: code, message: message)
    }

    /// Writes the exception struct.
    /// - Throws: ``TTransportError`` and what the transport throws.
    public func write(to proto: any TProtocol) throws {
        (proto as? any HeaderRecordingProtocol)?.record.sentApplicationError = self
        try proto.writeStructBegin(name: "TApplicationException")
        try proto.writeFieldBegin(name: "message", type: .string, fieldID: 1)
        try proto.write(message ?? error.defaultMessage)
        try proto.writeFieldEnd()
        try proto.writeFieldBegin(name: "type", type: .i32, fieldID: 2)
        try proto.write(Int32(error.thriftErrorCode))
        try proto.writeFieldEnd()
        try proto.writeFieldStop()
        try proto.writeStructEnd()
    }
}
