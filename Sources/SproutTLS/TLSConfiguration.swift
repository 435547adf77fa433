/// What a ``TLSContext`` does: its side, how it checks the peer, its certificate and ALPN.
///
/// ```swift
/// let client = try TLSContext(configuration: .client())                 // system trust store
/// let server = try TLSContext(configuration: .server(certificateChainFile: "cert.pem",
///                                                    privateKeyFile: "key.pem"))
/// ```
public struct TLSConfiguration: Sendable {
    /// Which end of the handshake a context plays.
    public enum Side: Sendable {
        /// Starts the handshake and checks the server.
        case client
        /// Answers handshakes with its certificate.
        case server
    }

    /// How the peer's certificate is checked.
    public enum CertificateVerification: Sendable {
        /// The chain must lead to a trusted root, be valid now, and (clients) name the host
        /// that was asked for. The default of clients.
        case full
        /// No check at all: anyone in the middle can read and change the traffic. For tests
        /// and hosts reached by address on a trusted network only (`insecure` in the CLI).
        case none
    }

    /// The certificates a chain must lead to.
    public enum TrustRoots: Sendable {
        /// The system's store (Debian: `/etc/ssl/certs`, from the `ca-certificates` package).
        case system
        /// The PEM certificates in one file (a private CA).
        case file(String)
    }

    /// The oldest protocol version a context accepts.
    public enum Version: Sendable {
        /// TLS 1.2 and later.
        case tls12
        /// TLS 1.3 only.
        case tls13
    }

    /// Client or server.
    public var side: Side
    /// How the peer's certificate is checked (servers ask clients for none).
    public var certificateVerification: CertificateVerification
    /// The roots a verified chain must lead to.
    public var trustRoots: TrustRoots
    /// The PEM file of this side's certificate followed by its intermediates (servers).
    public var certificateChainFile: String?
    /// The PEM file of the private key of ``certificateChainFile``.
    public var privateKeyFile: String?
    /// ALPN names, most preferred first (`["http/1.1"]`); empty sends or selects none.
    public var applicationProtocols: [String]
    /// The oldest version accepted; TLS 1.2 by default.
    public var minimumVersion: Version
    /// The longest a handshake may take, from its first byte to its last.
    public var handshakeTimeout: Duration

    /// Creates a configuration; see the static helpers for the usual ones.
    public init(side: Side, certificateVerification: CertificateVerification, trustRoots: TrustRoots = .system,
                certificateChainFile: String? = nil, privateKeyFile: String? = nil,
                applicationProtocols: [String] = [], minimumVersion: Version = .tls12,
                handshakeTimeout: Duration = .seconds(10)) {
        self.side = side
        self.certificateVerification = certificateVerification
        self.trustRoots = trustRoots
        self.certificateChainFile = certificateChainFile
        self.privateKeyFile = privateKeyFile
        self.applicationProtocols = applicationProtocols
        self.minimumVersion = minimumVersion
        self.handshakeTimeout = handshakeTimeout
    }

    /// A client that verifies servers against `trustRoots` (the system's store by default).
    public static func client(trustRoots: TrustRoots = .system, applicationProtocols: [String] = []) -> TLSConfiguration {
        TLSConfiguration(side: .client, certificateVerification: .full, trustRoots: trustRoots,
                         applicationProtocols: applicationProtocols)
    }

    /// A client that accepts any certificate; see ``CertificateVerification/none``.
    public static func insecureClient(applicationProtocols: [String] = []) -> TLSConfiguration {
        TLSConfiguration(side: .client, certificateVerification: .none, applicationProtocols: applicationProtocols)
    }

    /// A server presenting the certificate chain and key in these PEM files.
    public static func server(certificateChainFile: String, privateKeyFile: String,
                              applicationProtocols: [String] = [], handshakeTimeout: Duration = .seconds(10)) -> TLSConfiguration {
        TLSConfiguration(side: .server, certificateVerification: .none, certificateChainFile: certificateChainFile,
                         privateKeyFile: privateKeyFile, applicationProtocols: applicationProtocols,
                         handshakeTimeout: handshakeTimeout)
    }
}
