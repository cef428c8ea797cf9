"""A counting reverse proxy for the Prefect API: every HTTP request and every websocket
message that passes through it, by source, method and path (bench/api_requests.py).

Bound to 127.0.0.1 only, between a chain's clients (PREFECT_API_URL points at it) and the
server. It reads the client → server direction only (request heads and bodies, websocket
frames) and copies the answers back unread, so what a client sees does not change.

- **Source.** A request from a flow-run process carries Prefect's attribution header
  ``X-Prefect-Flow-Name`` (the worker sets PREFECT__FLOW_NAME in the run's environment;
  prefect.client.attribution): the source is the flow's name, ``build`` or
  ``canary-release``. Any other request is named by its User-Agent's product (``prefect``
  for the worker and the scripts, ``python-httpx`` for the relay). A websocket has no such
  header: its source is the flow name in the environment of the process that opened it
  (found through /proc, once per websocket), else ``other``.
- **Websocket messages.** Each text message a client sends (inflated when
  permessage-deflate is on) counts under the ``event`` it carries, e.g.
  ``prefect.task-run.Running``; a message that is not an event (the auth handshake)
  under its ``type``.
- **Routes.** ``route_of`` maps a path onto the server's route templates (its OpenAPI
  paths: ``/api/variables/name/{name}``), the most literal template first.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import re
import threading
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CountingProxy", "Key", "Routes", "owner_flow"]

#: (source, method, path): method is ``WS`` for a websocket message, path its event name
Key = tuple[str, str, str]
_LIMIT = 1 << 22  # longest request head or chunk-size line read at once


def _source(headers: dict[bytes, bytes]) -> str:
    flow = headers.get(b"x-prefect-flow-name", b"").decode(errors="replace").strip()
    if flow:
        return flow
    agent = headers.get(b"user-agent", b"").decode(errors="replace").strip()
    return agent.split("/")[0].split(" ")[0] or "other"


def _socket_inode(port: int) -> str | None:
    """The inode of the 127.0.0.1 socket whose local port is ``port`` (/proc/net/tcp)."""
    wanted = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if len(cols) > 9 and cols[1].endswith(wanted) and cols[9] != "0":
                    return cols[9]  # (a closed socket in TIME_WAIT has inode 0)
    return None


def owner_flow(port: int) -> str:
    """The flow name (PREFECT__FLOW_NAME) of the local process whose socket has local port
    ``port``; ``other`` when it has none or cannot be found."""
    inode = _socket_inode(port)
    if inode is None:
        return "other"
    target = f"socket:[{inode}]"
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if not any(os.readlink(f"/proc/{pid}/fd/{fd}") == target for fd in fds):
                continue
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for entry in environ:
            if entry.startswith(b"PREFECT__FLOW_NAME="):
                return entry.split(b"=", 1)[1].decode(errors="replace") or "other"
        return "other"
    return "other"


class _Messages:
    """Websocket frames from a client, reassembled into messages (inflated when compressed)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.compressed = False
        self.inflate = zlib.decompressobj(-15)

    def frame(self, first: int, payload: bytes) -> str | None:
        """Take one frame; the finished message's name (None: not a finished text message)."""
        opcode = first & 0x0F
        if opcode == 1:
            self.parts, self.compressed = [payload], bool(first & 0x40)
        elif opcode == 0 and self.parts:
            self.parts.append(payload)
        else:
            return None  # binary, ping, pong, close
        if not first & 0x80:
            return None
        data = b"".join(self.parts)
        self.parts = []
        try:
            if self.compressed:
                data = self.inflate.decompress(data + b"\x00\x00\xff\xff")
            message = json.loads(data)
        except (zlib.error, ValueError):
            return "(unreadable)"
        if isinstance(message, dict):
            return str(message.get("event") or f"({message.get('type', 'message')})")
        return "(message)"


