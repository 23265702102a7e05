"""A real HTTP server on 127.0.0.1 for download tests: Range support and scripted failures."""

from __future__ import annotations

import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileServer:
    """Serves ``files`` (path -> bytes). ``fail[path] = [500, 500]`` answers those codes first;
    ``truncate[path] = n`` cuts the first full response after n bytes."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.fail: dict[str, list[int]] = defaultdict(list)
        self.truncate: dict[str, int] = {}
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
                self.wfile.write(body[start:cut] if cut is not None else body[start:])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
