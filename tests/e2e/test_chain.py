"""A signed push → relay → github.push event → build run → canary.build.succeeded →
canary-release run → promoted (good version) or rolled back (latency regression).

Everything is real: the Prefect server runs the automations, a process worker runs the
flows from prefect.yaml's deployments, the local platform runs goldengoose behind HAProxy
and Prometheus scrapes it, all on 127.0.0.1.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.e2e.conftest import APP, Live

pytestmark = pytest.mark.slow


def _artifacts(live: Live, run_id: str) -> list[dict]:
    body = {"artifacts": {"flow_run_id": {"any_": [run_id]}}, "limit": 100}
    return httpx.post(f"{live.api}/artifacts/filter", json=body, timeout=10).json()


def _release_events(live: Live, commit: str) -> list[dict]:
    body = {"filter": {"event": {"prefix": ["canary.release."]},
                       "any_resource": {"id": [f"canary.app.{APP}"]}}, "limit": 50}  # fmt: skip
    events = httpx.post(f"{live.api}/events/filter", json=body, timeout=10).json()["events"]
    return [e for e in events if e["payload"].get("commit") == commit]


def _wait_event(live: Live, commit: str, timeout: float = 20) -> list[dict]:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # the server persists events every ~5 s
        found = _release_events(live, commit)
        if found:
            return found
        time.sleep(0.5)
    raise TimeoutError(f"no canary.release.* event for {commit[:12]}")


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
    kinds = {a["type"] for a in _artifacts(live, release["id"])}
    assert {"table", "progress", "markdown"} <= kinds
    (event,) = _wait_event(live, sha)
    assert event["event"] == "canary.release.promoted"
    assert event["payload"]["score"] >= 95
    assert _production_version(live) == {"2.0.0"}


def test_regression_is_rolled_back_and_production_untouched(live: Live) -> None:
    sha = live.commit("3.0.0", faults={"added_latency_ms": 60})
    sent = live.push(sha, before=live.commits["2.0.0"])
    assert sent.returncode == 0, sent.stderr
    release = live.wait_run("canary-release", sha, timeout=360)
    assert release["state_type"] == "COMPLETED"
    (event,) = _wait_event(live, sha)
    assert event["event"] == "canary.release.rolled-back"
    assert event["payload"]["score"] < 75
    report = [a for a in _artifacts(live, release["id"]) if a["type"] == "markdown"]
    assert "rolled-back" in report[0]["data"] and "latency-p50" in report[0]["data"]
    assert _production_version(live) == {"2.0.0"}


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
