"""The fault-injection harness: one real chain per module, production traffic recorded in
slices, the invariants every fault must leave true, and a table of how long each took.

The invariants, checked after every fault (`Stack.problems`, polled with a deadline):

1. HAProxy, read back over its admin socket: all weight on the primary slot (baseline,
   canary and handoff at 0), and the primary slot points at production's port;
2. no baseline, canary, primary-next or retired process alive, and no unrecorded process of
   the app (the platform's environment marker) besides production;
3. production runs the newest good commit: its record says that version and the frontend
   answers with it (`X-Goldengoose-Version`);
4. the release that met the fault has a markdown report and a `canary.release.*` event whose
   words explain its end (asserted per fault);
5. production requests through the frontend failed no more than the fault's own allowance
   (`Traffic`, asserted per fault), and the app's lock is free once nothing runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from canary.platforms.local import procs
from canary.platforms.local.stack import LocalStack
from canary.platforms.local.workloads import MARKER
from tests.support.fault_table import Row, attach
from tests.support.live_chain import APP, FINAL, Live, start_live

#: Flows whose runs must all be final before a fault test ends ("nothing runs").
FLOWS = ("build", "canary-release", "reconcile", "restore-production")
LOCK = f"canary-release-{APP}"


@dataclass
class Slice:
    """One bounded burst of production requests (`examples.goldengoose.load.drive`)."""

    start: float
    end: float
    sent: int
    ok: int
    failed: int
    versions: dict[str, int]
    errors: dict[str, int]
    p99: float = 0.0  # seconds


class Traffic:
    """Production traffic through HAProxy for the whole module, in slices of `slice_s`, so
    each fault's window can be counted on its own. Also what the canary analysis judges."""

    def __init__(self, url: str, rate: float = 60.0, slice_s: float = 2.0) -> None:
        self.url, self.rate, self.slice_s = url, rate, slice_s
        self.slices: list[Slice] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="production-traffic", daemon=True)

    def start(self) -> Traffic:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)

    def _run(self) -> None:
        from examples.goldengoose.load import drive

        while not self._stop.is_set():
            t0 = time.time()
            r = drive(self.url, rate=self.rate, duration=self.slice_s, deadline=self.slice_s + 8)
            errors = {f"http {k}": v for k, v in r.errors.items()} | dict(r.transport_errors)
            if r.cancelled:
                errors["cancelled"] = r.cancelled
            p99 = r.p99 if r.latencies else 0.0
            self.slices.append(Slice(t0, time.time(), r.sent, r.ok, r.sent - r.ok, dict(r.versions),
                                     errors, p99))  # fmt: skip

    def window(self, start: float, end: float) -> Slice:
        """The slices that overlap [start, end], summed."""
        mine = [s for s in list(self.slices) if s.end >= start and s.start <= end]
        total = Slice(start, end, 0, 0, 0, {}, {})
        for s in mine:
            total.sent, total.ok, total.failed = total.sent + s.sent, total.ok + s.ok, total.failed + s.failed
            for k, v in s.versions.items():
                total.versions[k] = total.versions.get(k, 0) + v
            for k, v in s.errors.items():
                total.errors[k] = total.errors.get(k, 0) + v
        return total

    def wait_slice_after(self, t: float, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(s.start >= t for s in list(self.slices)):
            if time.monotonic() > deadline:
                raise TimeoutError("the production traffic stalled")
            time.sleep(0.2)


#: this process's rows, in the order the faults ran (tests/support/fault_table.py)
ROWS: list[Row] = []


@dataclass
class Stack:
    """The live chain plus what the fault tests need to look at and break it."""

    live: Live
    traffic: Traffic
    good: str = "1.0.0"  # the newest good version: what production must run when clean
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def state_dir(self) -> Any:
        return self.live.chain.config.state_dir

    @property
    def frontend(self) -> str:
        return f"http://127.0.0.1:{self.live.chain.config.app_port}/"

    def local(self) -> LocalStack:
        return LocalStack.from_state(self.state_dir)

    def status(self) -> dict[str, Any]:
        """What `python -m canary.platforms.local --state-dir ... status` prints."""
        return self.local().status()

    def workloads(self) -> list[dict[str, Any]]:
        return self.status()["apps"].get(APP, {}).get("workloads", [])

    def alive(self, role: str) -> list[dict[str, Any]]:
        return [w for w in self.workloads() if w["role"] == role and w["alive"]]

    def tracks_up(self) -> bool:
        return bool(self.alive("baseline")) and bool(self.alive("canary"))

    # -- the invariants -------------------------------------------------------------------
    def problems(self, version: str | None = None) -> list[str]:
        """Why production is not clean now ([] when it is): invariants 1-3."""
        version = version or self.good
        out: list[str] = []
        try:
            local = self.local()
            items = local.workloads().list(APP)
            servers = local.router().servers(APP)
        except Exception as exc:  # HAProxy restarting, a state file mid-write
            return [f"platform not readable: {exc}"]
        weights = {n: s.weight for n, s in servers.items()}
        if weights.get("primary", 0) <= 0 or any(weights.get(t, 0) for t in ("baseline", "canary", "handoff")):
            out.append(f"HAProxy weights are {weights}, not 100 % primary")
        primary = [w for w in items if w.role == "primary" and w.alive()]
        if len(primary) != 1:
            out.append(f"{len(primary)} live production processes")
        elif servers["primary"].port != primary[0].port:
            out.append(f"the primary slot points at port {servers['primary'].port}, production "
                       f"listens on {primary[0].port}")  # fmt: skip
        elif primary[0].version != version:
            out.append(f"production runs {primary[0].version}, not {version}")
        extra = [f"{w.role} pid {w.pid}" for w in items if w.role != "primary" and w.alive()]
        if extra:
            out.append(f"left alive: {', '.join(extra)}")
        prod_pids = {w.pid for w in primary}
        orphans = [r.pid for r in procs.find_marked({MARKER: str(self.state_dir.resolve()),
                                                     "CANARY_APP": APP})
                   if r.pid not in prod_pids]  # fmt: skip
        if orphans:
            out.append(f"unrecorded app processes alive: {orphans}")
        if not out:
            answered = self.answers(5)
            if answered != {version}:
                out.append(f"the frontend answers {answered}, not {version}")
        return out

    def answers(self, n: int) -> set[str]:
        seen = set()
        for _ in range(n):
            try:
                seen.add(httpx.get(self.frontend, timeout=3).headers.get("X-Goldengoose-Version",
                                                                          "(none)"))  # fmt: skip
            except httpx.HTTPError as exc:
                seen.add(f"error {type(exc).__name__}")
        return seen

    def wait_clean(self, since: float, version: str | None = None, timeout: float = 180) -> float:
        """Seconds from `since` (the fault) until production was clean (polled)."""
        deadline = time.monotonic() + timeout
        found = []
        while time.monotonic() < deadline:
            found = self.problems(version)
            if not found:
                return time.time() - since
            time.sleep(0.25)
        raise AssertionError(f"production not clean {timeout:.0f} s after the fault: {found}")

    def lock(self) -> dict[str, Any]:
        return httpx.get(f"{self.live.api}/v2/concurrency_limits/{LOCK}", timeout=10).json()

    def live_runs(self) -> list[dict[str, Any]]:
        """Runs of the chain's flows that may still act. A run cancelled before its process
        ran the flow never will (store.runs counts it out too), even if Prefect leaves it
        Cancelling: see test_cancelled_queued_build_never_runs."""
        return [r for r in self.live.flow_runs() if r["state_type"] not in FINAL
                and not (r["state_type"] == "CANCELLING" and r["start_time"] is None)
                and any(r["name"].startswith(f"{f}-") for f in FLOWS)]  # fmt: skip

    def wait_quiet(self, timeout: float = 180) -> None:
        """Every run of the chain's flows final, and the app's lock free."""
        deadline = time.monotonic() + timeout
        running: list[Any] = []
        while time.monotonic() < deadline:
            running = [(r["name"], r["state_name"]) for r in self.live_runs()]
            if not running:
                held = self.lock().get("active_slots")
                if held == 0:
                    return
                running = [f"the lock holds {held} slot(s) with nothing running"]
            time.sleep(0.5)
        raise AssertionError(f"still not quiet after {timeout:.0f} s: {running}")

    # -- what a release left --------------------------------------------------------------
    def report(self, run: dict[str, Any], timeout: float = 30) -> str:
        """The release run's markdown report (`canary-report-<app>`), polled."""
        deadline = time.monotonic() + timeout
        while True:
            found = [a["data"] for a in self.live.artifacts(run, "markdown")
                     if a.get("key") == f"canary-report-{APP}"]  # fmt: skip
            if found or time.monotonic() > deadline:
                assert found, f"no report on run {run['name']}"
                return found[-1]
            time.sleep(0.5)

    def event(self, commit: str, timeout: float = 30) -> dict[str, Any]:
        """The one canary.release.* event of `commit`'s release."""
        found = self.live.wait_events("canary.release.", timeout=timeout,
                                      where=lambda e: e["payload"].get("commit") == commit
                                      and "outcome" in e["payload"])  # an end, not the start  # fmt: skip
        assert len(found) == 1, [(e["event"], e["payload"].get("reason")) for e in found]
        return found[0]

    def engine(self, run_id: str) -> list[procs.ProcessRecord]:
        """The flow-run process of `run_id` (its app children carry the same variable)."""
        return [r for r in procs.find_marked({"PREFECT__FLOW_RUN_ID": run_id})
                if "prefect.engine" in r.argv]  # fmt: skip

    def looks(self, run: dict[str, Any]) -> int:
        """Judgements the release published so far (one table artifact per look)."""
        return len(self.live.artifacts(run, "table"))

    def kill(self, rec: procs.ProcessRecord) -> None:
        """SIGKILL one process we started (its pid, verified as ours)."""
        assert procs.is_ours(rec), f"pid {rec.pid} is not the process recorded"
        os.kill(rec.pid, signal.SIGKILL)
        child = procs._CHILDREN.pop(rec.pid, None)  # ours: reap it, no zombie left
        if child is not None:
            child.wait(5)
        deadline = time.monotonic() + 10
        while procs.is_ours(rec):
            assert time.monotonic() < deadline, f"pid {rec.pid} survived SIGKILL"
            time.sleep(0.05)

    @contextlib.contextmanager
    def fault(self, name: str, *, allowance: int = 0, why: str = "") -> Iterator[Row]:
        """One fault's bookkeeping: its row in the table (filled by the test), the traffic
        failures of the whole test window against `allowance`, and a quiet chain after."""
        row = Row(name, note=why)
        ROWS.append(row)
        start = time.time()
        yield row
        self.traffic.wait_slice_after(time.time())
        seen = self.traffic.window(start, time.time())
        row.failures = f"{seen.failed}/{seen.sent} (allowed {allowance})"
        assert seen.failed <= allowance, (
            f"{seen.failed} of {seen.sent} production requests failed during '{name}' "
            f"(allowed {allowance}): {seen.errors}")  # fmt: skip
        self.wait_quiet()
        row.held = "yes"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with start_live(tmp_path_factory.mktemp("faults")) as live:
        traffic = Traffic(f"http://127.0.0.1:{live.chain.config.app_port}/").start()
        try:
            yield Stack(live, traffic)
        finally:
            traffic.stop()


@pytest.fixture(autouse=True)
def _fault_row(request: pytest.FixtureRequest) -> Iterator[None]:
    """Send the test's rows with its report: the root conftest prints the table."""
    before = len(ROWS)
    yield
    attach(request.node.user_properties, ROWS[before:])
