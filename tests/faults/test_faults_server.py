"""Fault injection on the real local stack, part two: the Prefect server killed and
restarted, then deliveries out of order (two pushes within 2 s, a redelivery of an older
commit). Same invariants and table as tests/faults/test_faults.py, on a chain of its own
(the module-scoped `stack`), so `make test` runs the two files side by side; the tests run
in file order, each leaving production clean for the next (the redelivery replays the
two-pushes test's deliveries).
"""

from __future__ import annotations

import time
import uuid

import pytest

from tests.faults.conftest import Stack
from tests.faults.steps import _ended, _explained, _final, _push, _release
from tests.support.polling import poll

pytestmark = [pytest.mark.faults, pytest.mark.slow]


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
