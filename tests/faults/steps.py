"""The steps the fault tests share (tests/faults/test_faults*.py): push a commit, find its
release, wait for a run's end, cancel a run, and check that a release's end is explained."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.faults.conftest import Stack
from tests.support.live_chain import FINAL
from tests.support.polling import poll

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
