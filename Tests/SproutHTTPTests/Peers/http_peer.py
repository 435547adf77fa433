"""Python's http.server as a peer for HTTPClient's tests (started by the tests themselves).

Prints "listening PORT ready" once bound to 127.0.0.1. Routes:
  GET  /hello            "hello from python" with Content-Length
  GET  /chunked?n=N      N chunks "chunk i\n", Transfer-Encoding: chunked
  POST /echo             the request body back (read by Content-Length or chunked), with
                         X-Request-Framing: chunked|length
  GET  /connections      how many TCP connections this server has accepted
  GET  /close-delimited  an HTTP/1.0-style body ended by closing the connection
"""
import http.server
import sys
import threading

connections = 0
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        global connections
        with lock:
            connections += 1
        super().setup()

    def log_message(self, *args):
        pass

    def send_body(self, body, status=200, extra=()):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path, _, query = self.path.partition("?")
        if path == "/hello":
            self.send_body(b"hello from python")
        elif path == "/chunked":
            count = int(query.partition("=")[2] or "3")
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(count):
                data = b"chunk %d\n" % i
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/connections":
            with lock:
                self.send_body(str(connections).encode())
        elif path == "/close-delimited":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"until the end")
            self.close_connection = True
        else:
            self.send_body(b"not found", status=404)

    def do_POST(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
            framing = "chunked"
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            framing = "length"
        self.send_body(body, extra=[("X-Request-Framing", framing)])


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print("listening", server.server_address[1], "ready", flush=True)
server.serve_forever()
