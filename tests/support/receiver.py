"""A real HTTP receiver on 127.0.0.1 for notification tests: it records every POST as it
arrives (time and JSON body), answers 200 at once, or only after `delay` seconds (a slow
receiver), and can be stopped and started again on the same port (a receiver that is down).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    """One request as the receiver got it."""

    at: float  # time.monotonic() on arrival
    path: str
    body: dict[str, Any]


class Receiver:
    """The receiver; `url` is where to send (a path of its own, like a real webhook's)."""

    def __init__(self) -> None:
        self.got: list[Received] = []
        self.delay = 0.0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.port = 0
        self.start()
        self.url = f"http://127.0.0.1:{self.port}/hooks/T0/secret-token"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver._lock:
                    receiver.got.append(Received(time.monotonic(), self.path, json.loads(raw)))
                    delay = receiver.delay
                time.sleep(delay)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def start(self) -> None:
        """Listen (again, on the same port once it had one)."""
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Stop listening: a sender gets "connection refused"."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def texts(self, where: Callable[[str], bool] = lambda _: True) -> list[str]:
        """The lines received (the body's ``text``), oldest first, that satisfy `where`."""
        with self._lock:
            return [r.body.get("text", "") for r in self.got if where(r.body.get("text", ""))]

    def bodies(self, where: Callable[[str], bool] = lambda _: True) -> list[dict[str, Any]]:
        """The JSON bodies received whose ``text`` satisfies `where`, oldest first."""
        with self._lock:
            return [r.body for r in self.got if where(r.body.get("text", ""))]

    def wait(self, where: Callable[[str], bool], *, count: int = 1, deadline: float = 90) -> list[str]:
        """The lines satisfying `where` once there are `count` of them (or the deadline)."""
        end = time.monotonic() + deadline
        while True:
            found = self.texts(where)
            if len(found) >= count or time.monotonic() > end:
                return found
            time.sleep(0.25)
