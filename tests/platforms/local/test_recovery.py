"""Crash recovery: the orchestrating process dies mid-canary; a reconcile cleans up after it."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from canary.platforms.local import procs
from canary.platforms.local.spec import AppSpec, process_env
from canary.platforms.local.workloads import MARKER
from canary.values.weights import Weights
from examples.goldengoose.load import drive
from tests.platforms.local.conftest import APP, ROOT, Platform

CHILD = textwrap.dedent(
    """
    import json, sys, time
    from canary.platforms.local.stack import LocalStack
    from canary.values.weights import Weights
    state, stats, prom, bad, v1 = sys.argv[1:6]
    stack = LocalStack(state, haproxy_stats_port=int(stats), prometheus_port=int(prom))
    wl, router = stack.workloads(), stack.router()
    wl.deploy("goldengoose", "baseline", v1)
    wl.deploy("goldengoose", "canary", bad)
    wl.wait_ready("goldengoose", "baseline", 15)
    wl.wait_ready("goldengoose", "canary", 15)
    router.set_weights("goldengoose", Weights(50, 25, 25))
    print(json.dumps([w.pid for w in wl.list("goldengoose")]), flush=True)
    time.sleep(60)  # mid-canary: the test SIGKILLs us here
    """
)


def read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            return proc.stdout.readline()
        assert proc.poll() is None, f"child exited with {proc.returncode}"
    raise AssertionError("child did not report within the deadline")


@pytest.mark.slow
def test_reconcile_after_the_orchestrator_is_killed_mid_canary(platform: Platform) -> None:
    p = platform
    primary = p.workloads.get(APP, "primary")
    argv = [
        sys.executable,
        "-c",
        CHILD,
        str(p.state),
        str(p.stack.stats_port),
        str(p.stack.prometheus_port),
        p.images.bad,
        p.images.v1,
    ]
    child = subprocess.Popen(
        argv,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        pids = json.loads(read_line(child, 30))
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
        child.stdout.close()  # type: ignore[union-attr]

    # The crash left orphans and a 50/25/25 split behind.
    orphans = [w for w in p.workloads.list(APP) if w.role in ("baseline", "canary")]
    assert {w.pid for w in orphans} | {primary.pid} == set(pids)
    assert all(w.alive() for w in orphans)
    assert p.router.read_weights(APP) == Weights(50, 25, 25)

    # The reconcile runs from the CLI, as an operator (or the next flow run) would.
    t0 = time.monotonic()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "canary.platforms.local",
            "--state-dir",
            str(p.state),
            "--stats-port",
            str(p.stack.stats_port),
            "--prometheus-port",
            str(p.stack.prometheus_port),
            "reconcile",
            APP,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    print(f"reconcile took {time.monotonic() - t0:.2f}s: {report}")
    assert report["primary"] == primary.pid
    assert sorted(report["stopped"]) == sorted(w.pid for w in orphans)
    assert report["weights"] == {"primary": 100, "baseline": 0, "canary": 0, "handoff": 0}
    assert p.router.read_weights(APP) == Weights.all_primary()
    assert not any(w.alive() for w in orphans)
    assert [r.pid for r in p.marked()] == [primary.pid]
    result = drive(p.url, rate=200, duration=0.5)
    assert result.ok == result.planned and result.tracks == {"primary": result.ok}


@pytest.mark.slow
def test_reconcile_stops_a_process_that_was_never_recorded(platform: Platform) -> None:
    """A crash between fork and the state write leaves a process only its marker betrays."""
    p = platform
    primary = p.workloads.get(APP, "primary")
    port = procs.free_port()
    env = process_env(
        AppSpec(),
        os.environ,
        app=APP,
        track="canary",
        version="x",
        port=port,
        python=sys.executable,
    )
    env[MARKER] = str(p.state.resolve())
    artifact = p.state / "artifacts" / p.images.v2.rsplit(":", 1)[1]
    _, rec = procs.spawn(
        [sys.executable, "server.py", "--port", str(port)],
        cwd=artifact,
        env=env,
        log=p.state / "logs" / "stray.log",
    )
    assert procs.is_ours(rec)
    report = p.workloads.reconcile(APP)
    assert report["stopped"] == [rec.pid] and report["primary"] == primary.pid
    assert not procs.is_ours(rec)
    assert [r.pid for r in p.marked()] == [primary.pid]


@pytest.mark.slow
def test_reconcile_mid_promotion_keeps_one_production(platform: Platform) -> None:
    """Crashed after the new production took the handoff slot but before the switch."""
    p = platform
    old = p.workloads.get(APP, "primary")
    new = p.workloads._start(APP, "primary-next", p.images.v2)
    p.workloads._wait(new, 15)
    p.router.attach(APP, "handoff", new.port)
    p.router._do(f"set weight {APP}/handoff 100")
    p.router._do(f"set weight {APP}/primary 0")  # ... and here the orchestrator died
    report = p.workloads.reconcile(APP)
    assert report["primary"] == old.pid and report["stopped"] == [new.pid]
    assert p.router.raw_weights(APP) == {"primary": 100, "baseline": 0, "canary": 0, "handoff": 0}
    assert [w.pid for w in p.workloads.list(APP)] == [old.pid]
    result = drive(p.url, rate=200, duration=0.5)
    assert result.ok == result.planned and result.versions == {"1.0.0": result.ok}
