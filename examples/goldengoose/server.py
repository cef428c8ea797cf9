#!/usr/bin/env python3
"""goldengoose: the demo service that canary releases are tried on.

Self-contained on purpose (standard library + prometheus_client, no sibling imports): the
local platform runs a git checkout of this directory as the artifact, so
``python server.py --port N`` must work from a copy of the directory alone. A commit changes
the version by editing ``VERSION`` and carries a fault by adding ``faults.json`` next to this
file. Knobs, precedence and metrics are documented in README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

HERE = Path(__file__).resolve().parent
TRACKS = ("primary", "baseline", "canary")
JITTER_DISTS = ("uniform", "exponential")
DEFAULT_VERSION = "0.0.0-dev"
MAX_LATENCY_MS = 60_000.0
VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
# 1 ms .. ~5 s, each bound 9 % above the previous one (4 significant digits), so a 10 %
# latency tolerance falls between two bounds everywhere: the sequential judge can then
# prove "within tolerance" (docs/judge.md), and histogram_quantile is within 9 % anywhere.
LATENCY_BUCKETS = tuple(float(f"{0.001 * 1.09**k:.4g}") for k in range(99))


class KnobError(ValueError):
    """A knob value is unusable; the message names the knob the way the user set it."""


def _number(lo: float, hi: float) -> Callable[[Any], float]:
    def parse(raw: Any) -> float:
        try:
            if isinstance(raw, bool):
                raise TypeError
            value = float(raw)
        except (TypeError, ValueError):
            raise ValueError("must be a number") from None
        if not (math.isfinite(value) and lo <= value <= hi):
            raise ValueError(f"must be between {lo:g} and {hi:g}")
        return value

    return parse


def _integer(lo: int, hi: int) -> Callable[[Any], int]:
    def parse(raw: Any) -> int:
        if isinstance(raw, bool) or not isinstance(raw, int | str):
            raise ValueError("must be an integer")
        try:
            value = int(raw)
        except ValueError:
            raise ValueError("must be an integer") from None
        if not lo <= value <= hi:
            raise ValueError(f"must be between {lo} and {hi}")
        return value

    return parse


def _choice(options: Sequence[str]) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        if raw not in options:
            raise ValueError(f"must be one of: {', '.join(options)}")
        return raw

    return parse


def _version(raw: Any) -> str:
    # The version travels into HTTP headers and metric labels: keep it to a safe alphabet.
    if not (isinstance(raw, str) and VERSION_RE.fullmatch(raw)):
        raise ValueError("must be 1-64 characters from A-Z a-z 0-9 . _ + - (starting alphanumeric)")
    return raw


def _text(raw: Any) -> str:
    if not isinstance(raw, str) or not raw:
        raise ValueError("must be a non-empty string")
    return raw


@dataclass(frozen=True)
class Knob:
    name: str  # Settings field and faults.json key
    parse: Callable[[Any], Any]
    help: str  # defaults live in Settings
    in_faults_file: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return "GOLDENGOOSE_" + self.name.upper()


_LATENCY = _number(0.0, MAX_LATENCY_MS)
KNOBS = (
    Knob("host", _text, "address to bind"),
    Knob("port", _integer(0, 65535), "port to bind; 0 picks a free one"),
    Knob("version", _version, "version label (default: VERSION file, else 0.0.0-dev)"),
    Knob("track", _choice(TRACKS), "track label: " + " | ".join(TRACKS)),
    Knob("base_latency_ms", _LATENCY, "latency every / request gets", True),
    Knob("added_latency_ms", _LATENCY, "fixed extra latency (a regression)", True),
    Knob("jitter_ms", _LATENCY, "random extra latency: scale of --jitter-dist", True),
    Knob("jitter_dist", _choice(JITTER_DISTS), "uniform: U(0, jitter); exponential: mean jitter", True),
    Knob("error_ratio", _number(0.0, 1.0), "fraction of / requests answered 500", True),
    Knob("spread_ms", _LATENCY, "variance-only mode: +U(-spread, +spread), median unchanged", True),
    Knob("seed", _integer(0, 2**63 - 1), "seed of the per-process random generator", True),
)  # fmt: skip


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    version: str = DEFAULT_VERSION
    track: str = "primary"
    base_latency_ms: float = 0.0
    added_latency_ms: float = 0.0
    jitter_ms: float = 0.0
    jitter_dist: str = "uniform"
    error_ratio: float = 0.0
    spread_ms: float = 0.0
    seed: int | None = None
    port_file: str | None = None
    faults_file: str | None = None

    def latency_ms(self, rng: random.Random) -> float:
        """Draw one request's latency: base + added, spread around that centre, then jitter."""
        latency = self.base_latency_ms + self.added_latency_ms
        if self.spread_ms:
            latency += rng.uniform(-self.spread_ms, self.spread_ms)
        if self.jitter_ms:
            if self.jitter_dist == "uniform":
                latency += rng.uniform(0.0, self.jitter_ms)
            else:
                latency += rng.expovariate(1.0 / self.jitter_ms)
        return min(max(latency, 0.0), MAX_LATENCY_MS)

    def describe_faults(self) -> str:
        names = [k.name for k in KNOBS if k.in_faults_file and k.name != "seed"]
        return " ".join(f"{n}={getattr(self, n)}" for n in names)


