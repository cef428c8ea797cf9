"""The whole chain for real, for the suites that need it (tests/e2e, tests/faults).

Prefect server, worker, relay, HAProxy, Prometheus and the supervisor on free ports, with
their own state under one directory, so two suites (or two pytest-xdist workers) each get a
chain of their own. The app repository is a real git repository of examples/goldengoose;
production starts on v1 (`start_live`), which the canary releases then split.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from canary.platforms.local import procs
from demo.chain import Chain, ChainConfig

ROOT = Path(__file__).resolve().parents[2]
APP = "goldengoose"
FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


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

    @property
    def db(self) -> str:
        """The Prefect server's database: "sqlite" or "postgres"."""
        return self.chain.config.db

    def commit(self, version: str, faults: dict[str, Any] | None = None,
               app_config: dict[str, str] | None = None) -> str:
        """Commit `version`; `app_config` is the commit's `.canary/` files (None: none, so
        the release uses deployments/releases/goldengoose.yaml)."""
        (self.repo / "VERSION").write_text(f"{version}\n")
        (self.repo / "faults.json").write_text(json.dumps(faults or {}) + "\n")
        carried = self.repo / ".canary"
        if carried.exists():
            shutil.rmtree(carried)
        for name, text in (app_config or {}).items():
            (carried / name).parent.mkdir(parents=True, exist_ok=True)
            (carried / name).write_text(text)
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-qm", f"goldengoose {version}")
        sha = git(self.repo, "rev-parse", "HEAD")
        self.commits[version] = sha
        return sha

    def push_args(self, sha: str, *, before: str = "0" * 40, delivery: str | None = None
                  ) -> list[str]:  # fmt: skip
        args = [sys.executable, "scripts/send_github_push.py", str(self.repo), "refs/heads/main",
                before, sha, self.chain.config.relay_url, "--retries", "0"]  # fmt: skip
        return args + (["--delivery", delivery] if delivery else [])

    def push_env(self, secret: str | None = None) -> dict[str, str]:
        return {"PATH": "/usr/bin:/bin", "GITHUB_WEBHOOK_SECRET": secret or self.secret}

    def push(self, sha: str, *, before: str = "0" * 40, delivery: str | None = None,
             secret: str | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """Send a signed GitHub push delivery exactly as the demo's post-receive hook does."""
        return subprocess.run(self.push_args(sha, before=before, delivery=delivery), cwd=ROOT,
                              env=self.push_env(secret), capture_output=True, text=True,
                              timeout=30)  # fmt: skip

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        """POST to the API, retried for a while when the server refuses connections (it
        restarts in the fault tests) and, on SQLite only, when it answers 5xx (its database
        is locked under load; PostgreSQL's server must answer)."""
        deadline = time.monotonic() + 60
        retry_5xx = self.db == "sqlite"
        while True:
            try:
                answer = httpx.post(f"{self.api}{path}", json=body, timeout=10)
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
            else:
                if answer.status_code < 500 or not retry_5xx or time.monotonic() > deadline:
                    answer.raise_for_status()
                    return answer.json()
            time.sleep(0.5)

    def flow_runs(self, deployment: str | None = None) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"sort": "EXPECTED_START_TIME_ASC", "limit": 200}
        if deployment:
            body["deployments"] = {"name": {"any_": [deployment]}}
        return self._post("/flow_runs/filter", body)

    def runs_for(self, deployment: str, commit: str) -> list[dict[str, Any]]:
        return [r for r in self.flow_runs(deployment) if r["parameters"].get("commit") == commit]

    def wait_run(self, deployment: str, commit: str, timeout: float = 240) -> dict[str, Any]:
        """The run of `deployment` for `commit`, once it reached a final state."""
        deadline = time.monotonic() + timeout
        last: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            last = self.runs_for(deployment, commit)
            if last and last[0]["state_type"] in FINAL:
                return last[0]
            time.sleep(0.5)
        raise TimeoutError(f"{deployment} run for {commit[:12]} not final in {timeout} s: {last}\n"
                           f"{procs.tail(self.chain.home / 'logs' / 'worker.log', 60)}")  # fmt: skip

    def read_run(self, run_id: str) -> dict[str, Any]:
        return httpx.get(f"{self.api}/flow_runs/{run_id}", timeout=10).json()

    def create_run(self, flow: str, deployment: str, parameters: dict[str, Any]) -> dict[str, Any]:
        """Create a run of a deployment through the API (the worker runs it)."""
        dep = httpx.get(f"{self.api}/deployments/name/{flow}/{deployment}", timeout=10).json()
        return self._post(f"/deployments/{dep['id']}/create_flow_run", {"parameters": parameters})

    def run_deployment(self, flow: str, deployment: str, parameters: dict[str, Any],
                       timeout: float = 180) -> dict[str, Any]:  # fmt: skip
        """Create a run of a deployment through the API; the worker runs it. Final state."""
        run = self.create_run(flow, deployment, parameters)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.read_run(run["id"])
            if run["state_type"] in FINAL:
                return run
            time.sleep(0.5)
        raise TimeoutError(f"{flow}/{deployment} run not final in {timeout} s: {run['state_name']}")

    def artifacts(self, run: dict[str, Any], kind: str | None = None) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"artifacts": {"flow_run_id": {"any_": [run["id"]]}}, "limit": 100}
        if kind:
            body["artifacts"]["type"] = {"any_": [kind]}
        return self._post("/artifacts/filter", body)

    def markdown(self, run: dict[str, Any]) -> str:
        return "\n".join(a["data"] for a in self.artifacts(run, "markdown"))

    def events(self, prefix: str, since: float = 0.0,
               where: Callable[[dict[str, Any]], bool] = lambda e: True) -> list[dict[str, Any]]:  # fmt: skip
        """Events of the app whose name starts with `prefix` (a full name matches itself)."""
        body = {"filter": {"event": {"prefix": [prefix]},
                           "any_resource": {"id": [f"canary.app.{APP}"]}}, "limit": 50}  # fmt: skip
        found = self._post("/events/filter", body)["events"]
        return [e for e in found if epoch(e["occurred"]) >= since and where(e)]

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
        return self.read_run(run["id"])["state"]


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


