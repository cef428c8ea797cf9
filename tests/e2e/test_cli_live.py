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

ROOT = Path(__file__).resolve().parents[2]
CANARY = ROOT / ".venv" / "bin" / "canary"


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


def _no_early_decision() -> dict[str, str]:
    """The repository's release spec, carried in the commit, with minAnalysis as long as
    the lifetime: the judge may not promote early, so the operator's command decides."""
    spec = (ROOT / "deployments" / "releases" / "goldengoose.yaml").read_text()
    spec = spec.replace("canary_config: ../canary-configs/goldengoose.yaml", "canary_config: goldengoose.yaml")
    spec = spec.replace("  lifetime: 2m", "  lifetime: 2m\n  minAnalysis: 2m", 1)
    assert "minAnalysis: 2m" in spec and "canary_config: goldengoose.yaml" in spec, spec
    config = (ROOT / "deployments" / "canary-configs" / "goldengoose.yaml").read_text()
    return {"release.yaml": spec, "goldengoose.yaml": config}


def _push(live: Live, version: str) -> str:
    before = list(live.commits.values())[-1]
    sha = live.commit(version, app_config=_no_early_decision())
    assert live.push(sha, before=before).returncode == 0
    return sha


def test_promote_and_abort_live_releases_then_their_history(live: Live) -> None:
    promoted = _push(live, "9.0.0")
    row = _looking(live, "9.0.0")
    assert row["commit"] == promoted[:12] and row["state"] == "Running"
    assert row["canary_share"] in (20, 40) and row["run"].startswith("http")
    result = canary(live, "promote", APP, "--wait", "120")
    assert result["state"] == "Promoted", result
    assert "(canary promote)" in result["why"], result
    assert _production_version(live) == "9.0.0"

    aborted = _push(live, "9.1.0")
    _looking(live, "9.1.0")
    result = canary(live, "abort", APP, "--wait", "120")
    # an operator's abort is its own end: Aborted (production unchanged), not a verdict
    assert result["state"] == "Aborted" and "(canary abort)" in result["why"], result
    assert _production_version(live) == "9.0.0"  # production untouched

    history = {r["commit"]: r for r in canary(live, "history", APP)}
    assert history[promoted[:12]]["outcome"] == "Promoted"
    assert history[aborted[:12]]["outcome"] == "Aborted"
    assert "canary abort" in history[aborted[:12]]["why"]