def _read_faults(path: Path, explicit: bool) -> dict[str, Any]:
    if not path.is_file():
        if explicit:
            raise KnobError(f"faults file {str(path)!r} does not exist")
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise KnobError(f"faults file {str(path)!r} is not readable JSON: {exc}") from None
    if not isinstance(data, dict):
        raise KnobError(f"faults file {str(path)!r} must hold a JSON object")
    allowed = sorted(k.name for k in KNOBS if k.in_faults_file)
    for key in data:
        if key not in allowed:
            raise KnobError(
                f"faults file {str(path)!r}: unknown knob {key!r} (known: {', '.join(allowed)})"
            )
    return data


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="goldengoose",
        description="Demo HTTP service with Prometheus metrics and fault knobs. "
        "Every knob is also read from GOLDENGOOSE_<NAME>; flags win over the environment, "
        "which wins over faults.json.",
    )
    for knob in KNOBS:
        default = "" if knob.name == "version" else f"; default {getattr(Settings, knob.name)}"
        parser.add_argument(knob.flag, dest=knob.name, help=f"{knob.help}{default} [{knob.env}]")
    parser.add_argument("--port-file", help="write the bound port to this file once listening")
    parser.add_argument("--faults-file", help="faults JSON (default: faults.json next to server.py) [GOLDENGOOSE_FAULTS_FILE]")  # fmt: skip
    return parser


def load_settings(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    base_dir: Path = HERE,
) -> Settings:
    """Resolve every knob: flag > environment > faults.json > VERSION file/default."""
    args = _parser().parse_args(argv)
    env = os.environ if environ is None else environ
    faults_path = args.faults_file or env.get("GOLDENGOOSE_FAULTS_FILE") or None
    faults = _read_faults(
        Path(faults_path) if faults_path else base_dir / "faults.json", bool(faults_path)
    )
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for knob in KNOBS:
        raw, source = getattr(args, knob.name), knob.flag
        if raw is None and env.get(knob.env):
            raw, source = env[knob.env], knob.env
        if raw is None and knob.name in faults:
            raw, source = faults[knob.name], f"faults.json key {knob.name!r}"
        if raw is None:
            continue
        try:
            values[knob.name] = knob.parse(raw)
        except ValueError as exc:
            raise KnobError(f"{source}={raw!r}: {exc}") from None
        sources[knob.name] = source
    if "version" not in values:
        version_file = base_dir / "VERSION"
        if version_file.is_file():
            raw = version_file.read_text(encoding="utf-8").strip()
            try:
                values["version"] = _version(raw)
            except ValueError as exc:
                raise KnobError(f"VERSION file {str(version_file)!r}={raw!r}: {exc}") from None
    settings = Settings(**values, port_file=args.port_file, faults_file=faults_path)
    centre = settings.base_latency_ms + settings.added_latency_ms
    if settings.spread_ms > centre:
        raise KnobError(
            f"{sources['spread_ms']}={settings.spread_ms:g}: variance-only mode needs spread_ms <= "
            f"base_latency_ms + added_latency_ms (= {centre:g}) so that no latency is cut at 0"
        )
    return settings


