import Glibc

/// Consistent hashing as libmemcached places keys with ketama (and so pylibmc with
/// `behaviors={"ketama": True}`), so that a Sprout service and a Python one share a cache: the
/// same key goes to the same server.
///
/// Points: for each server, `host-i` (or `host:port-i` when the port is not 11211) hashed.
/// Plain ketama (libmemcached 1.0 and later: `MEMCACHED_BEHAVIOR_KETAMA` sets only the
/// distribution) hashes points and keys with libhashkit's default, Jenkins' one-at-a-time, 100
/// points a server; weighted ketama hashes with MD5, 160 points a server scaled by weight, four
/// from each digest. A key goes to the first point at or after its own hash, wrapping around.
struct Ketama {
    enum Mode {
        /// `MEMCACHED_BEHAVIOR_KETAMA`.
        case ketama
        /// `MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED`.
        case weighted
    }

    private var points: [(value: UInt32, server: Int)] = []
    private let mode: Mode

    init(servers: [(host: String, port: Int, weight: Int)], mode: Mode) {
        self.mode = mode
        let totalWeight = servers.reduce(0) { $0 + max(1, $1.weight) }
        for (index, server) in servers.enumerated() {
            var pointsPerServer = 100
            var pointsPerHash = 1
            if mode == .weighted {
                let share = Float(max(1, server.weight)) / Float(totalWeight)
                pointsPerServer = Int((share * 160 / 4 * Float(servers.count) + 0.0000000001).rounded(.down)) * 4
                pointsPerHash = 4
            }
            for pointIndex in 0..<(pointsPerServer / pointsPerHash) {
                let name = server.port == 11211 ? "\(server.host)-\(pointIndex)" : "\(server.host):\(server.port)-\(pointIndex)"
                if mode == .weighted {
                    let digest = MD5.digest(Array(name.utf8))
                    for alignment in 0..<pointsPerHash {
                        points.append((Self.word(digest, alignment), index))
                    }
                } else {
                    points.append((Self.oneAtATime(Array(name.utf8)), index))
                }
            }
        }
        points.sort { $0.value < $1.value }
    }

    /// The index of the server `key` belongs to.
    func server(for key: [UInt8]) -> Int {
        let hash = mode == .weighted ? Self.word(MD5.digest(key), 0) : Self.oneAtATime(key)
        var low = 0
        var high = points.count
        while low < high {
            let middle = (low + high) / 2
            if points[middle].value < hash { low = middle + 1 } else { high = middle }
        }
        return points[low == points.count ? 0 : low].server
    }

    /// Jenkins' one-at-a-time hash as libhashkit computes it (over `char`, so bytes above 0x7F
    /// count sign-extended).
    static func oneAtATime(_ bytes: [UInt8]) -> UInt32 {
        var value: UInt32 = 0
        for byte in bytes {
            value &+= UInt32(bitPattern: Int32(Int8(bitPattern: byte)))
            value &+= value << 10
            value ^= value >> 6
        }
        value &+= value << 3
        value ^= value >> 11
        value &+= value << 15
        return value
    }

    /// Four bytes of an MD5 digest, little-endian, as libmemcached's ketama reads them.
    private static func word(_ digest: [UInt8], _ alignment: Int) -> UInt32 {
        let base = alignment * 4
        return UInt32(digest[base + 3]) << 24 | UInt32(digest[base + 2]) << 16 | UInt32(digest[base + 1]) << 8 | UInt32(digest[base])
    }
}

/// MD5 (RFC 1321), for key placement only (not for security).
enum MD5 {
    private static let shifts: [UInt32] = [7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                                           5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20,
                                           4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                                           6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21]
    private static let table: [UInt32] = (0..<64).map { UInt32(truncatingIfNeeded: Int64(abs(sin(Double($0 + 1))) * 4_294_967_296)) }

    static func digest(_ message: [UInt8]) -> [UInt8] {
        var bytes = message
        let bitLength = UInt64(message.count) &* 8
        bytes.append(0x80)
        while bytes.count % 64 != 56 { bytes.append(0) }
        for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: bitLength >> UInt64(shift))) }
        var a0: UInt32 = 0x67452301
        var b0: UInt32 = 0xefcdab89
        var c0: UInt32 = 0x98badcfe
        var d0: UInt32 = 0x10325476
        for chunk in stride(from: 0, to: bytes.count, by: 64) {
            var words = [UInt32](repeating: 0, count: 16)
            for i in 0..<16 {
                let j = chunk + i * 4
                words[i] = UInt32(bytes[j]) | UInt32(bytes[j + 1]) << 8 | UInt32(bytes[j + 2]) << 16 | UInt32(bytes[j + 3]) << 24
            }
            var a = a0, b = b0, c = c0, d = d0
            for i in 0..<64 {
                var f: UInt32
                var g: Int
                switch i {
                case 0..<16: f = (b & c) | (~b & d); g = i
                case 16..<32: f = (d & b) | (~d & c); g = (5 * i + 1) % 16
                case 32..<48: f = b ^ c ^ d; g = (3 * i + 5) % 16
                default: f = c ^ (b | ~d); g = (7 * i) % 16
                }
                f = f &+ a &+ table[i] &+ words[g]
                a = d
                d = c
                c = b
                b = b &+ (f << shifts[i] | f >> (32 - shifts[i]))
            }
            a0 = a0 &+ a
            b0 = b0 &+ b
            c0 = c0 &+ c
            d0 = d0 &+ d
        }
        var result: [UInt8] = []
        for word in [a0, b0, c0, d0] {
            for shift in stride(from: 0, to: 32, by: 8) { result.append(UInt8(truncatingIfNeeded: word >> UInt32(shift))) }
        }
        return result
    }
}
