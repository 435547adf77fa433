import Glibc

/// The names in directory `path` (without `.` and `..`), or nil if it cannot be read.
public func directoryEntries(_ path: String) -> [String]? {
    guard let directory = opendir(path) else { return nil }
    defer { closedir(directory) }
    var names: [String] = []
    while let entry = readdir(directory) {
        // Read the name in place: a dirent near the end of readdir's buffer is shorter than
        // `d_name`'s declared 256 bytes, so copying the whole tuple reads past it.
        let name = withUnsafeMutablePointer(to: &entry.pointee.d_name) {
            $0.withMemoryRebound(to: CChar.self, capacity: 1) { String(cString: $0) }
        }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}

/// Number of open socket descriptors of this process (from /proc/self/fd).
public func openSocketCount() -> Int {
    guard let names = directoryEntries("/proc/self/fd") else { return -1 }
    var count = 0
    var target = [CChar](repeating: 0, count: 256)
    for name in names {
        let length = readlink("/proc/self/fd/\(name)", &target, target.count - 1)
        guard length > 0 else { continue }
        let link = String(decoding: target[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if link.hasPrefix("socket:") { count += 1 }
    }
    return count
}
