"""Fault injection on the real local stack: each fault hits a live release, then every
invariant of tests/faults/conftest.py must hold within a deadline.

One chain for the module (a fresh Prefect server costs ~20 s here); the tests run in file
order, each leaving production clean (and the app's lock free) for the next, and each
records how long production took to be clean after its fault (the table printed at the end
of the run). `stack.good` is the version production must run: the newest commit that a
release promoted. The Prefect server's restart and the out-of-order deliveries run on a
chain of their own, side by side with this one: tests/faults/test_faults_server.py.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from typing import Any

import pytest

from canary.platforms.local.procs import ProcessRecord
from tests.faults.conftest import APP, Stack
from tests.faults.steps import (
    SLOW,
    _cancel,
    _ended,
    _explained,
    _final,
    _head,
    _logged,
    _push,
    _release,
    _states,
    _task_names,
)
from tests.support.live_chain import FINAL, ROOT
from tests.support.polling import poll

pytestmark = [pytest.mark.faults, pytest.mark.slow]

def test_cancelled_queued_build_never_runs(stack: Stack) -> None:
    """A build cancelled while queued (worker down) or Pending (its process starting) ends
    Cancelled and builds nothing, even once the worker runs."""
    live = stack.live
    with stack.fault("queued build cancelled (worker down; and while Pending)") as row:
        start = time.time()
        worker = live.chain.record("worker")
        assert worker is not None
        stack.kill(worker)
        queued = _push(stack, "1.1.0")
        run_a = poll("the queued build run", lambda: live.runs_for("build", queued), 30)[0]
        _cancel(stack, run_a)
        live.chain.start_worker()
        pending = _push(stack, "1.1.1")
        run_b = poll("the build run Pending", lambda: [
            r for r in live.runs_for("build", pending) if r["state_type"] == "PENDING"], 60,
            every=0.05)[0]  # fmt: skip
        _cancel(stack, run_b)
        a = _final(stack, run_a, 120)
        b = poll("the Pending run stopped", lambda: (r := live.read_run(run_b["id"]))[
            "state_type"] in (*FINAL, "CANCELLING") and r, 60)  # fmt: skip
        # The worker has run a flow since: it had its chance at both.
        probe = live.run_deployment("reconcile", "reconcile", {"app": APP}, timeout=120)
        assert probe["state_type"] == "COMPLETED", probe["state_name"]
        for run, sha in ((a, queued), (b, pending)):
            run = live.read_run(run["id"])
            # Prefect 3.9 may leave a run cancelled the moment it is submitted Cancelling for
            # good (the executor misses the event); it never starts, and no queue counts it.
            stuck = run["state_type"] == "CANCELLING" and run["start_time"] is None
            assert run["state_type"] == "CANCELLED" or stuck, (run["name"], run["state_name"])
            assert "build-image" not in " ".join(_task_names(stack, run))
            assert not live.runs_for("canary-release", sha)
            assert not live.events("canary.build.", where=lambda e, s=sha: e["payload"].get("commit") == s)
        assert "RUNNING" not in _states(stack, a), "the run cancelled while queued ran"
        b = live.read_run(b["id"])
        row.outcome = f"never ran; the Pending one ended {b['state_name']} ({'/'.join(_states(stack, b))})"
        if b["state_type"] == "CANCELLING":
            row.note = ("Prefect 3.9.1 left the run cancelled while Pending in Cancelling (never "
                        "started); the queues count it out")  # fmt: skip
        row.clean_s = stack.wait_clean(start)


def test_cancelled_queued_release_never_deploys_nor_harms_the_running_one(stack: Stack) -> None:
    """A release waiting for the app's lock is cancelled: it ends Cancelled, deploys nothing,
    and the release holding the lock finishes its own analysis untouched."""
    with stack.fault("queued release cancelled behind a running one") as row:
        first = _push(stack, "1.2.0", SLOW)
        holder = _release(stack, first)
        poll("baseline and canary of 1.2.0 up", stack.tracks_up, 90)
        canary_pid = stack.alive("canary")[0]["pid"]
        second = _push(stack, "1.3.0")
        queued = _release(stack, second)
        poll("1.3.0 waiting for the lock", lambda: _logged(stack, queued, "waiting for the lock"), 150,
             every=0.5)  # fmt: skip
        fault = time.time()
        _cancel(stack, queued)
        queued = _final(stack, queued, 120)
        assert queued["state_type"] == "CANCELLED", queued["state_name"]
        assert [w["pid"] for w in stack.alive("canary")] in ([canary_pid], []), \
            "the cancelled release touched the running release's canary"
        holder = _final(stack, holder, 120)
        row.clean_s = stack.wait_clean(fault)
        _ended(holder, "rolled-back")
        # The holder was judged on its own merits (latency), not stopped by the other's end.
        row.explained_s = _explained(stack, holder, first, fault, "rolled-back", "latency High")
        assert not [t for t in _task_names(stack, queued) if t.startswith(("deploy-", "promote-"))]
        # The cancelled one's end is explained too: by itself (it saw the cancel while it
        # waited) or by the reconcile the automation starts on its Cancelled state.
        said = stack.event(second)["event"].rsplit(".", 1)[-1]
        assert said in ("skipped", "rolled-back"), said
        _explained(stack, queued, second, fault, said, "cancelled")
        row.outcome = "1.3.0 Cancelled, nothing deployed; 1.2.0 rolled back on latency"


def test_canary_process_killed(stack: Stack) -> None:
    """The canary dies mid-analysis: the next look's readiness guard rolls back."""
    with stack.fault("canary process killed", why=(
            "allowance 0: HAProxy retries a request whose connection failed on another server "
            "(retry-on conn-failure empty-response, redispatch)")) as row:  # fmt: skip
        sha = _push(stack, "1.4.0")
        run = _release(stack, sha)
        poll("canary taking traffic", lambda: stack.tracks_up() and
             stack.local().router().raw_weights(APP).get("canary", 0) > 0, 120)  # fmt: skip
        (canary,) = [w for w in stack.local().workloads().list(APP) if w.role == "canary"]
        fault = time.time()
        stack.kill(ProcessRecord(canary.pid, canary.start_ticks, canary.argv))
        row.clean_s = stack.wait_clean(fault, timeout=90)
        run = _final(stack, run, 120)
        _ended(run, "rolled-back")
        row.explained_s = _explained(stack, run, sha, fault, "rolled-back", "guard failed",
                                     "canary process")  # fmt: skip
        row.outcome = "rolled back at the next look (readiness guard)"