class Metrics:
    """The service's own registry: tests and several servers in one process never collide."""

    def __init__(self, version: str, track: str) -> None:
        self.registry = CollectorRegistry()
        requests = Counter(
            "goldengoose_requests", "Requests to / by HTTP status code.",
            ("code", "version", "track"), registry=self.registry,
        )  # fmt: skip
        duration = Histogram(
            "goldengoose_request_duration_seconds", "Time to answer a request to /.",
            ("version", "track"), buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        build = Gauge("goldengoose_build_info", "Always 1; labels say what runs.",
                      ("version", "track"), registry=self.registry)  # fmt: skip
        build.labels(version, track).set(1)
        # Series exist at 0 from the start, so rate() over a clean canary is 0, not "no data".
        self._by_code = {code: requests.labels(str(code), version, track) for code in (200, 500)}
        self._duration = duration.labels(version, track)

    def observe(self, code: int, seconds: float) -> None:
        self._by_code[code].inc()
        self._duration.observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class GoldenGoose(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics(settings.version, settings.track)
        self.rng = random.Random(settings.seed)
        self.rng_lock = threading.Lock()
        if ":" in settings.host:
            self.address_family = socket.AF_INET6
        super().__init__((settings.host, settings.port), Handler)

    def draw(self) -> tuple[float, bool]:
        """One request's latency (ms) and whether it fails, drawn together so a seed replays."""
        with self.rng_lock:
            latency = self.settings.latency_ms(self.rng)
            fail = self.settings.error_ratio > 0 and self.rng.random() < self.settings.error_ratio
        return latency, fail


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True  # else headers and body in two writes stall ~40 ms
    server: GoldenGoose

    def version_string(self) -> str:
        return "goldengoose"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/":
            self._app()
        elif path == "/healthz":
            self._send(200, b"ok\n", "text/plain; charset=utf-8")
        elif path == "/metrics":
            self._send(200, self.server.metrics.exposition(), CONTENT_TYPE_LATEST)
        else:
            self._send(404, b"not found\n", "text/plain; charset=utf-8")

    def _app(self) -> None:
        start = time.perf_counter()
        settings = self.server.settings
        latency_ms, fail = self.server.draw()
        if latency_ms > 0:
            time.sleep(latency_ms / 1000.0)
        code = 500 if fail else 200
        doc = {"app": "goldengoose", "version": settings.version, "track": settings.track}
        if fail:
            doc["error"] = "injected fault (error_ratio)"
        # Observed before the write: a client that got its answer sees it counted in /metrics.
        self.server.metrics.observe(code, time.perf_counter() - start)
        self._send(code, json.dumps(doc).encode() + b"\n", "application/json")

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Goldengoose-Version", self.server.settings.version)
        self.send_header("X-Goldengoose-Track", self.server.settings.track)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # an access log per request would cost more than the request


def _write_port_file(path: str, port: int) -> None:
    tmp = f"{path}.tmp"
    Path(tmp).write_text(f"{port}\n", encoding="utf-8")
    os.replace(tmp, path)  # readers never see a half-written file


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = load_settings(argv)
    except KnobError as exc:
        print(f"goldengoose: invalid knob: {exc}", file=sys.stderr)
        return 2
    disable_created_metrics()
    try:
        server = GoldenGoose(settings)
    except OSError as exc:
        print(
            f"goldengoose: cannot listen on {settings.host}:{settings.port}: {exc}", file=sys.stderr
        )
        return 1
    port = server.server_address[1]
    if settings.port_file:
        _write_port_file(settings.port_file, port)
    print(
        f"goldengoose listening on {settings.host} port {port} version={settings.version} "
        f"track={settings.track} {settings.describe_faults()}",
        flush=True,
    )
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
