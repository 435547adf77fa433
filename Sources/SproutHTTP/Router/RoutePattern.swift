/// A parsed route pattern: literal segments, `:name` captures and a trailing `*`.
struct RoutePattern {
    enum Segment: Equatable {
        case literal(Substring)
        case parameter(String)
        case wildcard
    }

    let text: String
    let segments: [Segment]

    /// True when the pattern has no captures, so it can be found by exact lookup.
    var isStatic: Bool { !segments.contains { if case .literal = $0 { false } else { true } } }

    /// Parses `text`, which must start with `/`; `*` may only be the last segment.
    init(_ text: String) {
        precondition(text.hasPrefix("/"), "Router: a route pattern starts with '/' (got '\(text)')")
        self.text = text
        var segments: [Segment] = []
        let parts = text.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        for (index, part) in parts.enumerated() {
            if part == "*" {
                precondition(index == parts.count - 1, "Router: '*' must be the last segment of '\(text)'")
                segments.append(.wildcard)
            } else if part.hasPrefix(":") {
                precondition(part.count > 1, "Router: a parameter needs a name in '\(text)'")
                segments.append(.parameter(String(part.dropFirst())))
            } else {
                segments.append(.literal(part))
            }
        }
        self.segments = segments
    }

    /// Matches `path` (no query, starting with `/`), appending captures to `parameters`.
    func match(_ path: Substring, into parameters: inout RouteParameters) -> Bool {
        guard path.first == "/" else { return false }
        var rest = path.dropFirst()
        for (index, segment) in segments.enumerated() {
            if segment == .wildcard {
                parameters.append("*", rest)
                return true
            }
            let end = rest.firstIndex(of: "/") ?? rest.endIndex
            let part = rest[..<end]
            switch segment {
            case .literal(let literal):
                guard part == literal else { return false }
            case .parameter(let name):
                guard !part.isEmpty else { return false }
                parameters.append(name, part)
            case .wildcard:
                break
            }
            let isLast = index == segments.count - 1
            if end == rest.endIndex {
                if !isLast {
                    // A trailing wildcard also matches nothing at all: `/static/*` matches `/static/`.
                    if index == segments.count - 2, segments[index + 1] == .wildcard { continue }
                    return false
                }
                rest = rest[end...]
            } else {
                if isLast { return false }
                rest = rest[rest.index(after: end)...]
            }
        }
        return rest.isEmpty
    }
}
