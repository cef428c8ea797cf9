"""Keeps the local stack alive: a dead HAProxy, Prometheus or production process is restarted.

Every part runs in a session of its own, so a Ctrl-C of whoever started it does not take it
down; that also means nobody notices when one dies. `Supervisor.check_and_repair` looks at
each part, restarts what died, and says per part what it saw and what it did:

* Prometheus comes back on the port and data directory it had (`LocalStack.from_state`); its
  TSDB is on disk, so queries answer again with the history intact.
* HAProxy comes back from its config, never from weights an earlier life saved: 100 % primary
  on the live production process, read back from the admin socket. A release that is running
  re-applies its split at its next step (its guards check readiness first).
* Production (role ``primary`` of an app) comes back from its recorded image on a free port;
  HAProxy's primary slot is pointed at it and the record replaced (ProcessWorkloads' format).
  Never while the app is mid-promotion (``primary-next`` / ``retired`` recorded): that is the
  release's, or its reconcile's, to settle. A live production the primary slot does not point
  at is re-routed (a restart the supervisor could not route, HAProxy being down).

Budget: at most `max_restarts` restarts of a part within `window` seconds, retry n waiting
``backoff * 2**(n-1)`` s after the one before; then the part is ``failed``, with the reason,
and left alone until it is healthy again (someone fixed it) or `reset`. Decisions go to
``stack/supervisor.log`` (UTC timestamps); the last check, per part, to
``stack/supervisor.json`` for `status`; every restart, one JSON line, to
``stack/restarts.jsonl``, which a running release reads at each look (parts.restarts_since).
Races: Prometheus/HAProxy restart under the stack's lock (held by start/stop too), production
under the app's workloads lock (held by every spawn and reconcile); one supervisor per state
dir (``stack/supervisor.lock``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import TextIO

from canary.errors import CanaryError, PlatformError
from canary.platforms.local import procs, prometheus
from canary.platforms.local.parts import (
    Part,
    Probe,
    gone,
    health_now,
    now_text,
    read_status,
    record_restart,
)
from canary.platforms.local.stack import LocalStack
from canary.platforms.local.workloads import ProcessWorkloads, Workload, _ready_timeout

#: what tests and callers imported from here before parts.py held it
_Probe = Probe
__all__ = ["PROMOTING", "Part", "Supervisor", "gone", "health_now", "read_status"]

PROMOTING = ("primary-next", "retired")


class _HeldLock(ProcessWorkloads):
    """ProcessWorkloads for a caller that already holds the app's lock (flock is per open
    file: taking it a second time from this process would wait for ourselves)."""

    @contextlib.contextmanager
    def _locked(self, app: str) -> Iterator[None]:
        yield


class Supervisor:
    """Checks the local stack's parts and restarts the dead ones, within a restart budget
    (see the module's doc)."""

    def __init__(
        self,
        stack: LocalStack,
        *,
        max_restarts: int = 3,
        window: float = 300.0,
        backoff: float = 1.0,
        echo: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.stack = stack
        self.max_restarts, self.window, self.backoff = max_restarts, window, backoff
        self.echo, self.clock = echo, clock
        self.state_file = stack.dir / "supervisor.json"
        self.log_file = stack.dir / "supervisor.log"
        saved = procs.as_mapping(procs.read_mapping(self.state_file).get("parts"))
        self.parts = {n: Part.from_json(p) for n, p in saved.items()}
        self._lock_fh: TextIO | None = None

    # -- one pass -------------------------------------------------------------------------
    def check_and_repair(self) -> dict[str, Part]:
        """Look at every part once, restart the dead ones the budget allows; per part, what
        was seen and done. The caller holds the supervisor lock (`claim`) or is a test."""
        seen: dict[str, Part] = {}
        for name, probe, restart in self._targets():
            part = self.parts.get(name) or Part(name)
            try:
                self._step(part, probe, restart)
            except Exception as exc:  # one part's trouble must not end the supervision
                part.health, part.action, part.detail = "unknown", "check-failed", str(exc)
                self.log(f"{name}: the check itself failed: {exc}")
            seen[name] = part
        self.parts = seen
        self._save()
        for pid, child in list(procs._CHILDREN.items()):  # processes we restarted that others
            if child.poll() is not None:  # stopped since (a promotion): no zombies left
                procs._CHILDREN.pop(pid, None)
        return dict(seen)

    def _targets(self) -> Iterator[tuple[str, Callable[[Part], Probe], Callable[[], int]]]:
        yield "prometheus", self._probe_prometheus, self._restart_prometheus
        yield "haproxy", self._probe_haproxy, self._restart_haproxy
        apps = set(self.stack.apps()) | {
            p.stem for p in (self.stack.state / "workloads").glob("*.json")
        }
        for app in sorted(apps):
            yield (f"production/{app}", partial(self._probe_production, app),
                   partial(self._restart_production, app))  # fmt: skip

    def _step(
        self, part: Part, probe: Callable[[Part], Probe], restart: Callable[[], int]
    ) -> None:
        now = self.clock()
        part.attempts = [t for t in part.attempts if now - t < self.window]
        seen = probe(part)
        part.pid, part.detail, part.next_attempt = seen.pid, seen.detail, None
        if seen.health == "running":
            if part.health == "failed":
                self.log(f"{part.name}: healthy again (pid {seen.pid}); restart budget reset")
                part.attempts = []
            part.health, part.action = "running", seen.action
            return
        if seen.health != "dead":  # unhealthy, absent, promoting: nothing to restart
            part.health, part.action = seen.health, "none"
            return
        if part.health == "failed":
            part.action = "left-alone"
            return
        if len(part.attempts) >= self.max_restarts:
            self._give_up(part)
            return
        due = (
            part.attempts[-1] + self.backoff * 2 ** (len(part.attempts) - 1)
            if part.attempts
            else now
        )
        if due > now:
            part.health, part.action, part.next_attempt = "restarting", "waiting", due
            return
        part.attempts.append(now)
        part.restarts += 1
        part.last_restart, part.last_reason = now, seen.detail
        part.health, part.action = "restarting", "restarting"
        self.log(f"{part.name}: {seen.detail}; restarting it "
                 f"(restart {len(part.attempts)} of at most {self.max_restarts} in {self.window:g} s)")  # fmt: skip
        self.parts[part.name] = part
        self._save()  # `status` shows "restarting" while it happens
        t0 = time.monotonic()
        try:
            pid = restart()
        except (CanaryError, OSError) as exc:
            part.last_error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self.log(f"{part.name}: restart failed: {part.last_error}")
            record_restart(self.stack.dir, part.name, now, seen.detail,
                           f"restart failed: {part.last_error}")  # fmt: skip
            if len(part.attempts) >= self.max_restarts:
                self._give_up(part)
            else:
                part.action = "restart-failed"
                part.next_attempt = now + self.backoff * 2 ** (len(part.attempts) - 1)
            return
        part.healthy_after = time.monotonic() - t0
        part.health, part.pid, part.action, part.last_error = "running", pid, "restarted", ""
        part.detail = f"restarted as pid {pid}"
        self.log(f"{part.name}: restarted as pid {pid}, healthy after {part.healthy_after:.2f} s")
        record_restart(self.stack.dir, part.name, now, seen.detail, f"restarted as pid {pid}")

    def _give_up(self, part: Part) -> None:
        why = part.last_error or part.last_reason
        part.health, part.action = "failed", "gave-up"
        part.detail = (f"{len(part.attempts)} restarts within {self.window:g} s, the limit; last: "
                       f"{why}. Left alone until it is healthy again (fix the cause, then "
                       f"`python -m canary.platforms.local start`) or `supervise --reset`")  # fmt: skip
        self.log(f"{part.name}: FAILED, giving up: {part.detail}")

    def reset(self) -> None:
        """Forget restart history and `failed` verdicts (after an operator fixed the cause)."""
        self.parts = {}
        self._save()
        self.log("restart budgets reset")

    # -- Prometheus and HAProxy -----------------------------------------------------------
    def _stack_probe(self, name: str, part: Part, answers: Callable[[], bool], what: str) -> Probe:
        rec = self.stack.process(name)
        if rec is None:  # a failed start removes the pid file: still ours to restart
            if part.health in ("restarting", "failed"):
                return Probe("dead", None, part.last_error or part.last_reason)
            return Probe("absent", None, "not started here (no pid file)")
        if not procs.is_ours(rec):
            return Probe("dead", rec.pid, gone(rec))
        if not answers():
            return Probe("unhealthy", rec.pid, f"pid {rec.pid} runs but {what} does not answer")
        return Probe("running", rec.pid)

    def _probe_prometheus(self, part: Part) -> Probe:
        url = self.stack.prometheus_url
        return self._stack_probe("prometheus", part, lambda: prometheus.ready(url, 2.0),
                                 f"{url}/-/ready")  # fmt: skip

    def _probe_haproxy(self, part: Part) -> Probe:
        return self._stack_probe("haproxy", part, lambda: bool(self.stack.worker_pid()),
                                 f"the admin socket {self.stack.admin_socket}")  # fmt: skip

    def _restart_prometheus(self) -> int:
        with self.stack.locked():  # same port, same --storage.tsdb.path
            self.stack._ensure_prometheus()
        return self._pid_of("prometheus")

    def _restart_haproxy(self) -> int:
        with self.stack.locked():  # a fresh start: from the config, the saved state set aside
            started = self.stack._ensure_haproxy() == "started"
        if started:  # (else someone else started it meanwhile: their weights are theirs)
            router = self.stack.router()
            for app in self.stack.apps():
                router.rollback(app)  # 100 % primary, read back; a release re-applies its split
        return self._pid_of("haproxy")

    def _pid_of(self, name: str) -> int:
        rec = self.stack.running(name)
        if rec is None:
            raise PlatformError(f"{name} is not running after its restart")
        return rec.pid

    # -- production -----------------------------------------------------------------------
    def _app_lock(self, app: str) -> contextlib.AbstractContextManager[None]:
        return procs.locked(self.stack.state / "workloads" / f"{app}.lock")

    def _probe_production(self, app: str, part: Part) -> Probe:
        wl = ProcessWorkloads(self.stack.state)
        items = wl.list(app)
        prod = next((w for w in items if w.role == "primary"), None)
        pid = prod.pid if prod else None
        if busy := sorted({w.role for w in items if w.role in PROMOTING}):
            return Probe("promoting", pid, f"mid-promotion ({', '.join(busy)} recorded): left "
                          f"to the release, or `python -m canary.platforms.local reconcile {app}`")  # fmt: skip
        if prod is None:
            return Probe("absent", None, "no production process is recorded")
        if not prod.alive():
            return Probe("dead", prod.pid, f"production {prod.version} ({gone(prod.process)})")
        if problem := wl.serving(app, "primary"):
            return Probe("unhealthy", prod.pid, problem.splitlines()[0])
        detail = f"{prod.version} on port {prod.port}"
        if self._route(app, prod):
            self.log(f"production/{app}: HAProxy's primary slot re-pointed at pid {prod.pid} "
                     f"(port {prod.port})")  # fmt: skip
            return Probe("running", prod.pid, detail + "; re-routed", "rerouted")
        return Probe("running", prod.pid, detail)

    def _route(self, app: str, prod: Workload) -> bool:
        """Point the primary slot at `prod` unless it does; False if nothing was changed.
        Under the app's lock, re-read: a promotion that started meanwhile is left alone."""
        if self.stack.running("haproxy") is None or app not in self.stack.apps():
            return False
        router = self.stack.router()
        if router.servers(app)["primary"].port == prod.port:
            return False
        with self._app_lock(app):
            items = ProcessWorkloads(self.stack.state).list(app)
            now = next((w for w in items if w.role == "primary"), None)
            if any(w.role in PROMOTING for w in items) or now is None or now.pid != prod.pid:
                return False
            router.attach(app, "primary", prod.port)
        return True

    def _restart_production(self, app: str) -> int:
        wl = self.stack.workloads()
        held = _HeldLock(self.stack.state, router=wl.router, targets_dir=wl.targets_dir)
        with self._app_lock(app):  # decide, spawn and record as one step
            items = held.list(app)
            if any(w.role in PROMOTING for w in items):
                raise PlatformError(f"{app}: a promotion started meanwhile; left to it")
            dead = next((w for w in items if w.role == "primary"), None)
            if dead is None or dead.alive():
                raise PlatformError(f"{app}: production changed meanwhile; nothing restarted")
            new = held._start(app, "primary", dead.image)
            held._save(app, [w for w in held.list(app) if w.pid != dead.pid])
        try:
            new = wl._ready(new, _ready_timeout(self.stack.state, new.image))
        except BaseException:  # the records stay (dead): the next try knows the image
            for w in wl.list(app):
                if w.role == "primary" and not w.ready:
                    procs.stop(w.process)
            raise
        with self._app_lock(app):
            items = held.list(app)
            if any(w.role in PROMOTING for w in items) or new.pid not in {w.pid for w in items}:
                return new.pid  # someone else took over meanwhile
            held._update(app, new.pid, ready=True)
        if not self._route(app, new) and self.stack.running("haproxy") is None:
            self.log(f"production/{app}: HAProxy is down; pid {new.pid} is routed when it is back")
        return new.pid

    # -- state, log, the long-running mode ------------------------------------------------
    def log(self, text: str) -> None:
        """Append a timestamped line to supervisor.log (and stderr when echoing)."""
        line = f"{now_text(self.clock())} {text}"
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
        if self.echo:
            print(line, file=sys.stderr, flush=True)

    def _save(self, **extra: object) -> None:
        doc = procs.read_mapping(self.state_file)
        doc.update(extra)
        doc["parts"] = {n: p.to_json() for n, p in self.parts.items()}
        doc["checked"] = self.clock()
        doc["limits"] = {"max_restarts": self.max_restarts, "window": self.window,
                         "backoff": self.backoff}  # fmt: skip
        procs.write_json(self.state_file, doc)

    def claim(self) -> None:
        """Become the one supervisor of this state dir (PlatformError if another one is)."""
        self.stack.dir.mkdir(parents=True, exist_ok=True)
        fh = open(self.stack.dir / "supervisor.lock", "a")  # noqa: SIM115 - held for our lifetime
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            other = self.stack.running("supervisor")
            raise PlatformError(
                f"{self.stack.state} is already supervised"
                + (f" by pid {other.pid}" if other else "")
                + "; stop that one first"
            ) from None
        self._lock_fh = fh

    def release(self) -> None:
        """Stop being this state dir's supervisor (let go of the lock)."""
        if self._lock_fh is not None:
            self._lock_fh.close()
            self._lock_fh = None

    def run(self, interval: float, stop: threading.Event) -> None:
        """Check every `interval` s until `stop` is set (SIGTERM); records itself meanwhile."""
        self.claim()
        stat = procs._stat(os.getpid())
        if stat is None:  # only when /proc is not there to read (the local platform needs it)
            raise PlatformError(f"cannot read /proc/{os.getpid()}/stat of the supervisor itself")
        me = procs.ProcessRecord(os.getpid(), stat[1],
                                 procs._cmdline(os.getpid()) or (sys.executable,))  # fmt: skip
        pidfile = self.stack.dir / "supervisor.pid.json"
        procs.write_json(pidfile, {"process": me.to_json(), "config_sha": ""})
        self._save(pid=me.pid, interval=interval, started=self.clock(), stopped=None)
        self.log(f"supervising {self.stack.state} every {interval:g} s (pid {me.pid})")
        try:
            while not stop.is_set():
                try:
                    self.check_and_repair()
                except Exception as exc:  # e.g. a corrupt apps.json: say so, keep watching
                    self.log(f"check failed: {exc}")
                stop.wait(interval)
        finally:
            self._save(stopped=self.clock())
            if procs.read_mapping(pidfile).get("process") == me.to_json():
                pidfile.unlink(missing_ok=True)
            self.log(f"supervisor pid {me.pid} stopped")
            self.release()