_epoch = epoch  # the name tests/e2e used


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


def require_binaries() -> None:
    for binary in ("prometheus", "haproxy", "git"):
        if shutil.which(binary) is None and not Path(f"/usr/sbin/{binary}").exists():
            pytest.skip(f"{binary} is missing: run `make setup`")


@contextlib.contextmanager
def start_live(home: Path, *, say: Callable[[str], None] = print, db: str | None = None) -> Iterator[Live]:
    """A chain of its own (free ports, state under `home`) with production on v1 of a fresh
    goldengoose repository; stopped (everything it started) on the way out. The Prefect
    server's database: `db`, else $CANARY_TEST_DB, else PostgreSQL (the production backend,
    a cluster of the chain's own; CANARY_TEST_DB=sqlite runs the suites on the embedded one)."""
    db = db or os.environ.get("CANARY_TEST_DB") or "postgres"
    require_binaries()
    ports = procs.free_ports(6)
    secret = secrets.token_hex(16)
    config = ChainConfig(home=home, prefect_port=ports[0], relay_port=ports[1],
                         app=APP, app_port=ports[2], stats_port=ports[3],
                         prometheus_port=ports[4], webhook_secret=secret, db=db,
                         db_port=ports[5])  # fmt: skip
    chain = Chain(config, say=lambda line: say(f"[chain] {line}"))
    repo = home / APP
    shutil.copytree(ROOT / "examples" / "goldengoose", repo,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))  # fmt: skip
    git(repo, "init", "-q", "-b", "main")
    state = Live(chain, repo, secret)
    try:
        chain.start()
        v1 = state.commit("1.0.0")
        subprocess.run([sys.executable, "scripts/bootstrap_production.py", "--repo", str(repo),
                        "--commit", v1], cwd=ROOT, env=chain.client_env(), check=True,
                       capture_output=True, timeout=120)  # fmt: skip
        yield state
    finally:
        chain.stop()
        if db == "postgres":
            chain.postgres().remove()  # its data may live in the system temp dir
