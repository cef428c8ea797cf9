"""The local stack: HAProxy and Prometheus as plain processes, started and stopped idempotently.

Everything lives under ``<state>/stack/``: generated configs, logs, the admin socket, the
server-state-file, Prometheus' TSDB, and one ``<name>.pid.json`` per component holding its
verified process record plus the hash of the config it runs. ``start`` starts what is not
running, reloads what runs an older config (HAProxy: save server state, SIGUSR2 to the
master; Prometheus: POST /-/reload) and leaves the rest alone; ``stop`` stops only the pids
it recorded. Apps are registered with a frontend port in ``apps.json``; the settings of the
last ``start`` (ports, binaries) in ``settings.json``, so `from_state` (the CLI, the
supervisor) restarts a part exactly where it ran. start/stop/add_app hold ``stack.lock``,
as does the supervisor while it restarts a part: two hands never start one part twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypedDict, Unpack

import typing_extensions
from pydantic import TypeAdapter

from canary.errors import ConfigError, PlatformError
from canary.platforms.local import haproxy, procs, prometheus
from canary.platforms.local.workloads import ProcessWorkloads

#: LocalStack arguments kept in stack/settings.json by `start` and read back by `from_state`.
SETTINGS = ("haproxy_bin", "prometheus_bin", "haproxy_stats_port", "prometheus_port",
            "scrape_interval", "release_metrics")  # fmt: skip


class Settings(typing_extensions.TypedDict, total=False):
    """LocalStack's arguments kept in stack/settings.json (pydantic reads it back: it needs
    typing_extensions' TypedDict before Python 3.12)."""

    haproxy_bin: str
    prometheus_bin: str
    haproxy_stats_port: int
    prometheus_port: int
    scrape_interval: float
    release_metrics: str | None


class GivenSettings(TypedDict, total=False):
    """LocalStack.from_state's overrides (None: the saved value, else the default)."""

    haproxy_bin: str | None
    prometheus_bin: str | None
    haproxy_stats_port: int | None
    prometheus_port: int | None
    scrape_interval: float | None
    release_metrics: str | None


_SETTINGS = TypeAdapter(Settings)


