import HTTPTypes

/// Status lines, pre-encoded for the statuses servers send most.
enum StatusLine {
    /// Appends `HTTP/1.1 <code> <reason>\r\n`.
    @inline(__always)
    static func append(_ status: HTTPResponse.Status, to out: inout OutputBuffer) {
        switch status.code {
        case 200: out.append("HTTP/1.1 200 OK\r\n")
        case 201: out.append("HTTP/1.1 201 Created\r\n")
        case 204: out.append("HTTP/1.1 204 No Content\r\n")
        case 301: out.append("HTTP/1.1 301 Moved Permanently\r\n")
        case 302: out.append("HTTP/1.1 302 Found\r\n")
        case 304: out.append("HTTP/1.1 304 Not Modified\r\n")
        case 400: out.append("HTTP/1.1 400 Bad Request\r\n")
        case 404: out.append("HTTP/1.1 404 Not Found\r\n")
        case 405: out.append("HTTP/1.1 405 Method Not Allowed\r\n")
        case 500: out.append("HTTP/1.1 500 Internal Server Error\r\n")
        default:
            out.append("HTTP/1.1 ")
            out.appendDecimal(status.code)
            out.append(0x20)
            out.append(status.reasonPhrase)
            out.append("\r\n")
        }
    }
}
