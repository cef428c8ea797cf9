"""A signed push → relay → github.push event → build run → canary.build.succeeded →
canary-release run → promoted (good version) or rolled back (latency regression).

Everything is real: the Prefect server runs the automations, a process worker runs the
flows from prefect.yaml's deployments, the local platform runs goldengoose behind HAProxy
and Prometheus scrapes it, all on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from tests.e2e.conftest import APP, Live

pytestmark = pytest.mark.slow


def _wait_event(live: Live, commit: str) -> list[dict]:
    """The release-end event(s) (canary.release.<outcome>) of the release of `commit`."""
    return live.wait_events("canary.release.", where=lambda e: e["payload"].get("commit") == commit
                            and "outcome" in e["payload"])  # not its canary.release.started


def _production_version(live: Live) -> set[str]:
    from examples.goldengoose.load import drive

    result = drive(f"http://127.0.0.1:{live.chain.config.app_port}/", rate=40, duration=1.5,
                   deadline=10)  # fmt: skip
    return set(result.versions)


def test_good_push_is_built_judged_and_promoted(live: Live) -> None:
    sha = live.commit("2.0.0")
    sent = live.push(sha, before=live.commits["1.0.0"])
    assert sent.returncode == 0, sent.stderr
    build = live.wait_run("build", sha, timeout=120)
    assert build["state_type"] == "COMPLETED", build["state_name"]
    release = live.wait_run("canary-release", sha, timeout=300)
    assert release["state_type"] == "COMPLETED", live.result_of(release)
    assert release["parameters"]["image"].startswith(f"local/{APP}@sha1:")
    kinds = {a["type"] for a in live.artifacts(release)}
    assert {"table", "progress", "markdown"} <= kinds
    (event,) = _wait_event(live, sha)
    assert event["event"] == "canary.release.promoted"
    assert event["payload"]["score"] >= 95
    assert _production_version(live) == {"2.0.0"}
    live.images["2.0.0"] = release["parameters"]["image"]


def test_post_promotion_reanalysis_keeps_a_good_release_verified(live: Live) -> None:
    """Production now (2.0.0) vs production before the promotion (1.0.0), time-shifted."""
    since = time.time()
    _wait_traffic(live, seconds=25)  # production traffic on 2.0.0 past the settle time
    run = live.run_deployment("canary-reanalysis", "canary-reanalysis",
                              {"app": APP, "window_minutes": 1})  # fmt: skip
    assert run["state_type"] == "COMPLETED", run["state_name"]
    report = live.markdown(run)
    assert "re-analysis (post-promotion): verified" in report, report
    assert "| latency<br>*critical* | Pass |" in report, report  # the histogram, on its counts
    assert not live.events("canary.reanalysis.regressed", since)
    # The release's own recorded window (from its event), judged again: still a Pass.
    (promoted,) = live.events("canary.release.promoted", 0.0)
    payload = promoted["payload"]
    run = live.run_deployment("canary-reanalysis", "canary-reanalysis", {
        "app": APP, "mode": "window", "start": payload["window_start"],
        "end": payload["window_end"], "control_scope": payload["control_scope"],
        "experiment_scope": payload["experiment_scope"]})  # fmt: skip
    assert run["state_type"] == "COMPLETED", run["state_name"]
    assert "re-analysis (window): verified" in live.markdown(run)


def test_regression_is_rolled_back_and_production_untouched(live: Live) -> None:
    sha = live.commit("3.0.0", faults={"added_latency_ms": 60})
    sent = live.push(sha, before=live.commits["2.0.0"])
    assert sent.returncode == 0, sent.stderr
    release = live.wait_run("canary-release", sha, timeout=360)
    # a rollback is a Failed state named RolledBack, so alerts on failed runs fire
    assert (release["state_type"], release["state_name"]) == ("FAILED", "RolledBack")
    (event,) = _wait_event(live, sha)
    assert event["event"] == "canary.release.rolled-back"
    assert event["payload"]["score"] < 75
    (text,) = [a["data"] for a in live.artifacts(release, "markdown")
               if a["data"].startswith("# Canary release")]  # the report (not the graph links)
    headline = text.split("\n\n")[1]  # the line that answers first
    assert headline.startswith("**rolled back: latency +") and "critical" in headline, text
    assert _production_version(live) == {"2.0.0"}
    live.images["3.0.0"] = release["parameters"]["image"]


def test_production_that_regressed_after_a_change_is_flagged(live: Live) -> None:
    """Put the slow 3.0.0 into production by hand; the re-analysis must flag it."""
    run = live.run_deployment("restore-production", "restore-production",
                              {"app": APP, "image": live.images["3.0.0"]})  # fmt: skip
    assert run["state_type"] == "COMPLETED", run["state_name"]
    assert _production_version(live) == {"3.0.0"}
    changed = time.time()
    _wait_traffic(live, seconds=20)  # 20 s of production traffic on the slow version
    run = live.run_deployment("canary-reanalysis", "canary-reanalysis",
                              {"app": APP, "window_minutes": 1})  # fmt: skip
    assert run["state_type"] == "COMPLETED"
    assert "re-analysis (post-promotion): regressed" in live.markdown(run)
    # The cron schedule may have run a re-analysis of its own meanwhile: take this run's.
    mine = f"prefect.flow-run.{run['id']}"
    (event,) = [e for e in live.wait_events("canary.reanalysis.regressed", changed)
                if any(r["prefect.resource.id"] == mine for r in e["related"])]  # fmt: skip
    assert event["payload"]["previous_image"] == live.images["2.0.0"]
    assert event["payload"]["image"] == live.images["3.0.0"]
    # What the (disabled) automation would do: put the previous image back.
    run = live.run_deployment("restore-production", "restore-production",
                              {"app": APP, "image": event["payload"]["previous_image"]})  # fmt: skip
    assert run["state_type"] == "COMPLETED"
    assert _production_version(live) == {"2.0.0"}


def _wait_traffic(live: Live, seconds: float) -> None:
    """Wait until Prometheus holds `seconds` of samples after now (polled, with a deadline)."""
    target = time.time() + seconds
    url = f"http://127.0.0.1:{live.chain.config.prometheus_port}/api/v1/query"
    deadline = time.monotonic() + seconds + 30
    while time.monotonic() < deadline:
        data = httpx.get(url, params={"query": f'timestamp(up{{app="{APP}"}})'}, timeout=5).json()
        stamps = [float(r["value"][1]) for r in data["data"]["result"]]
        if stamps and min(stamps) >= target:
            return
        time.sleep(0.5)
    raise TimeoutError("Prometheus did not scrape the production traffic")


def test_relay_rejections_and_redelivery_start_no_extra_runs(live: Live) -> None:
    before = len(live.flow_runs("build"))
    sha = live.commit("4.0.0")
    assert live.push(sha, secret="not-the-secret").returncode == 1  # 401: bad signature
    wrong_branch = httpx.post(live.chain.config.relay_url, content=b"{}", headers={
        "X-GitHub-Event": "push", "X-GitHub-Delivery": str(uuid.uuid4())}, timeout=10)
    assert wrong_branch.status_code == 401  # unsigned
    oversized = httpx.post(live.chain.config.relay_url, content=b"x" * (1024 * 1024 + 1),
                           headers={"X-GitHub-Event": "push"}, timeout=10)  # fmt: skip
    assert oversized.status_code == 413
    delivery = str(uuid.uuid4())
    assert live.push(sha, delivery=delivery).returncode == 0
    assert live.push(sha, delivery=delivery).returncode == 0  # GitHub redelivery
    build = live.wait_run("build", sha, timeout=120)
    assert build["state_type"] == "COMPLETED"
    runs = [r for r in live.flow_runs("build") if r["parameters"].get("commit") == sha]
    assert len(runs) == 1, runs
    assert len(live.flow_runs("build")) == before + 1
    # Let the release it started finish so the session ends with a clean platform.
    live.wait_run("canary-release", sha, timeout=300)


def test_killed_release_is_repaired_by_reconcile(live: Live) -> None:
    """SIGKILL the release mid-analysis: the worker marks it Crashed and the automation runs
    reconcile by itself, which removes the leftovers and reports the end on the release."""
    from canary.platforms.local import procs

    before = list(live.commits.values())[-1]
    sha = live.commit("5.0.0")
    assert live.push(sha, before=before).returncode == 0
    deadline = time.monotonic() + 180
    victims: list = []
    runs: list = []
    while time.monotonic() < deadline and not victims:
        runs = [r for r in live.flow_runs("canary-release") if r["parameters"].get("commit") == sha]
        if runs and _tracks(live) >= {"baseline", "canary"}:
            # The flow-run process itself: its app children inherit the same variable.
            victims = [rec for rec in procs.find_marked({"PREFECT__FLOW_RUN_ID": runs[0]["id"]})
                       if "prefect.engine" in rec.argv]  # fmt: skip
        time.sleep(0.5)
    assert victims, "the release never got baseline and canary running"
    for rec in victims:
        os.kill(rec.pid, signal.SIGKILL)
    killed = time.monotonic()
    # Nobody starts reconcile here: the automation on the Crashed run does, within a minute.
    while _tracks(live) != {"primary"} and time.monotonic() < killed + 60:
        time.sleep(0.5)
    assert _tracks(live) == {"primary"}, "the leftovers were not removed within a minute"
    status = _local_status(live)
    weights = status["apps"][APP]["weights"]
    assert weights["primary"] > 0 and weights.get("baseline", 0) == weights.get("canary", 0) == 0
    release = live.wait_run("canary-release", sha, timeout=60)
    assert release["state_type"] == "CRASHED", release["state_name"]
    repairs = [r for r in live.flow_runs("reconcile")
               if (r["parameters"].get("run_id") or "").endswith(release["id"])]  # fmt: skip
    assert repairs, "the automation started no reconcile for the crashed release"
    repair = repairs[0]
    while repair["state_type"] not in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
        assert time.monotonic() < killed + 120, repair["state_name"]
        time.sleep(0.5)
        repair = httpx.get(f"{live.api}/flow_runs/{repair['id']}", timeout=10).json()
    assert repair["state_type"] == "COMPLETED", repair["state_name"]
    # the tracks die with the killed process (their pipes close); the repair reads back
    # that production alone serves, and reports the release's end on it
    words = live.markdown(repair)
    assert "all traffic goes to it (read back)" in words, words
    assert "crashed or was killed" in words, words
    # The release's own report and event say how it ended, in words.
    assert "crashed or was killed" in live.markdown(release), live.markdown(release)
    (event,) = _wait_event(live, sha)
    assert event["event"] == "canary.release.rolled-back"
    assert "crashed or was killed" in event["payload"]["reason"], event["payload"]


def _local_status(live: Live) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "canary.platforms.local", "--state-dir",
         str(live.chain.config.state_dir), "status"],
        capture_output=True, text=True, check=True, env=live.chain.client_env(), timeout=30,
    )  # fmt: skip
    return json.loads(done.stdout)


def _tracks(live: Live) -> set[str]:
    workloads = _local_status(live)["apps"].get(APP, {}).get("workloads", [])
    return {w["role"] for w in workloads if w["alive"]}
