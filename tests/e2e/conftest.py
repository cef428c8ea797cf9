"""The whole chain for real: Prefect server, worker, relay, HAProxy, Prometheus, goldengoose.

One chain per test session (a fresh Prefect DB costs ~15-25 s here). The app repository is a
real git repository of examples/goldengoose; production starts on v1 under steady bounded
load through HAProxy, which the canary releases then split.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from canary.platforms.local import procs
from demo.chain import Chain, ChainConfig

ROOT = Path(__file__).resolve().parents[2]
APP = "goldengoose"


def git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "dev", "GIT_AUTHOR_EMAIL": "dev@example.invalid",
           "GIT_COMMITTER_NAME": "dev", "GIT_COMMITTER_EMAIL": "dev@example.invalid",
           "PATH": "/usr/bin:/bin", "HOME": str(repo)}  # fmt: skip
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          env=env, check=True)  # fmt: skip
    return done.stdout.strip()


@dataclass
class Live:
    chain: Chain
    repo: Path
    secret: str = field(repr=False)
    commits: dict[str, str] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)

    @property
    def api(self) -> str:
        return self.chain.config.api_url

    def commit(self, version: str, faults: dict[str, Any] | None = None) -> str:
        (self.repo / "VERSION").write_text(f"{version}\n")
        (self.repo / "faults.json").write_text(json.dumps(faults or {}) + "\n")
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-qm", f"goldengoose {version}")
        sha = git(self.repo, "rev-parse", "HEAD")
        self.commits[version] = sha
        return sha

    def push(self, sha: str, *, before: str = "0" * 40, delivery: str | None = None,
             secret: str | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """Send a signed GitHub push delivery exactly as the demo's post-receive hook does."""
        args = [sys.executable, "scripts/send_github_push.py", str(self.repo), "refs/heads/main",
                before, sha, self.chain.config.relay_url, "--retries", "0"]  # fmt: skip
        if delivery:
            args += ["--delivery", delivery]
        env = {"PATH": "/usr/bin:/bin", "GITHUB_WEBHOOK_SECRET": secret or self.secret}
        return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)

    def flow_runs(self, deployment: str | None = None) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"sort": "EXPECTED_START_TIME_ASC", "limit": 200}
        if deployment:
            body["deployments"] = {"name": {"any_": [deployment]}}
        return httpx.post(f"{self.api}/flow_runs/filter", json=body, timeout=10).json()

    def wait_run(self, deployment: str, commit: str, timeout: float = 240) -> dict[str, Any]:
        """The run of `deployment` for `commit`, once it reached a final state."""
        deadline = time.monotonic() + timeout
        last: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            last = [r for r in self.flow_runs(deployment) if r["parameters"].get("commit") == commit]
            if last and last[0]["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                return last[0]
            time.sleep(0.5)
        raise TimeoutError(f"{deployment} run for {commit[:12]} not final in {timeout} s: {last}\n"
                           f"{procs.tail(self.chain.home / 'logs' / 'worker.log', 60)}")  # fmt: skip

    def run_deployment(self, flow: str, deployment: str, parameters: dict[str, Any],
                       timeout: float = 180) -> dict[str, Any]:  # fmt: skip
        """Create a run of a deployment through the API; the worker runs it. Final state."""
        dep = httpx.get(f"{self.api}/deployments/name/{flow}/{deployment}", timeout=10).json()
        deadline = time.monotonic() + timeout
        while True:  # the SQLite-backed server answers 5xx while its DB is locked: retry
            answer = httpx.post(f"{self.api}/deployments/{dep['id']}/create_flow_run",
                                json={"parameters": parameters}, timeout=10)  # fmt: skip
            if answer.status_code < 500 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert answer.status_code == 201, f"create_flow_run: {answer.status_code} {answer.text}"
        run = answer.json()
        while time.monotonic() < deadline:
            run = httpx.get(f"{self.api}/flow_runs/{run['id']}", timeout=10).json()
            if run["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                return run
            time.sleep(0.5)
        raise TimeoutError(f"{flow}/{deployment} run not final in {timeout} s: {run['state_name']}")

    def artifacts(self, run: dict[str, Any], kind: str | None = None) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"artifacts": {"flow_run_id": {"any_": [run["id"]]}}, "limit": 100}
        if kind:
            body["artifacts"]["type"] = {"any_": [kind]}
        return httpx.post(f"{self.api}/artifacts/filter", json=body, timeout=10).json()

    def markdown(self, run: dict[str, Any]) -> str:
        return "\n".join(a["data"] for a in self.artifacts(run, "markdown"))

    def events(self, prefix: str, since: float = 0.0,
               where: Callable[[dict[str, Any]], bool] = lambda e: True) -> list[dict[str, Any]]:  # fmt: skip
        """Events of the app whose name starts with `prefix` (a full name matches itself)."""
        body = {"filter": {"event": {"prefix": [prefix]},
                           "any_resource": {"id": [f"canary.app.{APP}"]}}, "limit": 50}  # fmt: skip
        found = httpx.post(f"{self.api}/events/filter", json=body, timeout=10).json()["events"]
        return [e for e in found if _epoch(e["occurred"]) >= since and where(e)]

    def wait_events(self, prefix: str, since: float = 0.0,
                    where: Callable[[dict[str, Any]], bool] = lambda e: True,
                    timeout: float = 20) -> list[dict[str, Any]]:  # fmt: skip
        """Events show up to ~5 s late (the server persists them in batches): poll."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.events(prefix, since, where)
            if found:
                return found
            time.sleep(0.5)
        raise TimeoutError(f"no {prefix}* event since {since}")

    def result_of(self, run: dict[str, Any]) -> Any:
        state = httpx.get(f"{self.api}/flow_runs/{run['id']}", timeout=10).json()["state"]
        return state


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class Load:
    """Steady production traffic through HAProxy for the whole session, bounded in time."""

    def __init__(self, url: str, rate: float, duration: float) -> None:
        from examples.goldengoose.load import drive

        self.result: Any = None
        self._thread = threading.Thread(
            target=lambda: setattr(self, "result", drive(url, rate=rate, duration=duration,
                                                         deadline=duration + 10)),
            daemon=True,
        )  # fmt: skip
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    for binary in ("prometheus", "haproxy", "git"):
        if shutil.which(binary) is None and not Path(f"/usr/sbin/{binary}").exists():
            pytest.skip(f"{binary} is missing: run `make setup`")
    home = tmp_path_factory.mktemp("chain")
    ports = procs.free_ports(6)
    secret = secrets.token_hex(16)
    config = ChainConfig(home=home, prefect_port=ports[0], relay_port=ports[1],
                         app=APP, app_port=ports[2], stats_port=ports[3],
                         prometheus_port=ports[4], webhook_secret=secret)  # fmt: skip
    chain = Chain(config, say=lambda line: print(f"[chain] {line}"))
    repo = home / APP
    shutil.copytree(ROOT / "examples" / "goldengoose", repo,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))  # fmt: skip
    git(repo, "init", "-q", "-b", "main")
    state = Live(chain, repo, secret)
    load = None
    try:
        chain.start()
        v1 = state.commit("1.0.0")
        subprocess.run([sys.executable, "scripts/bootstrap_production.py", "--repo", str(repo),
                        "--commit", v1], cwd=ROOT, env=chain.client_env(), check=True,
                       capture_output=True, timeout=120)  # fmt: skip
        load = Load(f"http://127.0.0.1:{config.app_port}/", rate=60, duration=600)
        yield state
    finally:
        chain.stop()
        if load is not None:
            load.join(20)
