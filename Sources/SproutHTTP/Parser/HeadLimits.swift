/// Size limits on a request head; exceeding one is answered before the head is complete.
public struct HeadLimits: Sendable, Equatable {
    /// Longest request line in bytes, CRLF excluded (414 beyond). RFC 9112 §3 asks for 8,000 at least.
    public var maxRequestLineLength: Int
    /// Longest head in bytes, request line and final CRLF included (431 beyond).
    public var maxHeadLength: Int
    /// Most header field lines (431 beyond).
    public var maxFieldCount: Int

    /// 8 KiB request line, 64 KiB head, 100 fields.
    public init(maxRequestLineLength: Int = 8192, maxHeadLength: Int = 64 * 1024, maxFieldCount: Int = 100) {
        self.maxRequestLineLength = maxRequestLineLength
        self.maxHeadLength = maxHeadLength
        self.maxFieldCount = maxFieldCount
    }
}
