extension Array where Element == UInt8 {
    /// Appends the decimal digits of `value` (ASCII), without making a string: protocol heads
    /// (lengths, flags, counts) are written this way on hot paths.
    @inlinable
    public mutating func appendDecimal(_ value: UInt64) {
        if value < 10 {
            append(UInt8(truncatingIfNeeded: 48 &+ value))
            return
        }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)   // 24 bytes: more than UInt64.max's 20 digits
        Swift.withUnsafeMutableBytes(of: &digits) { scratch in
            var rest = value
            var index = scratch.count
            while rest > 0 {
                index -= 1
                scratch[index] = UInt8(truncatingIfNeeded: 48 &+ rest % 10)
                rest /= 10
            }
            append(contentsOf: UnsafeRawBufferPointer(rebasing: scratch[index...]))
        }
    }

    /// Appends the decimal digits of `value`, which must not be negative.
    @inlinable
    public mutating func appendDecimal(_ value: Int) {
        precondition(value >= 0, "appendDecimal: a negative value")
        appendDecimal(UInt64(value))
    }
}
