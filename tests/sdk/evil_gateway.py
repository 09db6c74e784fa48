"""A gateway that lies: it relays to the real one, but flips a byte of the blobs it is told to corrupt."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx


class CorruptingGateway:
    def __init__(self, upstream: str, corrupt: set[str]):
        targets = {h.lower() for h in corrupt}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                response = httpx.get(upstream + self.path, timeout=30)
                body = response.content
                if response.status_code == 200 and self.path.rsplit("/", 1)[-1].lower() in targets:
                    body = bytes([body[0] ^ 0xFF]) + body[1:]
                self.send_response(response.status_code)
                self.send_header("Content-Type", response.headers.get("content-type", "application/octet-stream"))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