def test_flow_run_process_killed(stack: Stack) -> None:
    """SIGKILL the release's own process: the worker marks it Crashed, the automation runs
    reconcile, which cleans up and reports the end on the release, within a minute."""
    live = stack.live
    with stack.fault("flow-run process killed") as row:
        sha = _push(stack, "1.5.0")
        run = _release(stack, sha)
        poll("baseline and canary up", stack.tracks_up, 120)
        victims = poll("the release's process", lambda: stack.engine(run["id"]), 10)
        fault = time.time()
        for rec in victims:
            stack.kill(rec)
        row.clean_s = stack.wait_clean(fault, timeout=60)  # "cleanup within a minute"
        run = _final(stack, run, 120)
        assert run["state_type"] == "CRASHED", run["state_name"]
        row.explained_s = _explained(stack, run, sha, fault, "rolled-back",
                                     "crashed or was killed")  # fmt: skip
        repairs = poll("the automation's reconcile run for the crashed release", lambda: [
            r for r in live.flow_runs("reconcile")
            if (r["parameters"].get("run_id") or "").endswith(run["id"])], 30, every=1)  # fmt: skip
        row.outcome = f"Crashed; repaired by the automation's reconcile ({repairs[0]['state_name']})"


def test_prometheus_killed(stack: Stack) -> None:
    """Prometheus dies after a look: the supervisor restarts it (same TSDB) and the release
    judges on; a look that cannot read metrics must never promote blind."""
    with stack.fault("Prometheus killed") as row:
        sha = _push(stack, "1.6.0")
        run = _release(stack, sha)
        poll("the first look", lambda: stack.looks(run) >= 1, 150, every=0.5)
        old = stack.local().process("prometheus")
        assert old is not None
        fault = time.time()
        stack.kill(old)
        back = poll("Prometheus restarted by the supervisor", lambda: (
            (rec := stack.local().running("prometheus")) is not None and rec.pid != old.pid), 30)
        restarted = time.time() - fault
        run = _final(stack, run, 150)
        event = stack.event(sha)
        promoted = event["event"] == "canary.release.promoted"
        if promoted:
            stack.good = "1.6.0"
        row.clean_s = stack.wait_clean(fault)
        _ended(run, "promoted" if promoted else "rolled-back")
        if promoted:
            row.explained_s = _explained(stack, run, sha, fault, "promoted")
        else:  # fail closed: the reason must say the metrics were missing
            row.explained_s = _explained(stack, run, sha, fault, "rolled-back", "no data")
        row.outcome = f"{event['event'].rsplit('.', 1)[-1]}; Prometheus back after {restarted:.1f} s"
        assert back


