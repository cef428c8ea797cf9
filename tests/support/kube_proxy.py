"""Fault injection in front of the REAL API server: a tiny reverse proxy for the tests.

The real control plane (tests/support/kube.py) answers every request correctly; the faults
a release must survive (a 5xx, a 429, a connection dropped before or AFTER the server did
the work) do not happen on demand. So a test points the adapters at this proxy instead:
plain HTTP on 127.0.0.1, every request forwarded over TLS to the real API server with its
own Authorization header (the server authenticates and authorizes as usual; the proxy holds
no credentials), watches streamed through chunk by chunk. A rule (``inject``) picks requests
by verb, plural and name and, once, or ``times`` times after letting ``skip`` pass:

- answers ``status`` instead of forwarding (the server never saw the request);
- with ``after=True``, forwards first and then answers ``status`` or drops the connection
  (the server did the work; the client does not know);
- with ``drop=True``, closes the connection without an answer;
- runs ``action()`` before forwarding (e.g. another writer changes the object, so the real
  server answers 409), with ``status=None`` to forward as usual afterwards;
- with ``status=200`` and ``body``, answers that body (e.g. a watch's ERROR event).

Nothing else is imitated: whatever the adapters see apart from the injected faults is the
real server's answer.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


@dataclass(frozen=True)
class Call:
    """What a request asks for, in the API server's words (as in its audit log)."""

    verb: str
    group: str
    plural: str
    name: str
    subresource: str


def parse_call(method: str, target: str) -> Call:
    """``GET /apis/apps/v1/namespaces/ns/deployments?watch=true`` -> watch deployments."""
    url = urlsplit(target)
    parts = [p for p in url.path.split("/") if p]
    group = ""
    if parts[:1] == ["api"]:
        parts = parts[2:]
    elif parts[:1] == ["apis"]:
        group, parts = parts[1], parts[3:]
    if parts[:1] == ["namespaces"] and len(parts) > 2:
        parts = parts[2:]
    plural, name, sub = (parts + ["", "", ""])[:3]
    if method == "GET":
        query = parse_qs(url.query)
        verb = "watch" if query.get("watch", [""])[0].lower() in ("true", "1") else ("get" if name else "list")
    else:
        verb = _VERBS.get(method, method.lower())
    return Call(verb, group, plural, name, sub)


@dataclass
class Fault:
    """One rule; ``hits`` counts how often it fired."""

    verb: str
    plural: str
    name: str | None = None
    status: int | None = 500
    after: bool = False
    drop: bool = False
    action: Callable[[], None] | None = None
    skip: int = 0
    times: int = 1
    retry_after: float | None = None
    body: bytes | None = None
    hits: int = 0
    seen: int = field(default=0, repr=False)

    def matches(self, call: Call) -> bool:
        return (call.verb, call.plural) == (self.verb, self.plural) and self.name in (None, call.name)


def status_body(code: int) -> bytes:
    return json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                       "message": f"injected by the test's fault proxy: {code}",
                       "reason": http.client.responses.get(code, "Error").replace(" ", ""),
                       "code": code}).encode()


def watch_error(code: int = 410, message: str = "too old resource version") -> bytes:
    """A watch stream's ERROR event, as the API server sends one (e.g. 410 Gone)."""
    status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
              "message": message, "reason": "Expired" if code == 410 else "InternalError", "code": code}
    return json.dumps({"type": "ERROR", "object": status}).encode() + b"\n"


class FaultProxy:
    """``with FaultProxy(endpoint_url, ca) as proxy:`` -> ``proxy.url``, ``proxy.inject(...)``."""

    def __init__(self, upstream: str, ca: Path | str) -> None:
        url = urlsplit(upstream)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 443
        self.tls = ssl.create_default_context(cafile=str(ca))
        self.faults: list[Fault] = []
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FaultProxy:
        threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fault-proxy",
                         daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def inject(self, verb: str, plural: str, **rule: Any) -> Fault:
        fault = Fault(verb, plural, **rule)
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()

    def _fire(self, call: Call) -> Fault | None:
        with self._lock:
            self.calls.append(call)
            for fault in self.faults:
                if fault.matches(call):
                    fault.seen += 1
                    if fault.seen > fault.skip and fault.hits < fault.times:
                        fault.hits += 1
                        return fault
        return None

    # -- the HTTP side ------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in two writes

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                fault = proxy._fire(parse_call(self.command, self.path))
                if fault is not None and fault.action is not None:
                    fault.action()
                if fault is None or (fault.status is None and not fault.drop):
                    self._forward(body, stream=True)
                    return
                if fault.after:
                    self._forward(body, stream=False)
                if fault.drop:
                    self._drop()
                else:
                    self._answer(fault)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

            def _drop(self) -> None:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

            def _answer(self, fault: Fault) -> None:
                code = fault.status or 500
                body = fault.body if fault.body is not None else status_body(code)
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if fault.retry_after is not None:
                    self.send_header("Retry-After", f"{fault.retry_after:g}")
                self.end_headers()
                self.wfile.write(body)

            def _forward(self, body: bytes | None, *, stream: bool) -> None:
                upstream = http.client.HTTPSConnection(proxy.host, proxy.port, context=proxy.tls, timeout=60)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() in ("authorization", "content-type", "accept", "user-agent")}
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    if not stream:  # the server did the work; the answer is thrown away
                        response.read()
                        return
                    self.send_response(response.status)
                    for key, value in response.getheaders():
                        if key.lower() in ("content-type", "retry-after", "audit-id"):
                            self.send_header(key, value)
                    length = response.getheader("Content-Length")
                    if length is not None:
                        data = response.read()
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        self.wfile.write(data)
                        return
                    self.send_header("Transfer-Encoding", "chunked")  # a watch: pass each chunk on
                    self.end_headers()
                    for chunk in _chunks(response):
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                except OSError:  # the client went away (e.g. stopped its watch)
                    self.close_connection = True
                finally:
                    upstream.close()

        return Handler


def _chunks(response: http.client.HTTPResponse) -> Iterator[bytes]:
    while True:
        chunk = response.read1(65536)
        if not chunk:
            return
        yield chunk