class LocalStack:
    """HAProxy and Prometheus on 127.0.0.1 for the local platform, started, reloaded and
    stopped from pid files under `<state_dir>/stack` (see the package's README)."""

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        *,
        haproxy_bin: str = "/usr/sbin/haproxy",
        prometheus_bin: str = "/usr/bin/prometheus",
        haproxy_stats_port: int = 18404,
        prometheus_port: int = 19090,
        scrape_interval: float = 1.0,
        release_metrics: str | None = None,
        start_timeout: float = 15.0,
    ) -> None:
        self.state = Path(state_dir)
        self.dir = self.state / "stack"
        self.haproxy_bin, self.prometheus_bin = haproxy_bin, prometheus_bin
        self.stats_port, self.prometheus_port = haproxy_stats_port, prometheus_port
        self.scrape_interval, self.start_timeout = scrape_interval, start_timeout
        #: host:port of the webhook relay's release metrics (its /metrics), scraped if set
        self.release_metrics = release_metrics
        self.admin_socket = self.dir / "haproxy.sock"
        self.server_state = self.dir / "haproxy.state"
        self.targets_dir = self.state / "targets"
        if len(str(self.admin_socket.resolve())) > 100:
            raise ConfigError(
                f"state_dir {self.state} is too deep for a unix socket path; use a shorter one"
            )

    @classmethod
    def from_state(cls, state_dir: str | os.PathLike[str], **given: Unpack[GivenSettings]) -> LocalStack:
        """The stack as last started in `state_dir`; `given` values other than None win."""
        saved = procs.read_mapping(Path(state_dir) / "stack" / "settings.json")
        kwargs = _SETTINGS.validate_python({k: saved[k] for k in SETTINGS if k in saved})
        chosen = {k: v for k, v in given.items() if v is not None}
        return cls(state_dir, **_SETTINGS.validate_python({**kwargs, **chosen}))

    def settings(self) -> Settings:
        """The arguments `start` keeps in stack/settings.json (see SETTINGS)."""
        return {
            "haproxy_bin": self.haproxy_bin,
            "prometheus_bin": self.prometheus_bin,
            "haproxy_stats_port": self.stats_port,
            "prometheus_port": self.prometheus_port,
            "scrape_interval": self.scrape_interval,
            "release_metrics": self.release_metrics,
        }

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Held while a part is started, reloaded or stopped (by the CLI or the supervisor)."""
        with procs.locked(self.dir / "stack.lock"):
            yield

    # -- apps -----------------------------------------------------------------------------
    def apps(self) -> dict[str, int]:
        """Every registered app and its HAProxy frontend port."""
        return {k: procs.as_int(v, f"apps.json: port of {k}") for k, v in
                procs.read_mapping(self.dir / "apps.json").items()}  # fmt: skip

    def add_app(self, app: str, port: int | None = None) -> int:
        """Register `app` behind HAProxy on 127.0.0.1:`port` (reloads a running HAProxy)."""
        apps = self.apps()
        if app in apps and port in (None, apps[app]):
            return apps[app]
        with self.locked():
            apps = self.apps()
            taken = {self.stats_port, self.prometheus_port, *apps.values()}
            apps[app] = int(port) if port else procs.free_port(exclude=taken)
            procs.write_json(self.dir / "apps.json", apps)
            if self._running("haproxy"):
                self._ensure_haproxy()
        return apps[app]

    def frontend_url(self, app: str) -> str:
        """Where `app`'s HAProxy frontend answers."""
        return f"http://127.0.0.1:{self.apps()[app]}"

    @property
    def prometheus_url(self) -> str:
        """Where Prometheus answers."""
        return f"http://127.0.0.1:{self.prometheus_port}"

    def router(self) -> haproxy.HAProxyRouter:
        """The TrafficRouter over HAProxy's admin socket."""
        return haproxy.HAProxyRouter(self.admin_socket, state_file=self.server_state)

    def workloads(self, *, python: str | None = None, stop_timeout: float = 10.0) -> ProcessWorkloads:
        """The Workloads of every app, routed through this stack's HAProxy."""
        return ProcessWorkloads(self.state, router=self.router(), targets_dir=self.targets_dir,
                                python=python, stop_timeout=stop_timeout)  # fmt: skip

    # -- pid files ------------------------------------------------------------------------
    def _pidfile(self, name: str) -> Path:
        return self.dir / f"{name}.pid.json"

    def _record(self, name: str) -> tuple[procs.ProcessRecord, str] | None:
        doc = procs.read_mapping(self._pidfile(name))
        if not doc:
            return None
        return (procs.ProcessRecord.from_json(procs.as_mapping(doc.get("process"))),
                str(doc.get("config_sha", "")))  # fmt: skip

    def _running(self, name: str) -> procs.ProcessRecord | None:
        found = self._record(name)
        return found[0] if found and procs.is_ours(found[0]) else None

    def process(self, name: str) -> procs.ProcessRecord | None:
        """The recorded process of `name` (haproxy, prometheus, supervisor), alive or not."""
        found = self._record(name)
        return found[0] if found else None

    def running(self, name: str) -> procs.ProcessRecord | None:
        """The recorded process of `name` while it still is that very process."""
        return self._running(name)

    def _write(self, path: Path, text: str) -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return hashlib.sha256(text.encode()).hexdigest()

    def _started(self, name: str, argv: list[str], sha: str,
                 ready: Callable[[], object]) -> procs.ProcessRecord:  # fmt: skip
        log = self.dir / f"{name}.log"
        proc, rec = procs.spawn(argv, cwd=self.dir, env=os.environ, log=log)
        procs.write_json(self._pidfile(name), {"process": rec.to_json(), "config_sha": sha})
        deadline = time.monotonic() + self.start_timeout
        while not ready():
            exited = proc.poll() is not None
            if exited or time.monotonic() > deadline:
                procs.stop(rec)
                self._pidfile(name).unlink(missing_ok=True)
                why = f"exited with {proc.returncode}" if exited else "not ready in time"
                raise PlatformError(
                    f"{name} {why} (limit {self.start_timeout:g}s); argv {argv}; "
                    f"log {log}:\n{procs.tail(log)}",
                    transient=not exited,
                )
            time.sleep(0.05)
        return rec

    # -- HAProxy --------------------------------------------------------------------------
    def _haproxy_config(self, *, live: bool = True) -> str:
        """HAProxy's config; with `live`, each slot pointing at what runs now (what a fresh
        start routes to), else the structure alone (apps, ports, sockets)."""
        servers = {}
        for app in self.apps() if live else ():  # on a fresh start, route to what runs
            running = [w for w in ProcessWorkloads(self.state).list(app) if w.alive() and w.ready]
            servers[app] = {w.role: w.port for w in running if w.role in haproxy.TRACKS}
        return haproxy.render_config(
            self.apps(),
            admin_socket=self.admin_socket.resolve(),
            state_file=self.server_state.resolve(),
            stats_port=self.stats_port,
            servers=servers,
        )

    def worker_pid(self) -> str:
        """The pid HAProxy's current worker reports on the admin socket ('' if none answers)."""
        try:
            info = haproxy.AdminSocket(self.admin_socket, timeout=1.0)("show info")
        except PlatformError:
            return ""
        return next((ln[4:].strip() for ln in info.splitlines() if ln.startswith("Pid:")), "")

    def _ensure_haproxy(self) -> str:
        """HAProxy running the config of the registered apps: `started`, `reloaded` or
        `running` (its structure unchanged: no reload).

        A running HAProxy keeps its slots' addresses and weights at runtime, so only the
        structure (apps, ports, sockets) decides whether it reloads, never which tracks run:
        a reload while other releases change weights could hand the new worker a state saved
        before their change (seen at 20 releases at once: a release's first look got no
        traffic because another release's reconcile had reloaded HAProxy).
        """
        cfg = self.dir / "haproxy.cfg"
        sha = hashlib.sha256(self._haproxy_config(live=False).encode()).hexdigest()
        running, found = self._running("haproxy"), self._record("haproxy")
        if running and found and found[1] == sha:
            return "running"
        self._write(cfg.with_suffix(".cfg.new"), self._haproxy_config())
        check = subprocess.run(
            [self.haproxy_bin, "-c", "-q", "-f", str(cfg.with_suffix(".cfg.new"))],
            capture_output=True,
            text=True,
            check=False,
        )
        if check.returncode != 0:
            raise ConfigError(f"generated HAProxy config is invalid: {check.stderr.strip()}")
        os.replace(cfg.with_suffix(".cfg.new"), cfg)
        if not running:
            # A fresh HAProxy (first start, or after it died) takes its weights and addresses
            # from the config: 100 % primary on live production. Weights saved by an earlier
            # life could split traffic to a canary that is gone; a running release re-applies
            # its split at its next step. The old file stays beside it for forensics.
            with contextlib.suppress(FileNotFoundError):
                os.replace(self.server_state, self.server_state.with_suffix(".state.previous"))
            argv = [self.haproxy_bin, "-W", "-db", "-f", str(cfg.resolve())]
            self._started("haproxy", argv, sha, self.worker_pid)
            return "started"
        self.router().save_state()
        before = self.worker_pid()
        os.kill(running.pid, signal.SIGUSR2)  # is_ours was checked just above
        deadline = time.monotonic() + self.start_timeout
        while self.worker_pid() in ("", before):
            if time.monotonic() > deadline:
                raise PlatformError(
                    f"HAProxy did not reload within {self.start_timeout:g}s; "
                    f"log {self.dir / 'haproxy.log'}"
                )
            time.sleep(0.05)
        procs.write_json(
            self._pidfile("haproxy"), {"process": running.to_json(), "config_sha": sha}
        )
        return "reloaded"

    # -- Prometheus -----------------------------------------------------------------------
    def _ensure_prometheus(self) -> str:
        cfg = self.dir / "prometheus.yml"
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        text = prometheus.render_config(
            self.targets_dir.resolve(),
            scrape_interval=self.scrape_interval,
            haproxy_stats_port=self.stats_port,
            release_metrics=self.release_metrics,
        )
        running, found = self._running("prometheus"), self._record("prometheus")
        sha = hashlib.sha256(text.encode()).hexdigest()
        if running and found and found[1] == sha:
            return "running"
        self._write(cfg, text)
        if running:
            req = urllib.request.Request(self.prometheus_url + "/-/reload", method="POST")
            try:
                urllib.request.urlopen(req, timeout=5).close()
            except OSError as exc:
                raise PlatformError(f"Prometheus reload failed: {exc}", transient=True) from None
            procs.write_json(
                self._pidfile("prometheus"), {"process": running.to_json(), "config_sha": sha}
            )
            return "reloaded"
        argv = [
            self.prometheus_bin,
            f"--config.file={cfg.resolve()}",
            f"--storage.tsdb.path={(self.dir / 'prometheus-data').resolve()}",
            f"--web.listen-address=127.0.0.1:{self.prometheus_port}",
            "--storage.tsdb.retention.time=2h",
            "--web.enable-lifecycle",
            "--log.level=warn",
        ]
        self._started("prometheus", argv, sha, lambda: prometheus.ready(self.prometheus_url, 0.5))
        return "started"

    # -- lifecycle ------------------------------------------------------------------------
    def start(self, *, haproxy: bool = True, prometheus: bool = True) -> dict[str, str]:
        """Bring the stack up; `started` / `reloaded` / `running` per component."""
        self.dir.mkdir(parents=True, exist_ok=True)
        out = {}
        with self.locked():
            if self.release_metrics is None:  # a start that does not name it keeps it
                kept = procs.read_mapping(self.dir / "settings.json").get("release_metrics")
                self.release_metrics = kept if isinstance(kept, str) else None
            procs.write_json(self.dir / "settings.json", self.settings())
            if haproxy:
                out["haproxy"] = self._ensure_haproxy()
            if prometheus:
                out["prometheus"] = self._ensure_prometheus()
        return out

    def stop(self, *, workloads: bool = True) -> dict[str, object]:
        """Stop the supervisor (if one ran: first, so it restarts nothing being stopped), the
        recorded workloads (unless told not to), Prometheus and HAProxy; idempotent."""
        out: dict[str, object] = {}
        found = self._record("supervisor")  # not under the lock: the supervisor may hold it
        if found:
            out["supervisor"] = "stopped" if procs.stop(found[0], timeout=30) else "not running"
            self._pidfile("supervisor").unlink(missing_ok=True)
        with self.locked():
            if workloads:
                wl = ProcessWorkloads(self.state)
                out["workloads"] = {app: wl.stop_all(app) for app in self._workload_apps()}
            for name in ("prometheus", "haproxy"):
                found = self._record(name)
                out[name] = "stopped" if found and procs.stop(found[0]) else "not running"
                self._pidfile(name).unlink(missing_ok=True)
        return out

    def _workload_apps(self) -> list[str]:
        return sorted(p.stem for p in (self.state / "workloads").glob("*.json"))

    def status(self) -> dict[str, object]:
        """What runs (HAProxy, Prometheus, the supervisor) and each app's processes and
        weights, for `python -m canary.platforms.local status`."""
        parts: dict[str, dict[str, object]] = {}
        for name in ("haproxy", "prometheus", "supervisor"):
            rec = self._running(name)
            parts[name] = {"running": rec is not None, "pid": rec.pid if rec else None}
        parts["prometheus"]["url"] = self.prometheus_url
        parts["haproxy"]["admin_socket"] = str(self.admin_socket)
        out: dict[str, object] = dict(parts)
        wl = ProcessWorkloads(self.state)
        apps = {}
        for app in sorted(set(self.apps()) | set(self._workload_apps())):
            entry: dict[str, object] = {"frontend": self.apps().get(app)}
            entry["workloads"] = [
                {
                    "role": w.role,
                    "pid": w.pid,
                    "port": w.port,
                    "version": w.version,
                    "image": w.image,
                    "alive": w.alive(),
                }
                for w in wl.list(app)
            ]
            if parts["haproxy"]["running"] and app in self.apps():
                entry["weights"] = self.router().raw_weights(app)
            apps[app] = entry
        out["apps"] = apps
        return out
