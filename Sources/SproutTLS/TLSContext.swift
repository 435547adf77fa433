import COpenSSL
import CSproutTLS

/// An OpenSSL context made from a ``TLSConfiguration``: certificates and keys loaded once,
/// shared by every connection made with it (from any thread).
public final class TLSContext: @unchecked Sendable {
    /// The configuration it was made from.
    public let configuration: TLSConfiguration
    let pointer: OpaquePointer
    /// ALPN names in wire format (length-prefixed), kept alive for OpenSSL's callback.
    private let alpnWire: UnsafeMutablePointer<UInt8>?

    /// Loads certificates and keys and makes the context.
    ///
    /// - Throws: ``TLSError`` of kind ``TLSError/Kind/configuration`` naming the file or
    ///   setting at fault.
    public init(configuration: TLSConfiguration) throws {
        self.configuration = configuration
        let minimum = configuration.minimumVersion == .tls13 ? TLS1_3_VERSION : TLS1_2_VERSION
        guard let context = sprout_tls_context_new(configuration.side == .server ? 1 : 0, minimum) else {
            throw TLSError(.configuration, "SSL_CTX_new failed: \(takeOpenSSLError() ?? "unknown")")
        }
        pointer = context
        let wire = Self.alpnWireFormat(configuration.applicationProtocols)
        if let wire {
            alpnWire = .allocate(capacity: wire.count)
            alpnWire!.initialize(from: wire, count: wire.count)
        } else {
            alpnWire = nil
        }
        try configure()
    }

    deinit {
        SSL_CTX_free(pointer)
        alpnWire?.deallocate()
    }

    private func configure() throws {
        let configuration = configuration
        if configuration.side == .client && configuration.certificateVerification == .full {
            SSL_CTX_set_verify(pointer, SSL_VERIFY_PEER, nil)
            switch configuration.trustRoots {
            case .system:
                guard SSL_CTX_set_default_verify_paths(pointer) == 1 else {
                    throw TLSError(.configuration, "cannot load the system's trust store: \(takeOpenSSLError() ?? "unknown")")
                }
            case .file(let path):
                guard SSL_CTX_load_verify_locations(pointer, path, nil) == 1 else {
                    throw TLSError(.configuration, "cannot load CA certificates from \(path): \(takeOpenSSLError() ?? "unknown")")
                }
            }
        } else {
            SSL_CTX_set_verify(pointer, SSL_VERIFY_NONE, nil)
        }
        if let chain = configuration.certificateChainFile {
            guard SSL_CTX_use_certificate_chain_file(pointer, chain) == 1 else {
                throw TLSError(.configuration, "cannot load the certificate chain \(chain): \(takeOpenSSLError() ?? "unknown")")
            }
        }
        if let key = configuration.privateKeyFile {
            guard SSL_CTX_use_PrivateKey_file(pointer, key, SSL_FILETYPE_PEM) == 1 else {
                throw TLSError(.configuration, "cannot load the private key \(key): \(takeOpenSSLError() ?? "unknown")")
            }
            guard SSL_CTX_check_private_key(pointer) == 1 else {
                throw TLSError(.configuration, "the private key \(key) does not match the certificate: \(takeOpenSSLError() ?? "unknown")")
            }
        }
        if configuration.side == .server && configuration.certificateChainFile == nil {
            throw TLSError(.configuration, "a server needs a certificate chain and a private key")
        }
        if let alpnWire {
            let length = configuration.applicationProtocols.reduce(0) { $0 + 1 + $1.utf8.count }
            if configuration.side == .client {
                // Returns 0 on success, unlike most of OpenSSL.
                guard SSL_CTX_set_alpn_protos(pointer, alpnWire + 2, UInt32(length)) == 0 else {
                    throw TLSError(.configuration, "cannot set ALPN protocols \(configuration.applicationProtocols)")
                }
            } else {
                sprout_tls_context_set_alpn_select(pointer, alpnWire, UInt32(length))
            }
        }
    }

    /// `[total length, 2 bytes big-endian][length, name]…`, or nil for no protocols.
    private static func alpnWireFormat(_ names: [String]) -> [UInt8]? {
        guard !names.isEmpty else { return nil }
        var names16: [UInt8] = []
        for name in names {
            precondition(!name.isEmpty && name.utf8.count < 256, "TLSConfiguration: ALPN names are 1 to 255 bytes (got \(name))")
            names16.append(UInt8(name.utf8.count))
            names16 += Array(name.utf8)
        }
        return [UInt8(names16.count >> 8), UInt8(names16.count & 0xff)] + names16
    }
}

/// The oldest OpenSSL error of this thread in words, emptying the queue; nil if none.
func takeOpenSSLError() -> String? {
    var buffer = [CChar](repeating: 0, count: 256)
    guard sprout_tls_take_error(&buffer, buffer.count) != 0 else { return nil }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
