"""A GitHub push payload (trimmed to GitHub's real nesting) and a signed-delivery helper."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.support.prefect_server import free_port
from webhook.signing import sign

ROOT = Path(__file__).resolve().parents[2]

SECRET = "s3cr3t-for-tests-Zq8v"  # distinctive, so a leak into logs is unmistakable
AFTER = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
BEFORE = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
# Only in the body, never in the event: finding it in a log means the body was logged.
BODY_ONLY_MARKER = "BODY-ONLY-7f3c9a"
MESSAGE_MARKER = "MSG-MARKER-2b8e41"

_PUSH: dict[str, Any] = {
    "ref": "refs/heads/main",
    "before": BEFORE,
    "after": AFTER,
    "created": False,
    "deleted": False,
    "forced": False,
    "base_ref": None,
    "compare": f"https://github.com/acme/goldengoose/compare/{BEFORE[:12]}...{AFTER[:12]}",
    "commits": [
        {
            "id": AFTER,
            "message": f"Add canary knobs {BODY_ONLY_MARKER}",
            "author": {"name": "Ada", "email": "ada@example.com", "username": "ada"},
            "added": [],
            "removed": [],
            "modified": ["app.py"],
        }
    ],
    "head_commit": {
        "id": AFTER,
        "message": f"Add canary knobs {MESSAGE_MARKER}",
        "timestamp": "2026-11-26T12:00:00Z",
        "author": {"name": "Ada", "email": "ada@example.com", "username": "ada"},
    },
    "repository": {
        "id": 123456,
        "name": "goldengoose",
        "full_name": "acme/goldengoose",
        "private": False,
        "owner": {"name": "acme", "login": "acme", "email": "ops@example.com"},
        "html_url": "https://github.com/acme/goldengoose",
        "clone_url": "https://github.com/acme/goldengoose.git",
        "ssh_url": "git@github.com:acme/goldengoose.git",
        "default_branch": "main",
        "master_branch": "main",
    },
    "pusher": {"name": "ada", "email": "ada@example.com"},
    "sender": {"login": "ada", "id": 42, "type": "User"},
}


def push_payload(**overrides: Any) -> dict[str, Any]:
    """A fresh push payload; `repository=...` replaces keys inside the repository object."""
    payload = copy.deepcopy(_PUSH)
    repository = overrides.pop("repository", None)
    if repository is not None:
        payload["repository"].update(repository)
    payload.update(overrides)
    return payload


async def deliver(
    client: httpx.AsyncClient,
    payload: Any = None,
    *,
    event: str | None = "push",
    delivery: str | None = None,
    body: bytes | None = None,
    secret: str = SECRET,
    signature: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST a delivery the way GitHub does (JSON body, signed, with its three headers)."""
    if body is None:
        body = json.dumps(push_payload() if payload is None else payload).encode()
    sent = {"content-type": "application/json", "x-github-delivery": delivery or str(uuid.uuid4())}
    if event is not None:
        sent["x-github-event"] = event
    sent["x-hub-signature-256"] = signature if signature is not None else sign(secret, body)
    sent.update(headers or {})
    return await client.post("/github", content=body, headers=sent)


class RelayProcess:
    """`python -m webhook` as a real subprocess; output to a file, stopped by its PID."""

    def __init__(self, env: dict[str, str], log_path: Path, *, startup_timeout: float = 30.0):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "GITHUB_"))}
        started = time.monotonic()
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "webhook", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=ROOT,
                env=base | env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = started + startup_timeout
        while not self._healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"relay did not start:\n{self.log()}")
            time.sleep(0.05)
        self.startup_seconds = time.monotonic() - started

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


def run_send_script(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """scripts/send_github_push.py as a subprocess (how a post-receive hook runs it)."""
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "send_github_push.py"), *args],
        env=os.environ | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