def _unmask(payload: bytes, mask: bytes) -> bytes:
    if not mask:
        return payload
    key = int.from_bytes((mask * (len(payload) // 4 + 1))[: len(payload)], "big")
    return (int.from_bytes(payload, "big") ^ key).to_bytes(len(payload), "big")


class CountingProxy:
    """The proxy: started in a thread of its own, counting until stopped.

    Args:
        upstream: The server's (host, port).
        port: Where to listen on 127.0.0.1 (0: any free port; ``port`` says which).
    """

    def __init__(self, upstream: tuple[str, int], port: int = 0) -> None:
        self.upstream = upstream
        self.port = port
        self._counts: collections.Counter[Key] = collections.Counter()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="api-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self.errors: list[str] = []

    # -- the caller's side ---------------------------------------------------------------
    def start(self) -> CountingProxy:
        """Listen; returns once the port is bound."""
        self._thread.start()
        if not self._ready.wait(10) or self._server is None:
            raise RuntimeError(f"the counting proxy did not start: {self.errors}")
        return self

    def stop(self) -> None:
        """Stop listening and drop every connection."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    @property
    def url(self) -> str:
        """The API URL clients use (``http://127.0.0.1:PORT/api``)."""
        return f"http://127.0.0.1:{self.port}/api"

    def snapshot(self) -> collections.Counter[Key]:
        """Everything counted so far (a copy): (source, method, path) -> requests."""
        with self._lock:
            return collections.Counter(self._counts)

    # -- the proxy's thread --------------------------------------------------------------
    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._server = self._loop.run_until_complete(asyncio.start_server(
                self._serve, "127.0.0.1", self.port, limit=_LIMIT))  # fmt: skip
            self.port = self._server.sockets[0].getsockname()[1]
        except OSError as exc:
            self.errors.append(repr(exc))
            return
        finally:
            self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._server.close()
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            with contextlib.suppress(Exception):
                self._loop.run_until_complete(asyncio.sleep(0))
            self._loop.close()

    def _count(self, key: Key) -> None:
        with self._lock:
            self._counts[key] += 1

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream, limit=_LIMIT)
        except OSError:
            writer.close()
            return
        back = asyncio.ensure_future(self._copy(up_reader, writer))
        try:
            await self._requests(reader, up_writer, writer.get_extra_info("peername"))
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            with contextlib.suppress(OSError):
                up_writer.write_eof()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(back, 30)
            for w in (up_writer, writer):
                w.close()

    @staticmethod
    async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()

    async def _requests(self, reader: asyncio.StreamReader, up: asyncio.StreamWriter,
                        peer: tuple[str, int] | None) -> None:  # fmt: skip
        """Each request of a kept-alive connection, counted and passed on; a websocket's
        messages after its upgrade."""
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return  # the client closed between requests
            lines = head.split(b"\r\n")
            method, target, _ = lines[0].split(b" ", 2)
            headers = {k.strip().lower(): v.strip() for k, _, v in
                       (line.partition(b":") for line in lines[1:] if line)}  # fmt: skip
            up.write(head)
            await self._body(reader, up, headers)
            await up.drain()
            path = target.split(b"?", 1)[0].decode(errors="replace")
            if headers.get(b"upgrade", b"").lower() == b"websocket":
                port = peer[1] if peer else 0
                source = await asyncio.get_running_loop().run_in_executor(None, owner_flow, port)
                self._count((source, "WS-OPEN", path))
                await self._frames(reader, up, source)
                return
            self._count((_source(headers), method.decode(), path))

    @staticmethod
    async def _body(reader: asyncio.StreamReader, up: asyncio.StreamWriter,
                    headers: dict[bytes, bytes]) -> None:  # fmt: skip
        if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                up.write(size_line + await reader.readexactly(size + 2))
                if size == 0:  # (no trailers: httpx sends none)
                    return
        length = int(headers.get(b"content-length", b"0") or 0)
        if length:
            up.write(await reader.readexactly(length))

    async def _frames(self, reader: asyncio.StreamReader, up: asyncio.StreamWriter,
                      source: str) -> None:  # fmt: skip
        messages = _Messages()
        while True:
            head = await reader.readexactly(2)
            length, extra = head[1] & 0x7F, b""
            if length >= 126:
                extra = await reader.readexactly(2 if length == 126 else 8)
                length = int.from_bytes(extra, "big")
            mask = await reader.readexactly(4) if head[1] & 0x80 else b""
            payload = await reader.readexactly(length)
            up.write(head + extra + mask + payload)
            await up.drain()
            name = messages.frame(head[0], _unmask(payload, mask))
            if name is not None:
                self._count((source, "WS", name))


@dataclass(frozen=True)
class Routes:
    """The server's route templates, the most literal first.

    Args:
        templates: (method, template) pairs, e.g. ("GET", "/api/variables/name/{name}").
    """

    templates: tuple[tuple[str, str], ...]

    @classmethod
    def from_openapi(cls, spec: dict[str, object], prefix: str = "/api") -> Routes:
        """The templates of an OpenAPI document (its paths are relative to ``prefix``)."""
        paths = spec.get("paths", {})
        assert isinstance(paths, dict)
        found = [(m.upper(), prefix + p) for p, ops in paths.items() if isinstance(ops, dict)
                 for m in ops]  # fmt: skip
        return cls(tuple(found))

    def route_of(self, method: str, path: str) -> str:
        """The template ``path`` matches for ``method`` (the path itself when none does)."""
        best: tuple[int, str] | None = None
        for m, template in self.templates:
            if m == method and _pattern(template).fullmatch(path):
                literal = len(re.sub(r"\{[^}]+\}", "", template))
                if best is None or literal > best[0]:
                    best = (literal, template)
        return best[1] if best else path

    def by_route(self, counts: Iterable[tuple[Key, int]]) -> collections.Counter[Key]:
        """Counts keyed by (source, method, route template) instead of the raw path."""
        out: collections.Counter[Key] = collections.Counter()
        for (source, method, path), n in counts:
            route = path if method.startswith("WS") else self.route_of(method, path)
            out[source, method, route] += n
        return out


_PATTERNS: dict[str, re.Pattern[str]] = {}


def _pattern(template: str) -> re.Pattern[str]:
    if template not in _PATTERNS:
        parts = re.split(r"(\{[^}]+\})", template)
        _PATTERNS[template] = re.compile("".join(
            "[^/]+" if part.startswith("{") else re.escape(part) for part in parts))  # fmt: skip
    return _PATTERNS[template]
