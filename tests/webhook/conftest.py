"""Fixtures for the relay: a fake Prefect events endpoint on a real socket, and the relay app.

The fake is a real 127.0.0.1 HTTP server (not a mock transport), so the relay's httpx client,
timeouts and connection errors are exercised exactly as against Prefect.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.support.prefect_server import free_port
from tests.webhook.helpers import SECRET
from webhook.app import create_app
from webhook.settings import Settings


class FakePrefect:
    """Records POST /api/events batches; `status`, `delay` and stop() simulate trouble."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.status = 204
        self.delay = 0.0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                if fake.delay:
                    time.sleep(fake.delay)
                if self.path != "/api/events":
                    self.send_response(404)
                    self.end_headers()
                    return
                fake.headers.append(dict(self.headers))
                if 200 <= fake.status < 300:
                    fake.events.extend(json.loads(body))
                self.send_response(fake.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def stop(self) -> None:
        """Shut down and close the socket: from now on the port refuses connections."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fake_prefect() -> Iterator[FakePrefect]:
    fake = FakePrefect()
    yield fake
    if fake.thread.is_alive():
        fake.stop()


@pytest.fixture
def down_url() -> str:
    """An API URL where nothing listens."""
    return f"http://127.0.0.1:{free_port()}/api"


RelayFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def make_relay(fake_prefect: FakePrefect) -> RelayFactory:
    """`async with make_relay(**settings) as client:` the app in-process, lifespan included."""

    @asynccontextmanager
    async def relay(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        fields: dict[str, Any] = {"secret": SECRET, "prefect_api_url": fake_prefect.api_url}
        fields.update(overrides)
        app = create_app(Settings(**fields))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://relay") as client:
                yield client

    return relay


@pytest.fixture
async def relay(make_relay: RelayFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with make_relay() as client:
        yield client
