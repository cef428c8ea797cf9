"""The whole local chain as real processes: Prefect server, local stack and its supervisor,
deployments, worker, webhook relay. Used by `make demo` and by the end-to-end tests.

Every process is started in its own session and recorded (pid, kernel start time, argv) in
`<home>/chain.json`; `stop()` signals only processes that still match their record, so a
recycled pid is never touched. Starting twice is safe: a part that is already up and ours is
kept. Secrets (the webhook secret) travel by environment only and are never written here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from canary.platforms.local import procs, supervisor
from demo.postgres import PostgresCluster
from store.reader import PrefectReader

ROOT = Path(__file__).resolve().parents[1]
PREFECT = str(Path(sys.executable).with_name("prefect"))


#: The server keeps concurrency leases on disk (under PREFECT_HOME), not in memory: a
#: restarted server still knows which release holds an app's lock, so the lock neither
#: leaks (the slot taken for good) nor gets handed to a second release.
SERVER_ENV = {
    "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect.server.concurrency.lease_storage.filesystem",
    # The task-run recorder writes the task runs' states from their events; Prefect's default
    # writes each event in a transaction of its own (batch 1). A release's ~114 task-run
    # events come in bursts: batching them costs the server less CPU per release, and a
    # task run's state shows at most the flush interval (1 s) later (docs/scaling.md).
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "25",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
}


def notify_args(environ: Mapping[str, str]) -> list[str]:
    """register_blocks' notification options when CANARY_NOTIFY_URL is set (none when not).

    The receiver's kind is CANARY_NOTIFY_KIND (slack, teams or webhook; default webhook);
    the URL itself stays in the environment (register_blocks reads it there, never argv).
    """
    if not environ.get("CANARY_NOTIFY_URL", "").strip():
        return []
    return ["--notify", environ.get("CANARY_NOTIFY_KIND", "webhook"), "--stuck-after",
            environ.get("CANARY_NOTIFY_STUCK_AFTER", "600")]  # fmt: skip


@dataclass
class ChainConfig:
    """Where the chain lives, its ports, apps, database and webhook secret."""

    home: Path
    prefect_port: int = 4200
    relay_port: int = 8088
    app: str = "goldengoose"
    app_port: int = 18080
    #: more apps on the same chain, app name -> its HAProxy frontend port (LocalPlatform.apps):
    #: each has its own backends, Prometheus targets and production (bench/concurrent_releases)
    extra_apps: dict[str, int] = field(default_factory=dict)
    stats_port: int = 18404
    prometheus_port: int = 19090
    scrape_interval: float = 1.0
    #: the worker's safety-net poll: it is woken on each Scheduled event of its pool (flows/wake.py)
    worker_poll_seconds: float = 5.0
    webhook_secret: str = field(default="", repr=False)
    #: the Prefect server's database: "sqlite" (embedded, under home/prefect) or "postgres"
    #: (a cluster of this chain's own on 127.0.0.1:db_port, see demo/postgres.py)
    db: str = "sqlite"
    db_port: int = 15432

    @property
    def apps(self) -> dict[str, int]:
        """Every app of the chain and its HAProxy frontend port, `app` first."""
        return {self.app: self.app_port, **{n: p for n, p in self.extra_apps.items() if n != self.app}}

    @property
    def api_url(self) -> str:
        """The Prefect API's URL."""
        return f"http://127.0.0.1:{self.prefect_port}/api"

    @property
    def ui_url(self) -> str:
        """The Prefect UI's URL."""
        return f"http://127.0.0.1:{self.prefect_port}"

    @property
    def relay_url(self) -> str:
        """The webhook relay's GitHub endpoint."""
        return f"http://127.0.0.1:{self.relay_port}/github"

    @property
    def state_dir(self) -> Path:
        """The local platform's state directory."""
        return self.home / "local"


class ChainError(RuntimeError):
    """A part of the chain did not come up; the message carries its log tail."""


def _get_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return 200 <= answer.status < 300
    except OSError:
        return False


