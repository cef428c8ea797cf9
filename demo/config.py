"""What the demo is set up with: its app, home, ports, webhook secret and records.

The demo's own record file (``<home>/demo.json``) keeps its settings and the load process;
the chain's and the local stack's records are read here, never written.
"""

from __future__ import annotations

import argparse
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from canary.platforms.local import procs
from demo.chain import ROOT, ChainConfig
from demo.hooks import SECRET_ENV

APP = "goldengoose"
DEFAULT_HOME = ROOT / ".demo"
DEPLOYMENTS = ("build", "canary-release")
WORKER_LOG = "logs/worker.log"
INTERVAL_KEY = f"canary-interval-{APP}"
DEFAULTS = ChainConfig(home=DEFAULT_HOME)

#: (ChainConfig attribute, command-line flag, what listens there)
PORTS: tuple[tuple[str, str, str], ...] = (
    ("prefect_port", "--prefect-port", "Prefect server (API + UI)"),
    ("relay_port", "--relay-port", "webhook relay"),
    ("app_port", "--app-port", f"HAProxy frontend of {APP}"),
    ("stats_port", "--stats-port", "HAProxy stats/metrics"),
    ("prometheus_port", "--prometheus-port", "Prometheus"),
)

#: Every demo version answers like a real service: 20 ms plus exponential jitter of mean
#: 10 ms (p50 ~27 ms, p99 ~66 ms); v3 adds 60 ms. Kept in each commit's faults.json.
PRODUCTION_LIKE = {"base_latency_ms": 20, "jitter_ms": 10, "jitter_dist": "exponential"}


class DemoError(RuntimeError):
    """The demo cannot go on; the message says why and what to do."""


def chain_config(args: argparse.Namespace, secret: str = "") -> ChainConfig:
    """The chain the command line asks for.

    Args:
        args: The parsed command line (``--home``, the ports, ``--db``, ``--db-port``).
        secret: The webhook secret the relay checks signatures with.

    Returns:
        The chain's configuration.
    """
    ports = {attr: getattr(args, attr) for attr, _, _ in PORTS}
    return ChainConfig(home=args.home.resolve(), app=APP, webhook_secret=secret,
                       db=getattr(args, "db", "sqlite"), db_port=getattr(args, "db_port", 15432),
                       **ports)  # fmt: skip


def port_settings(config: ChainConfig) -> dict[str, int]:
    """Every port of the chain, by ChainConfig attribute (what the demo records)."""
    return {attr: int(getattr(config, attr)) for attr, _, _ in PORTS}


def webhook_secret(home: Path, environ: Mapping[str, str] = os.environ) -> tuple[str, str]:
    """The webhook secret and where it came from: the environment, else ``<home>/secret``.

    The file is made once (mode 600) when neither exists.

    Args:
        home: The demo's home.
        environ: The environment to look in.

    Returns:
        (secret, where it came from).
    """
    if environ.get(SECRET_ENV):
        return environ[SECRET_ENV], f"${SECRET_ENV}"
    path = home / "secret"
    if path.exists():
        path.chmod(0o600)
        kept = path.read_text().strip()
        if kept:
            return kept, str(path)
    home.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".secret.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        value = secrets.token_hex(32)
        os.write(fd, value.encode() + b"\n")
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return value, f"{path} (new)"


class Records:
    """The demo's own record file and a read-only view of the chain's and the stack's.

    ``<home>/demo.json`` holds the settings and the load process.

    Args:
        home: The demo's home.
    """

    def __init__(self, home: Path) -> None:
        self.home = home.resolve()
        self.file = self.home / "demo.json"

    def read(self) -> dict[str, object]:
        """The demo's record file (empty when there is none)."""
        data: dict[str, object] = procs.read_json(self.file, {}) or {}
        return data

    def settings(self) -> dict[str, int] | None:
        """The ports the running demo was started with, if recorded."""
        kept = self.read().get("settings")
        return {str(k): int(v) for k, v in kept.items()} if isinstance(kept, dict) else None

    def update(self, **items: object) -> None:
        """Set (or, with None, remove) entries of the record file."""
        data = self.read()
        for key, value in items.items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        procs.write_json(self.file, data)

    def load(self) -> procs.ProcessRecord | None:
        """The recorded load generator, if any."""
        raw = self.read().get("load")
        return procs.ProcessRecord.from_json(raw) if isinstance(raw, dict) and raw else None

    def chain_parts(self) -> dict[str, procs.ProcessRecord]:
        """The chain's recorded processes (``chain.json``), by part."""
        raw = procs.read_json(self.home / "chain.json", {}) or {}
        return {name: procs.ProcessRecord.from_json(rec) for name, rec in raw.items()}

    def stack_parts(self) -> dict[str, procs.ProcessRecord]:
        """The local stack's recorded HAProxy and Prometheus."""
        out = {}
        for name in ("haproxy", "prometheus"):
            doc = procs.read_json(self.home / "local" / "stack" / f"{name}.pid.json")
            if doc and doc.get("process"):
                out[name] = procs.ProcessRecord.from_json(doc["process"])
        return out

    def running(self) -> dict[str, procs.ProcessRecord]:
        """Every recorded process of the demo that is still the very process recorded."""
        parts = {**self.chain_parts(), **self.stack_parts()}
        if (load := self.load()) is not None:
            parts["load"] = load
        return {name: rec for name, rec in parts.items() if procs.is_ours(rec)}
