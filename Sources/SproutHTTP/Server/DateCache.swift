import Glibc

/// The `Date: …\r\n` header line (RFC 9110 §5.6.7 IMF-fixdate), formatted at most once a second.
///
/// One per server, so one per hub thread: no lock. `time()` is a vDSO call, not a syscall.
final class DateCache {
    private var second = -1
    private var line = [UInt8](repeating: 0, count: 37)

    /// The current line, e.g. `Date: Tue, 01 Dec 2026 07:51:00 GMT\r\n`.
    @inline(__always)
    func withLine<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        let now = time(nil)
        if now != second { refresh(now) }
        return line.withUnsafeBytes(body)
    }

    private static let days = Array("SunMonTueWedThuFriSat".utf8)
    private static let months = Array("JanFebMarAprMayJunJulAugSepOctNovDec".utf8)

    private func refresh(_ now: time_t) {
        second = now
        var t = now
        var parts = tm()
        gmtime_r(&t, &parts)
        var bytes = Array("Date: ".utf8)
        let day = Int(parts.tm_wday) * 3
        bytes += DateCache.days[day..<day + 3]
        bytes += Array(", ".utf8)
        func two(_ v: Int32) { bytes.append(UInt8(48 + v / 10)); bytes.append(UInt8(48 + v % 10)) }
        two(parts.tm_mday)
        bytes.append(0x20)
        let month = Int(parts.tm_mon) * 3
        bytes += DateCache.months[month..<month + 3]
        bytes.append(0x20)
        let year = parts.tm_year + 1900
        two(year / 100)
        two(year % 100)
        bytes.append(0x20)
        two(parts.tm_hour)
        bytes.append(0x3A)
        two(parts.tm_min)
        bytes.append(0x3A)
        two(parts.tm_sec)
        bytes += Array(" GMT\r\n".utf8)
        line = bytes
    }
}
