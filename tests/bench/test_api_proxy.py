"""bench/_api_proxy.py: the counting proxy counts what passed through it, by source, method
and route, on fake upstreams (a plain HTTP server, a websocket server) bound to 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from websockets.sync.server import ServerConnection, serve

from bench._api_proxy import CountingProxy, Routes

ROOT = Path(__file__).resolve().parents[2]


class _Echo(BaseHTTPRequestHandler):
    """Answers every request with its method, path and body length."""

    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.headers.get("Transfer-Encoding") == "chunked":
            while size := int(self.rfile.readline().split(b";")[0], 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
        out = json.dumps({"method": self.command, "path": self.path, "got": len(body)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def upstream() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy(upstream: int) -> Iterator[CountingProxy]:
    counting = CountingProxy(("127.0.0.1", upstream)).start()
    yield counting
    counting.stop()


def test_counts_each_request_by_source_method_and_path(proxy: CountingProxy) -> None:
    run = {"X-Prefect-Flow-Name": "canary-release", "User-Agent": "prefect/3.9.1 (API 0.8.4)"}
    with httpx.Client(base_url=proxy.url, timeout=10) as http:  # one kept-alive connection
        for _ in range(3):
            answer = http.get("/variables/name/canary-command-gg01", headers=run)
            assert answer.json() == {"method": "GET", "path": "/api/variables/name/canary-command-gg01",
                                     "got": 0}  # fmt: skip
        posted = http.post("/flow_runs/filter?x=1", json={"limit": 1}, headers={"User-Agent": "prefect/3"})
        assert posted.json()["got"] == len(b'{"limit":1}')  # the body went through whole
        chunks = http.post("/logs/", content=iter([b"ab", b"cde"]), headers=run)
        assert chunks.json()["got"] == 5  # a chunked body too
    httpx.get(f"{proxy.url}/health", headers={"User-Agent": "python-httpx/0.28"}, timeout=10)
    assert proxy.snapshot() == {
        ("canary-release", "GET", "/api/variables/name/canary-command-gg01"): 3,
        ("prefect", "POST", "/api/flow_runs/filter"): 1,
        ("canary-release", "POST", "/api/logs/"): 1,
        ("python-httpx", "GET", "/api/health"): 1,
    }


def test_routes_map_paths_onto_the_most_literal_template() -> None:
    routes = Routes.from_openapi({"paths": {
        "/flow_runs/{id}": {"get": {}, "patch": {}}, "/flow_runs/filter": {"post": {}},
        "/variables/name/{name}": {"get": {}}, "/flow_runs/{id}/set_state": {"post": {}},
    }})  # fmt: skip
    assert routes.route_of("POST", "/api/flow_runs/filter") == "/api/flow_runs/filter"
    assert routes.route_of("GET", "/api/flow_runs/abc") == "/api/flow_runs/{id}"
    assert routes.route_of("POST", "/api/flow_runs/abc/set_state") == "/api/flow_runs/{id}/set_state"
    assert routes.route_of("GET", "/api/nothing/here") == "/api/nothing/here"
    counts = {("canary-release", "GET", "/api/variables/name/a"): 2,
              ("canary-release", "GET", "/api/variables/name/b"): 1,
              ("canary-release", "WS", "prefect.task-run.Running"): 4}  # fmt: skip
    assert routes.by_route(counts.items()) == {
        ("canary-release", "GET", "/api/variables/name/{name}"): 3,
        ("canary-release", "WS", "prefect.task-run.Running"): 4,
    }


_CLIENT = """
import json, sys
from websockets.sync.client import connect
with connect(sys.argv[1]) as ws:  # permessage-deflate is on by default
    ws.send(json.dumps({"type": "auth", "token": None}))
    for name in ["prefect.task-run.Running", "prefect.task-run.Running", "canary.release.look"]:
        ws.send(json.dumps({"event": name, "payload": {"pad": "x" * 300}}))
    ws.recv(timeout=10)
"""


def test_counts_websocket_messages_by_event_and_the_sending_process_flow() -> None:
    got: list[str] = []
    done = threading.Event()

    def handler(ws: ServerConnection) -> None:
        for message in ws:
            got.append(json.loads(message).get("event", "auth"))
            if len(got) == 4:
                ws.send("ok")
                done.set()

    with serve(handler, "127.0.0.1", 0) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        proxy = CountingProxy(("127.0.0.1", server.socket.getsockname()[1])).start()
        try:
            env = {**os.environ, "PREFECT__FLOW_NAME": "build", "PYTHONPATH": str(ROOT)}
            subprocess.run([sys.executable, "-c", _CLIENT, f"ws://127.0.0.1:{proxy.port}/api/events/in"],
                           env=env, check=True, timeout=60)  # fmt: skip
            assert done.wait(10)
            counts = proxy.snapshot()
        finally:
            proxy.stop()
            server.shutdown()
    assert got == ["auth", "prefect.task-run.Running", "prefect.task-run.Running", "canary.release.look"]
    assert counts == {
        ("build", "WS-OPEN", "/api/events/in"): 1,
        ("build", "WS", "(auth)"): 1,
        ("build", "WS", "prefect.task-run.Running"): 2,
        ("build", "WS", "canary.release.look"): 1,
    }
