"""A local HTTP receiver for the notification tests: a server on 127.0.0.1
in a thread of the test process (the operator under test runs as a local
process, so it reaches it)."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """An HTTP server on 127.0.0.1 in a thread of the test process: records
    every POST it answered 2xx, by path; `fail[path] = n` answers the next n
    POSTs to `path` 503."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.arrivals: list[tuple[str, dict]] = []
        self.received_at: list[float] = []  # time.time() of each arrival
        self.refused: list[str] = []
        self.fail: dict[str, int] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.lock:
                    failing = receiver.fail.get(self.path, 0) > 0
                    if failing:
                        receiver.fail[self.path] -= 1
                        receiver.refused.append(self.path)
                    else:
                        receiver.arrivals.append((self.path, body))
                        receiver.received_at.append(time.time())
                self.send_response(503 if failing else 204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def at(self, path: str) -> list[dict]:
        with self.lock:
            return [body for p, body in self.arrivals if p == path]

    def events(self, path: str, name: str | None = None) -> list[str]:
        return [b["event"] for b in self.at(path) if name is None or b["name"] == name]

    def __enter__(self) -> "Receiver":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
