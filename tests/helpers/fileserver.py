"""A real HTTP server on 127.0.0.1 for download tests, with failures to order."""

import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileServer:
    """Serves ``files`` (path -> bytes) on 127.0.0.1. ``fail[path] = [500, 500]`` answers those codes
    first; ``truncate[path] = n`` cuts the first full response after n bytes; ``trickle[path] = s``
    sends one byte every s seconds."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.fail: dict[str, list[int]] = defaultdict(list)
        self.truncate: dict[str, int] = {}
        self.trickle: dict[str, float] = {}
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                if server.fail[self.path]:
                    self.send_error(server.fail[self.path].pop(0))
                    return
                if self.path == "/health":
                    body = b"OK"
                elif self.path in server.files:
                    body = server.files[self.path]
                else:
                    self.send_error(404)
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                cut = server.truncate.pop(self.path, None)
                payload = body[start:cut] if cut is not None else body[start:]
                if self.path in server.trickle:
                    for i in range(len(payload)):
                        try:
                            self.wfile.write(payload[i:i + 1])
                            self.wfile.flush()
                        except OSError:  # the client gave up
                            return
                        time.sleep(server.trickle[self.path])
                    return
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"
