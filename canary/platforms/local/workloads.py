"""Workloads as supervised local processes: production, baseline and canary of each app.

Every process runs an artifact from the builder's store on its own free 127.0.0.1 port, in
its own session, with its log in ``<state>/logs/``. ``<state>/workloads/<app>.json`` records
each one (role, pid + kernel start time + argv, port, image, version) *before* anything else
happens to it, under a lock, so a later run's `reconcile` can find and stop whatever a
crashed orchestrator left behind. Only recorded, still-verified processes are signalled.

Roles: ``primary`` (production), ``baseline``, ``canary``, and during a promotion
``primary-next`` (the new production, not yet routed) and ``retired`` (the old one, drained).
"""

from __future__ import annotations

import builtins
import contextlib
import os
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from pydantic import TypeAdapter

from canary.errors import ConfigError, PlatformError
from canary.platforms.local import procs, prometheus
from canary.platforms.local.builder import load_artifact
from canary.platforms.local.haproxy import HAProxyRouter
from canary.platforms.local.spec import AppSpec, process_env, render
from canary.values.tracks import Track

MARKER = "CANARY_LOCAL_STATE"  # in every spawned environment: finds unrecorded orphans
ROLES = ("primary", "baseline", "canary", "primary-next", "retired")


@dataclass(frozen=True)
class Workload:
    """One recorded process of an app (a line of workloads/<app>.json)."""

    app: str
    role: str
    image: str
    version: str
    port: int
    pid: int
    start_ticks: int
    argv: tuple[str, ...]
    log: str
    health: str
    metrics: str
    ready: bool = False

    @property
    def track(self) -> str:
        """The track it serves: its role, or primary for every production role."""
        return self.role if self.role in ("baseline", "canary") else "primary"

    @property
    def url(self) -> str:
        """Where it listens."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def process(self) -> procs.ProcessRecord:
        """Its process record (pid and start time)."""
        return procs.ProcessRecord(self.pid, self.start_ticks, self.argv)

    def alive(self) -> bool:
        """True while its very process runs."""
        return procs.is_ours(self.process)


_WORKLOADS = TypeAdapter(list[Workload])


class ProcessWorkloads:
    """`canary.ports.Workloads` for one machine.

    `router` (optional) is told where each ready process listens and drains a slot before
    its process stops; without it promotion still works but may drop in-flight requests.
    `targets_dir` (optional) receives the Prometheus file_sd file of each app.
    """

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        *,
        router: HAProxyRouter | None = None,
        targets_dir: str | os.PathLike[str] | None = None,
        python: str | None = None,
        stop_timeout: float = 10.0,
    ) -> None:
        self.state = Path(state_dir)
        self.router = router
        self.targets_dir = Path(targets_dir) if targets_dir else None
        self.python = python or sys.executable
        self.stop_timeout = stop_timeout

    # -- state ----------------------------------------------------------------------------
    def _file(self, app: str) -> Path:
        return self.state / "workloads" / f"{app}.json"

    @contextlib.contextmanager
    def _locked(self, app: str) -> Iterator[None]:
        with procs.locked(self.state / "workloads" / f"{app}.lock"):
            yield

    def list(self, app: str) -> list[Workload]:
        """Every recorded process of `app`, as recorded (alive or not)."""
        processes = procs.read_mapping(self._file(app)).get("processes")
        return _WORKLOADS.validate_python(processes if isinstance(processes, builtins.list) else [])

    def get(self, app: str, role: str) -> Workload | None:
        """The recorded process of `app` in `role`, if any."""
        return next((w for w in self.list(app) if w.role == role), None)

    def _save(self, app: str, items: builtins.list[Workload]) -> None:
        procs.write_json(self._file(app), {"app": app, "processes": [asdict(w) for w in items]})
        if self.targets_dir is not None:
            targets = [
                prometheus.target(
                    w.port,
                    app=app,
                    track=w.track,
                    version=w.version,
                    metrics_path=w.metrics,
                    image=w.image,
                )
                for w in items
            ]
            prometheus.write_targets(self.targets_dir, app, targets)

    def _update(self, app: str, pid: int, *, ready: bool) -> None:
        with self._locked(app):
            items = self.list(app)
            self._save(app, [replace(w, ready=ready) if w.pid == pid else w for w in items])

    def _forget(self, app: str, pid: int) -> None:
        with self._locked(app):
            self._save(app, [w for w in self.list(app) if w.pid != pid])

    # -- processes ------------------------------------------------------------------------
    def _start(self, app: str, role: str, image: str) -> Workload:
        artifact = load_artifact(self.state, image)
        if artifact is None:
            raise ConfigError(
                f"image {image!r} is not in the artifact store {self.state}; build it first"
            )
        try:
            spec = AppSpec.load(artifact.path)
        except ConfigError as exc:
            raise ConfigError(f"artifact {image}: {exc}") from None
        track = "primary" if role in ("primary", "primary-next") else role
        port = procs.free_port()
        values = dict(port=str(port), track=track, version=artifact.version, app=app,
                      python=self.python)  # fmt: skip
        argv = render(spec.command, values, self.python)
        env = process_env(spec, os.environ, app=app, track=track, version=artifact.version,
                          port=port, python=self.python)  # fmt: skip
        env[MARKER] = str(self.state.resolve())
        log = self.state / "logs" / f"{app}-{role}-{port}.log"
        with self._locked(app):  # spawn and record together: a crash cannot hide a process
            _, rec = procs.spawn(argv, cwd=artifact.path, env=env, log=log)
            w = Workload(app, role, image, artifact.version, port, rec.pid, rec.start_ticks,
                         rec.argv, str(log), spec.health, spec.metrics)  # fmt: skip
            self._save(app, [*self.list(app), w])
        return w

    def _wait(self, w: Workload, timeout: float) -> Workload:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            if not w.alive():
                raise PlatformError(
                    f"{w.app} {w.role} (pid {w.pid}, {w.image}) exited during "
                    f"start; log {w.log}:\n{procs.tail(Path(w.log))}"
                )
            try:
                with urllib.request.urlopen(w.url + w.health, timeout=1.0) as resp:
                    if 200 <= resp.status < 300:
                        return w
            except OSError as exc:  # HTTPError (a non-2xx answer) included
                last = str(exc)
            if time.monotonic() >= deadline:
                raise PlatformError(
                    f"{w.app} {w.role} (pid {w.pid}) not ready on {w.url}{w.health} after "
                    f"{timeout:g}s (last: {last}); log {w.log}:\n{procs.tail(Path(w.log))}",
                    transient=True,
                )
            time.sleep(0.05)

    def _ready(self, w: Workload, timeout: float) -> Workload:
        """`_wait`, restarting on another port when someone else took ours (up to 3 times)."""
        for attempt in range(3):
            try:
                return self._wait(w, timeout)
            except PlatformError:
                if w.alive() or attempt == 2 or not procs.port_in_use(w.port):
                    raise
            self._forget(w.app, w.pid)
            w = self._start(w.app, w.role, w.image)
        raise AssertionError("unreachable")

    def _stop(self, w: Workload) -> None:
        procs.stop(w.process, timeout=self.stop_timeout)
        self._forget(w.app, w.pid)

    # -- Workloads ------------------------------------------------------------------------
    def deploy(self, app: str, track: Track, image: str) -> None:
        """Start `image` as the track (replacing another image); returns once it is spawned."""
        if track not in ("baseline", "canary"):
            raise ConfigError(
                f"track {track!r} must be 'baseline' or 'canary' (promote for production)"
            )
        current = self.get(app, track)
        if current is not None and current.image == image and current.alive():
            return
        if current is not None:
            self.remove(app, track)
        self._start(app, track, image)

    def wait_ready(self, app: str, track: Track, timeout: float) -> None:
        """Poll the health endpoint until 2xx, then route the router's slot to the process."""
        w = self.get(app, track)
        if w is None:
            raise PlatformError(f"{app} has no {track} workload; deploy it first")
        w = self._ready(w, timeout)
        if self.router is not None:
            self.router.attach(app, track, w.port)
        self._update(app, w.pid, ready=True)

    def serving(self, app: str, track: str) -> str | None:
        """None if the track's process lives and answers its health check within 2 s.

        Any role is accepted (a str, wider than the port's Track): the supervisor asks
        about "primary" too."""
        w = self.get(app, track)
        if w is None:
            return f"no {track} workload is recorded"
        if not w.alive():
            return (f"the {track} process (pid {w.pid}, {w.image}) is not running; log {w.log}:\n"
                    f"{procs.tail(Path(w.log))}")  # fmt: skip
        try:
            with urllib.request.urlopen(w.url + w.health, timeout=2.0) as resp:
                if 200 <= resp.status < 300:
                    return None
                return f"the {track} health check {w.url}{w.health} answered {resp.status}"
        except OSError as exc:  # HTTPError (a non-2xx answer) included
            return f"the {track} health check {w.url}{w.health} failed: {exc}"

    def promote(self, app: str, image: str, timeout: float | None = None) -> None:
        """Start the new production, shift the primary slot to it, then stop the old one."""
        old = self.get(app, "primary")
        if old is not None and old.image == image and old.alive():
            if self.router is not None:
                self.router.attach(app, "primary", old.port)
            return
        weight = self.router.servers(app)["primary"].weight if self.router else 0
        new = self._start(app, "primary-next", image)
        try:
            new = self._ready(new, timeout or _ready_timeout(self.state, image))
            if self.router is not None:
                self.router.handoff(app, new.port)
        except BaseException:
            self._abort_promotion(app, old, weight)
            raise
        with self._locked(app):
            roles = {new.pid: "primary"} | ({old.pid: "retired"} if old else {})
            self._save(
                app,
                [
                    replace(w, role=roles.get(w.pid, w.role), ready=w.ready or w.pid == new.pid)
                    for w in self.list(app)
                ],
            )
        if old is not None:
            self._stop(old)

    def _abort_promotion(self, app: str, old: Workload | None, weight: int) -> None:
        """Put production back on the old process, then stop the new one; if the router
        cannot be fixed now, leave both recorded for `reconcile` rather than guess."""
        if self.router is not None and old is not None and old.alive():
            try:
                self.router.restore_primary(app, old.port, weight)
            except PlatformError:
                return
        for w in self.list(app):
            if w.role == "primary-next":
                self._stop(w)

    def remove(self, app: str, track: Track) -> None:
        """Drain the track's slot (its share goes to primary), stop the process; idempotent."""
        if self.router is not None:
            self.router.retire(app, track)
        for w in [w for w in self.list(app) if w.role == track]:
            self._stop(w)

    # -- recovery -------------------------------------------------------------------------
    def reconcile(self, app: str) -> dict[str, object]:
        """After a crash: 100 % primary (verified), exactly one production, no orphans.

        Production is the live recorded process the router's primary slot points at (mid
        promotion: else the one on the handoff slot; without a router: role primary). All
        other processes of the app are stopped, the recorded ones and, found by the marker
        in their environment, any the crash kept from being recorded. If the router cannot
        be reached the processes are still cleaned up, then the error is raised.
        """
        items = self.list(app)
        live = {w.port: w for w in items if w.alive()}
        keep = next((w for w in live.values() if w.role == "primary"), None)
        router_error: PlatformError | None = None
        if self.router is not None:
            try:
                slots = self.router.servers(app)
                keep = live.get(slots["primary"].port) or live.get(slots["handoff"].port) or keep
                if keep is not None:
                    self.router.attach(app, "primary", keep.port)
                self.router.rollback(app)
                for slot in ("handoff", "baseline", "canary"):
                    self.router.detach(app, slot)
            except PlatformError as exc:
                router_error = exc
        keep_pid = keep.pid if keep else None
        stopped = []
        with self._locked(app):  # the lock keeps a concurrent spawn from looking orphaned
            marker = {MARKER: str(self.state.resolve()), "CANARY_APP": app}
            found = [w.process for w in live.values()] + procs.find_marked(marker)
            for rec in found:
                other = rec.pid != keep_pid and procs.group_of(rec.pid) not in (keep_pid, None)
                if other and procs.stop(rec, timeout=self.stop_timeout):
                    stopped.append(rec.pid)
            self._save(app, [replace(keep, role="primary", ready=True)] if keep else [])
        if router_error is not None:
            raise router_error
        report: dict[str, object] = {"primary": keep_pid, "stopped": stopped}
        report["dropped"] = [w.pid for w in items if w.port not in live]
        if self.router is not None:
            report["weights"] = self.router.raw_weights(app)
        return report

    def stop_all(self, app: str) -> builtins.list[int]:
        """Stop every recorded process of the app (the demo teardown); idempotent."""
        stopped = [
            w.pid for w in self.list(app) if procs.stop(w.process, timeout=self.stop_timeout)
        ]
        with self._locked(app):
            self._save(app, [])
        return stopped


def _ready_timeout(state: Path, image: str) -> float:
    artifact = load_artifact(state, image)
    return AppSpec.load(artifact.path).ready_timeout if artifact else 20.0
