"""Fault injection on the real local stack: each fault hits a live release, then every
invariant of tests/faults/conftest.py must hold within a deadline.

One chain for the module (a fresh Prefect server costs ~20 s here); the tests run in file
order, each leaving production clean (and the app's lock free) for the next, and each
records how long production took to be clean after its fault (the table printed at the end
of the run). `stack.good` is the version production must run: the newest commit that a
release promoted.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from typing import Any

import httpx
import pytest

from canary.platforms.local.procs import ProcessRecord
from tests.faults.conftest import APP, Stack
from tests.support.live_chain import FINAL, ROOT
from tests.support.polling import poll

pytestmark = [pytest.mark.faults, pytest.mark.slow]

#: A commit whose canary is 60 ms slower: the judge rolls it back at its first look.
SLOW = {"added_latency_ms": 60}


def _head(stack: Stack) -> str:
    return list(stack.live.commits.values())[-1]


def _push(stack: Stack, version: str, faults: dict[str, Any] | None = None,
          delivery: str | None = None) -> str:  # fmt: skip
    before = _head(stack)
    sha = stack.live.commit(version, faults)
    sent = stack.live.push(sha, before=before, delivery=delivery)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    return sha


def _release(stack: Stack, sha: str, timeout: float = 90) -> dict[str, Any]:
    """The canary-release run of `sha`, once it exists."""
    return poll(f"a canary-release run for {sha[:12]}",
                lambda: stack.live.runs_for("canary-release", sha), timeout)[0]  # fmt: skip


def _final(stack: Stack, run: dict[str, Any], timeout: float = 240) -> dict[str, Any]:
    return poll(f"run {run['name']} final",
                lambda: (r := stack.live.read_run(run["id"]))["state_type"] in FINAL and r,
                timeout, every=0.5)  # fmt: skip


#: The state names a release may end in, per outcome (its type: Completed, Failed).
ENDS = {"promoted": {"Promoted", "Completed"}, "rolled-back": {"RolledBack", "Completed"}}


def _ended(run: dict[str, Any], outcome: str) -> None:
    assert run["state_name"] in ENDS[outcome], (run["name"], run["state_name"], run["state"])


def _cancel(stack: Stack, run: dict[str, Any]) -> None:
    """Cancel a run as `prefect flow-run cancel` (and the UI) do: propose Cancelling."""
    answer = httpx.post(f"{stack.live.api}/flow_runs/{run['id']}/set_state", json={
        "state": {"type": "CANCELLING", "message": "cancelled by the fault test"}}, timeout=10)
    assert answer.status_code in (200, 201), answer.text


def _states(stack: Stack, run: dict[str, Any]) -> list[str]:
    got = httpx.get(f"{stack.live.api}/flow_run_states/", params={"flow_run_id": run["id"]},
                    timeout=10).json()  # fmt: skip
    return [s["type"] for s in got]


def _logged(stack: Stack, run: dict[str, Any], words: str) -> bool:
    found = stack.live._post("/logs/filter", {"logs": {"flow_run_id": {"any_": [run["id"]]}},
                                              "limit": 200})  # fmt: skip
    return any(words in entry["message"] for entry in found)


def _task_names(stack: Stack, run: dict[str, Any]) -> list[str]:
    found = stack.live._post("/task_runs/filter", {
        "flow_runs": {"id": {"any_": [run["id"]]}}, "limit": 200})  # fmt: skip
    return [t["name"] for t in found]


def _explained(stack: Stack, run: dict[str, Any], sha: str, since: float, outcome: str,
               *words: str) -> float:  # fmt: skip
    """The release's report and its one event say `outcome` and every one of `words`;
    returns the seconds from `since` until both could be read."""
    report = stack.report(run)
    event = stack.event(sha)
    told = time.time() - since
    assert event["event"] == f"canary.release.{outcome}", (event["event"], event["payload"])
    reason = event["payload"].get("reason") or ""
    if outcome == "promoted" and not words:  # the decision's own words
        words = ("safe to promote",) if "safe to promote" in reason else ("pass threshold",)
    for word in words:
        assert word in reason, f"{word!r} not in the event's reason: {reason}"
        assert word in report, f"{word!r} not in the report:\n{report}"
    assert f"**{outcome}**" in report or outcome in report.splitlines()[0], report[:300]
    return told


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
        a = _final(stack, run_a, 60)
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
        poll("1.3.0 waiting for the lock", lambda: _logged(stack, queued, "waiting for the lock"), 60,
             every=0.5)  # fmt: skip
        fault = time.time()
        _cancel(stack, queued)
        queued = _final(stack, queued, 60)
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
        run = _final(stack, run, 60)
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
        run = _final(stack, run, 60)
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


def test_prefect_server_killed_and_restarted(stack: Stack) -> None:
    """SIGKILL the Prefect server after a look and start it again (same port, same
    PREFECT_HOME): the release ends cleanly one way or the other, the lock is not leaked,
    and the next release proceeds and is promoted."""
    live = stack.live
    with stack.fault("Prefect server killed and restarted") as row:
        sha = _push(stack, "1.8.0")
        run = _release(stack, sha)
        poll("the first look", lambda: stack.looks(run) >= 1, 150, every=0.5)
        server = live.chain.record("prefect-server")
        assert server is not None
        fault = time.time()
        stack.kill(server)
        live.chain.start_server()
        row.note = f"server healthy again {time.time() - fault:.1f} s after the kill"
        run = _final(stack, run, 240)
        event = stack.event(sha, timeout=60)
        if event["event"] == "canary.release.promoted":
            stack.good = "1.8.0"
        row.clean_s = stack.wait_clean(fault)
        stack.wait_quiet(timeout=240)  # the lock is free again: no leak
        first = f"{run['state_name']} ({event['event'].rsplit('.', 1)[-1]})"
        # The next release proceeds and is promoted.
        nxt = _push(stack, "1.9.0")
        after = _final(stack, _release(stack, nxt), 240)
        _ended(after, "promoted")
        stack.good = "1.9.0"
        stack.wait_clean(time.time())
        assert stack.event(nxt)["event"] == "canary.release.promoted"
        row.explained_s = _explained(stack, run, sha, fault, event["event"].rsplit(".", 1)[-1])
        row.outcome = f"interrupted release: {first}; the next one promoted"


def test_two_pushes_within_two_seconds(stack: Stack) -> None:
    """Two pushes ~1 s apart: production ends on the newer; the older is superseded before
    it takes the lock (or, if it had it first, released and then replaced by the newer)."""
    live = stack.live
    with stack.fault("two pushes within 2 s") as row:
        stack.notes["late"] = live.commit("1.9.9")  # never pushed: see the redelivery test
        stack.notes["older_delivery"] = delivery = str(uuid.uuid4())
        start = time.time()
        older = _push(stack, "2.0.0", delivery=delivery)
        time.sleep(1.0)  # the second push ~1 s after the first (the fault itself)
        newer = _push(stack, "2.1.0")
        stack.notes["older"] = older
        assert time.time() - start < 2.0
        a = _final(stack, _release(stack, older), 240)
        b = _final(stack, _release(stack, newer), 300)
        _ended(b, "promoted")
        stack.good = "2.1.0"
        row.clean_s = stack.wait_clean(start)
        row.explained_s = _explained(stack, b, newer, start, "promoted")
        if a["state_name"] == "Skipped":
            _explained(stack, a, older, start, "skipped", "superseded by the newer commit")
            row.outcome = "older Skipped (superseded), newer promoted"
        else:
            _ended(a, "promoted")
            row.outcome = f"older ran first ({stack.event(older)['event']}), newer promoted after"


def test_redelivery_of_an_older_commit(stack: Stack) -> None:
    """With 2.1.0 in production: GitHub redelivers 2.0.0's push (same delivery id), the same
    commit is pushed again (new id), and an older commit's first delivery arrives late.
    Nothing is released; the late one ends Skipped, older than production, with a report."""
    live = stack.live
    with stack.fault("redelivery of an older commit") as row:
        older, late = stack.notes["older"], stack.notes["late"]
        releases_before = len(live.runs_for("canary-release", older))
        builds_before = {r["id"] for r in live.runs_for("build", older)}
        start = time.time()
        for delivery in (stack.notes["older_delivery"], str(uuid.uuid4())):
            sent = live.push(older, before=late, delivery=delivery)
            assert sent.returncode == 0, sent.stderr
        sent = live.push(late, before=live.commits["1.9.0"])
        assert sent.returncode == 0, sent.stderr
        run = _final(stack, _release(stack, late), 120)
        assert run["state_name"] == "Skipped", run["state_name"]
        row.explained_s = _explained(stack, run, late, start, "skipped", "older than production")
        row.clean_s = stack.wait_clean(start)
        assert len(live.runs_for("canary-release", older)) == releases_before
        new_builds = [r for r in live.runs_for("build", older) if r["id"] not in builds_before]
        for build in new_builds:
            build = _final(stack, build, 60)
            assert build["state_name"] == "Skipped", build["state_name"]
            assert "already handled" in (build["state"]["message"] or ""), build["state"]
        row.outcome = (f"late 1.9.9 Skipped (older than production); 2.0.0 again: "
                       f"{len(new_builds)} build run(s), Skipped as already built, no release")


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
