"""A release end to end on real processes: build → baseline + canary → promote or roll back.

Load runs through HAProxy for the whole sequence; "no failed request" means every planned
request got a 2xx (no HTTP error, no transport error, nothing cancelled).
"""

from __future__ import annotations

import threading
import time

import pytest

from canary.platforms.local import procs
from canary.values.weights import Weights
from examples.goldengoose.load import LoadResult, drive
from tests.platforms.local.conftest import APP, Platform


class Background:
    """The load driver in a thread, bounded by its own rate x duration and deadline."""

    def __init__(self, url: str, rate: float, duration: float) -> None:
        self.result: LoadResult | None = None
        self._thread = threading.Thread(
            target=lambda: setattr(
                self, "result", drive(url, rate=rate, duration=duration, deadline=duration + 10)
            ),
        )
        self._thread.start()

    def join(self) -> LoadResult:
        self._thread.join(timeout=30)
        assert self.result is not None, "load driver did not finish"
        return self.result


def backend_total(p: Platform) -> int:
    """Requests HAProxy has handed to the app's backend so far (`show stat` stot)."""
    lines = p.router.cli("show stat").splitlines()
    header = lines[0][2:].split(",")
    for line in lines[1:]:
        row = dict(zip(header, line.split(","), strict=False))
        if row.get("pxname") == APP and row.get("svname") == "BACKEND":
            return int(row["stot"])
    raise AssertionError(f"no backend {APP} in show stat")


def wait_for_requests(p: Platform, count: int, timeout: float = 10.0) -> None:
    """Poll until `count` more requests went through HAProxy (the load is running)."""
    target = backend_total(p) + count
    deadline = time.monotonic() + timeout
    while backend_total(p) < target:
        assert time.monotonic() < deadline, f"the load did not reach {count} requests"
        time.sleep(0.02)


def assert_no_failures(result: LoadResult) -> None:
    assert result.ok == result.planned == result.sent, result.summary()
    assert not result.errors and not result.transport_errors and not result.cancelled


def start_canary(p: Platform, canary_image: str) -> None:
    p.workloads.deploy(APP, "baseline", p.images.v1)
    p.workloads.deploy(APP, "canary", canary_image)
    p.workloads.wait_ready(APP, "baseline", 15)
    p.workloads.wait_ready(APP, "canary", 15)
    p.router.set_weights(APP, Weights(80, 10, 10))


@pytest.mark.slow
def test_promote_under_load_drops_nothing(platform: Platform) -> None:
    p = platform
    old = p.workloads.get(APP, "primary")
    start_canary(p, p.images.v2)
    load = Background(p.url, rate=150, duration=4.0)
    wait_for_requests(p, 50)  # production moves only once the load is flowing
    t0 = time.monotonic()
    p.workloads.promote(APP, p.images.v2)
    promote_s = time.monotonic() - t0
    p.router.rollback(APP)  # the flow's finally: routes back to 100 % (new) production
    p.workloads.remove(APP, "canary")
    p.workloads.remove(APP, "baseline")
    result = load.join()
    assert_no_failures(result)
    print(f"promotion took {promote_s:.2f}s; load during it: {result.summary()}")

    new = p.workloads.get(APP, "primary")
    assert new is not None and new.version == "2.0.0" and new.image == p.images.v2
    assert [w.role for w in p.workloads.list(APP)] == ["primary"]
    assert not old.alive()
    assert p.router.raw_weights(APP) == {"primary": 100, "baseline": 0, "canary": 0, "handoff": 0}
    after = drive(p.url, rate=200, duration=0.5)
    assert_no_failures(after)
    assert after.versions == {"2.0.0": after.ok} and after.tracks == {"primary": after.ok}


@pytest.mark.slow
def test_bad_canary_rolls_back_to_the_old_primary(platform: Platform) -> None:
    p = platform
    primary = p.workloads.get(APP, "primary")
    start_canary(p, p.images.bad)
    canary, baseline = p.workloads.get(APP, "canary"), p.workloads.get(APP, "baseline")
    probe = drive(p.url, rate=100, duration=1.0)
    slow = sorted(lat for lat in probe.latencies if lat > 0.14)
    assert len(slow) >= 5  # the canary's +150 ms fault is real (10 % of 100 requests)

    load = Background(p.url, rate=150, duration=2.0)
    wait_for_requests(p, 30)
    p.router.rollback(APP)
    p.workloads.remove(APP, "canary")
    p.workloads.remove(APP, "baseline")
    assert_no_failures(load.join())

    assert p.router.raw_weights(APP) == {"primary": 100, "baseline": 0, "canary": 0, "handoff": 0}
    assert p.router.servers(APP)["primary"].port == primary.port
    assert not canary.alive() and not baseline.alive()
    assert [w.pid for w in p.workloads.list(APP)] == [primary.pid]
    assert [r.pid for r in p.marked()] == [primary.pid]  # no orphan of any kind
    after = drive(p.url, rate=200, duration=0.5)
    assert_no_failures(after)
    assert after.versions == {"1.0.0": after.ok} and after.tracks == {"primary": after.ok}
    assert procs.is_ours(primary.process)


def test_a_stack_start_while_tracks_run_keeps_haproxy_and_its_split(platform: Platform) -> None:
    """Every release's reconcile starts the stack (idempotent). With a canary running and a
    split set at runtime, that start must not reload HAProxy: the config's slots name what
    runs, but a reload is only for a changed structure, else it could restore a state saved
    before another release's split (20 releases at once lost a first look's traffic so)."""
    p = platform
    p.workloads.deploy(APP, "canary", p.images.v2)
    p.workloads.wait_ready(APP, "canary", 30)
    p.router.set_weights(APP, Weights(90, 0, 10))
    worker = p.stack.worker_pid()
    assert p.stack.start()["haproxy"] == "running"
    assert p.stack.worker_pid() == worker  # the same HAProxy worker: no reload
    assert p.router.read_weights(APP) == Weights(90, 0, 10)
    port = p.workloads.get(APP, "canary").port
    assert p.router.servers(APP)["canary"].port == port
