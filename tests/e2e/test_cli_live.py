"""The `canary` CLI (the installed console script) during live releases on the local platform:
status while a release runs, promote now, abort now, then the history of both."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.live_chain import APP, Live

CANARY = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "canary"


def canary(live: Live, *args: str, timeout: float = 150) -> Any:
    env = {**live.chain.client_env(), "PREFECT_API_URL": live.api}
    done = subprocess.run([str(CANARY), "--json", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, check=False)  # fmt: skip
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return json.loads(done.stdout)


def _production_version(live: Live) -> str:
    answer = httpx.get(f"http://127.0.0.1:{live.chain.config.app_port}/", timeout=5)
    return answer.headers["X-Goldengoose-Version"]


def _looking(live: Live, version: str, timeout: float = 240) -> dict[str, Any]:
    """`canary status` once the release of `version` has made a look."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = [r for r in canary(live, "status", APP) if r["version"] == version]
        if rows and rows[0]["look"]:
            return rows[0]
        time.sleep(1.0)
    raise AssertionError(f"the release of {version} never made a look")


def _push(live: Live, version: str) -> str:
    before = list(live.commits.values())[-1]
    sha = live.commit(version)
    assert live.push(sha, before=before).returncode == 0
    return sha


def test_promote_and_abort_live_releases_then_their_history(live: Live) -> None:
    promoted = _push(live, "9.0.0")
    row = _looking(live, "9.0.0")
    assert row["commit"] == promoted[:12] and row["state"] == "Running"
    assert row["canary share"] in (10, 20, 25) and row["run"].startswith("http")
    result = canary(live, "promote", APP, "--wait", "120")
    assert result["state"] == "Promoted", result
    assert "(canary promote)" in result["why"], result
    assert _production_version(live) == "9.0.0"

    aborted = _push(live, "9.1.0")
    _looking(live, "9.1.0")
    result = canary(live, "abort", APP, "--wait", "120")
    assert result["state"] == "RolledBack" and "(canary abort)" in result["why"], result
    assert _production_version(live) == "9.0.0"  # production untouched

    history = {r["commit"]: r for r in canary(live, "history", APP)}
    assert history[promoted[:12]]["outcome"] == "Promoted"
    assert history[aborted[:12]]["outcome"] == "RolledBack"
    assert "canary abort" in history[aborted[:12]]["why"]
