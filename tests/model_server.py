"""A real HTTP server on 127.0.0.1 (http.server in a thread) serving model files, for the named
models tests: plain URLs and the two requests huggingface_hub makes for a hub file (HEAD for its
metadata, GET for its bytes, at /{repo}/resolve/{revision}/{file})."""
from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class ModelServer:
    """files: URL path -> bytes. ``corrupt``: paths whose served bytes differ from the advertised
    hash (same size); ``truncate``: paths whose transfer stops half-way. ``requests`` logs paths."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = dict(files)
        self.corrupt: set[str] = set()
        self.truncate: set[str] = set()
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _head(self) -> bytes | None:
                server.requests.append(f"{self.command} {self.path}")
                body = server.files.get(self.path)
                if body is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                return body

            def do_HEAD(self) -> None:
                self._head()

            def do_GET(self) -> None:
                body = self._head()
                if body is None:
                    return
                if self.path in server.corrupt:
                    body = bytes(b ^ 0xFF for b in body[:64]) + body[64:]
                if self.path in server.truncate:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "ModelServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