def test_worker_killed(stack: Stack) -> None:
    """SIGKILL the worker mid-release and start it again: the release (its own process,
    writing to the API, not to the worker) goes on and is promoted."""
    live = stack.live
    with stack.fault("worker killed") as row:
        sha = _push(stack, "1.7.0")
        run = _release(stack, sha)
        poll("baseline and canary up", stack.tracks_up, 120)
        worker = live.chain.record("worker")
        assert worker is not None
        fault = time.time()
        stack.kill(worker)
        live.chain.start_worker()
        run = _final(stack, run, 180)
        _ended(run, "promoted")
        stack.good = "1.7.0"
        row.clean_s = stack.wait_clean(fault)
        row.explained_s = _explained(stack, run, sha, fault, "promoted")
        row.outcome = "promoted (the run outlived its worker)"


def test_fifty_concurrent_deliveries_of_one_commit(stack: Stack) -> None:
    """50 deliveries (distinct ids) of one commit at once: one build builds, the other 49
    end Skipped, at most one release runs; the machine copes (all runs final in time)."""
    live = stack.live
    with stack.fault("50 concurrent deliveries of one commit") as row:
        before = _head(stack)
        sha = live.commit("2.2.0", SLOW)
        start = time.time()
        senders = [subprocess.Popen(live.push_args(sha, before=before, delivery=str(uuid.uuid4())),
                                    cwd=ROOT, env=live.push_env(), stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True) for _ in range(50)]  # fmt: skip
        outputs = [p.communicate(timeout=60)[0] for p in senders]
        assert all(p.returncode == 0 for p in senders), [o for o in outputs if "-> 2" not in o]
        sent = time.time() - start
        def every_build(final: bool) -> list[dict[str, Any]]:
            found = live.runs_for("build", sha)
            done = len(found) >= 50 and (not final or all(r["state_type"] in FINAL for r in found))
            return found if done else []

        # 50 automation firings, each creating a run: SQLite serialises the writes (issue 14
        # measures it); two minutes is the deadline for the storm, not the expected time.
        poll("50 build runs", lambda: every_build(False), 150, every=1)
        created = time.time() - start
        final = poll("every build run final", lambda: every_build(True), 300, every=1)
        all_final = time.time() - start
        built = [r for r in final if r["state_type"] == "COMPLETED"]
        skipped = [r for r in final if r["state_name"] == "Skipped"]
        # On SQLite the storm can make the server answer the worker 503 (database locked)
        # while it submits a run: the worker marks that run Crashed without starting its
        # process (Prefect may still have stamped a start time when it went Pending), so it
        # built nothing; `built` == 1 and one release below hold either way. Allowed on
        # SQLite only (issue 14 moves the server to PostgreSQL), counted, and bounded.
        unsubmitted = [r for r in final if r["state_type"] == "CRASHED"
                       and "Failed to submit flow run" in ((r.get("state") or {}).get("message") or "")]  # fmt: skip
        if live.db != "sqlite":
            assert not unsubmitted, unsubmitted
        assert len(final) == 50, len(final)
        assert len(built) == 1, [(r["name"], r["state_name"]) for r in built]
        assert len(skipped) + len(unsubmitted) == 49 and len(unsubmitted) <= 5, (
            sorted({r["state_name"] for r in final}), [(r["state"] or {}).get("message") for r in final
                                                       if r["state_type"] == "CRASHED"])  # fmt: skip
        release = _final(stack, _release(stack, sha), 240)
        assert len(live.runs_for("canary-release", sha)) == 1
        row.clean_s = stack.wait_clean(start)
        row.explained_s = _explained(stack, release, sha, start, "rolled-back", "latency High")
        slices = [s for s in stack.traffic.slices if s.start >= start and s.end <= time.time()]
        row.outcome = (f"1 built, {len(skipped)} Skipped"
                       + (f", {len(unsubmitted)} never submitted (server 503 on SQLite)" if unsubmitted else "")
                       + "; 1 release (rolled back, a slow commit); relay took "
                       f"all 50 in {sent:.1f} s, 50 runs created after {created:.1f} s, all builds final "
                       f"after {all_final:.1f} s")
        row.note = (f"machine: production p99 per 2 s slice at most "
                    f"{max((s.p99 for s in slices), default=0) * 1000:.0f} ms during the storm")