def poll(check: Callable[[], bool], *, timeout: float, what: str, log: Path | None = None) -> None:
    """Poll `check` until true or raise ChainError naming `what` (with a log tail)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            tail = procs.tail(log, 30) if log is not None and log.exists() else ""
            raise ChainError(f"{what} did not happen within {timeout:.0f} s\n{tail}")
        time.sleep(0.25)


class Chain:
    """The chain's processes: started (or kept, when already ours), recorded, stopped.

    Args:
        config: What to start, and where.
        say: Where progress lines go.
    """

    def __init__(self, config: ChainConfig, *, say: Callable[[str], None] = lambda _: None):
        self.config = config
        self.say = say
        self.home = config.home.resolve()
        self.home.mkdir(parents=True, exist_ok=True)
        self.records_file = self.home / "chain.json"

    # -- environment -----------------------------------------------------------------------
    def client_env(self) -> dict[str, str]:
        """Environment for every Prefect client of this chain (no inherited PREFECT_*)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update({
            "PREFECT_API_URL": self.config.api_url,
            "PREFECT_HOME": str(self.home / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_WORKER_QUERY_SECONDS": str(self.config.worker_poll_seconds),
            "PREFECT_WORKER_PREFETCH_SECONDS": "2",
            # The chain's server never enables CSRF protection (SERVER_ENV): a client that
            # supports it asks for a token first anyway, one GET /api/csrf-token per client it
            # makes (6 of a lone release's ~100 requests: docs/scaling.md).
            "PREFECT_CLIENT_CSRF_SUPPORT_ENABLED": "false",
            "CANARY_HOME": str(ROOT),
            "CANARY_PYTHON": sys.executable,
            "PYTHONPATH": str(ROOT),
        })  # fmt: skip
        return env

    # -- records ---------------------------------------------------------------------------
    def _records(self) -> dict[str, Any]:
        return procs.read_json(self.records_file, {}) or {}

    def _record(self, name: str, rec: procs.ProcessRecord) -> None:
        data = self._records()
        data[name] = rec.to_json()
        procs.write_json(self.records_file, data)

    def running(self, name: str) -> bool:
        """The recorded part `name` runs and is still the process recorded."""
        raw = self._records().get(name)
        return raw is not None and procs.is_ours(procs.ProcessRecord.from_json(raw))

    def _start(self, name: str, argv: list[str], env: Mapping[str, str]) -> Path:
        log = self.home / "logs" / f"{name}.log"
        if self.running(name):
            self.say(f"{name}: already running")
            return log
        proc, rec = procs.spawn(argv, cwd=ROOT, env=env, log=log)
        self._record(name, rec)
        self.say(f"{name}: started (pid {proc.pid})")
        return log

    def _run(self, argv: list[str], what: str, timeout: float = 180) -> str:
        done = subprocess.run(argv, cwd=ROOT, env=self.client_env(), capture_output=True,
                              text=True, timeout=timeout, check=False)  # fmt: skip
        if done.returncode != 0:
            raise ChainError(f"{what} failed ({done.returncode}):\n{done.stdout[-2000:]}"
                             f"\n{done.stderr[-3000:]}")  # fmt: skip
        return done.stdout

    # -- parts -----------------------------------------------------------------------------
    def start(self) -> None:
        """Start every part (server, blocks, stack, supervisor, deployments, worker, relay).

        Raises:
            ChainError: There is no webhook secret, or a part did not come up.
        """
        c = self.config
        if not c.webhook_secret:
            raise ChainError("a webhook secret is needed (GITHUB_WEBHOOK_SECRET)")
        env = self.client_env()
        self.start_server()
        apps = [arg for name, port in c.apps.items() for arg in ("--app", f"{name}={port}")]
        self._run([sys.executable, "scripts/register_blocks.py", "--state-dir", str(c.state_dir),
                   *apps, "--stats-port", str(c.stats_port), "--prometheus-port",
                   str(c.prometheus_port), "--scrape-interval", str(c.scrape_interval),
                   *notify_args(env)], "registering blocks")  # fmt: skip
        self._run([sys.executable, "-m", "canary.platforms.local", "--state-dir", str(c.state_dir),
                   "--stats-port", str(c.stats_port), "--prometheus-port", str(c.prometheus_port),
                   "--scrape-interval", str(c.scrape_interval),
                   "--release-metrics", f"127.0.0.1:{c.relay_port}", "start", *apps],
                  "starting HAProxy and Prometheus")  # fmt: skip
        frontends = ", ".join(f"{name} on 127.0.0.1:{port}" for name, port in c.apps.items())
        self.say(f"HAProxy: {frontends}; Prometheus: http://127.0.0.1:{c.prometheus_port}")
        sup_log = self._start("supervisor", [sys.executable, "-m", "canary.platforms.local",
                                             "--state-dir", str(c.state_dir), "supervise",
                                             "--interval", "2"], env)  # fmt: skip
        poll(self._supervising, timeout=30, what="the local stack's supervisor", log=sup_log)
        self.say(f"supervisor: restarts a dead HAProxy, Prometheus or production "
                 f"(log {c.state_dir / 'stack' / 'supervisor.log'})")  # fmt: skip
        self._run([PREFECT, "--no-prompt", "deploy", "--all"], "prefect deploy --all")
        self.say("deployments build and canary-release registered, with their automations")
        self.start_worker()
        relay_env = {**env, "GITHUB_WEBHOOK_SECRET": c.webhook_secret}
        relay_log = self._start("relay", [sys.executable, "-m", "webhook", "--host", "127.0.0.1",
                                          "--port", str(c.relay_port)], relay_env)  # fmt: skip
        poll(lambda: _get_ok(f"http://127.0.0.1:{c.relay_port}/healthz"), timeout=30,
             what="webhook relay health", log=relay_log)  # fmt: skip
        self.say(f"webhook relay: {c.relay_url}")

    def postgres(self) -> PostgresCluster:
        """The chain's own PostgreSQL cluster (with ``db="postgres"``)."""
        return PostgresCluster(self.home, self.config.db_port)

    def server_env(self) -> dict[str, str]:
        """The server's environment: the clients' plus its lease storage and database (the
        PostgreSQL URL carries a password: only the server's environment holds it)."""
        env = {**self.client_env(), **SERVER_ENV}
        if self.config.db == "postgres":
            env["PREFECT_API_DATABASE_CONNECTION_URL"] = self.postgres().start()
        elif self.config.db != "sqlite":
            raise ChainError(f"db must be 'sqlite' or 'postgres', not {self.config.db!r}")
        return env

    def start_server(self) -> None:
        """The Prefect server (again, after it died: same port, same PREFECT_HOME, same
        database), healthy."""
        c = self.config
        env = self.server_env()
        if c.db == "postgres":
            self.say(f"PostgreSQL: 127.0.0.1:{c.db_port} (data {self.postgres().data_dir})")
        log = self._start("prefect-server", [PREFECT, "server", "start", "--host", "127.0.0.1",
                                             "--port", str(c.prefect_port)], env)  # fmt: skip
        poll(lambda: _get_ok(f"{c.api_url}/health"), timeout=180, what="Prefect server health",
             log=log)  # fmt: skip
        self.say(f"Prefect server: {c.ui_url}")

    def start_worker(self) -> None:
        """The process worker of the pool (again, after it died), online: Prefect's process
        worker whose flow runs fork from a pre-imported zygote (flows/warm_worker.py;
        CANARY_WORKER_FORK=0 in the environment starts each run in a fresh interpreter)."""
        log = self._start("worker", [sys.executable, "-m", "flows.warm_worker", "--pool",
                                     "canary-local", "--name", "canary-local-worker"],
                          self.client_env())  # fmt: skip
        poll(self._worker_online, timeout=60, what="worker online", log=log)

    def record(self, name: str) -> procs.ProcessRecord | None:
        """The recorded process `name` (prefect-server, worker, relay, supervisor) if it is
        still ours, else None."""
        raw = self._records().get(name)
        rec = procs.ProcessRecord.from_json(raw) if raw is not None else None
        return rec if rec is not None and procs.is_ours(rec) else None

    def _supervising(self) -> bool:
        """The recorded supervisor runs, is the one the stack knows, and has checked once."""
        raw = self._records().get("supervisor")
        doc = supervisor.read_status(self.config.state_dir)
        return (raw is not None and doc.get("running") is True and doc.get("pid") == raw["pid"]
                and doc.get("checked", 0) >= doc.get("started", float("inf")))  # fmt: skip

    def _worker_online(self) -> bool:
        """True once a worker of the local pool is ONLINE (read through the store)."""
        try:
            return PrefectReader(self.config.api_url, timeout=5).worker_online("canary-local")
        except OSError:
            return False

    def stop(self) -> list[str]:
        """Stop what this chain started (the supervisor first, so it restarts nothing being
        stopped; relay, worker, server) and the local stack."""
        stopped = []
        data = self._records()
        for name in ("supervisor", "relay", "worker", "prefect-server"):
            raw = data.pop(name, None)
            timeout = 30 if name == "supervisor" else 15  # it may be mid-restart
            if raw is not None and procs.stop(procs.ProcessRecord.from_json(raw), timeout=timeout):
                stopped.append(name)
        procs.write_json(self.records_file, data)
        c = self.config
        if (self.home / "postgres").exists() and self.postgres().stop():  # after the server
            stopped.append("postgres")
        if c.state_dir.exists():
            self._run([sys.executable, "-m", "canary.platforms.local", "--state-dir",
                       str(c.state_dir), "stop"], "stopping the local stack")  # fmt: skip
            stopped.append("local stack")
        return stopped
