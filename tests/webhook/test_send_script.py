"""scripts/send_github_push.py against the relay running as a real process (`python -m webhook`).

The last test wires it as a git post-receive hook, the way the local demo does: a plain
`git push` to a bare repository produces the github.push event.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.webhook.helpers import (
    BODY_ONLY_MARKER,
    MESSAGE_MARKER,
    ROOT,
    SECRET,
    RelayProcess,
    run_send_script,
)

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

A = "a" * 40
B = "b" * 40


@pytest.fixture
def relay_process(fake_prefect, tmp_path):
    relay = RelayProcess(
        {"GITHUB_WEBHOOK_SECRET": SECRET, "PREFECT_API_URL": fake_prefect.api_url},
        tmp_path / "relay.log",
    )
    yield relay
    relay.stop()


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=Ada", "-c", "user.email=ada@example.com", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return done.stdout.strip()


def test_script_push_is_relayed_and_redelivery_keeps_the_id(relay_process, fake_prefect):
    url = f"{relay_process.url}/github"
    env = {"GITHUB_WEBHOOK_SECRET": SECRET, "GIT_PUSHER": "ada"}
    delivery = str(uuid.uuid4())
    args = [
        "acme/goldengoose",
        "refs/heads/main",
        A,
        B,
        url,
        "--delivery",
        delivery,
        "--message",
        f"Ship it {MESSAGE_MARKER}",
    ]
    first = run_send_script(*args, env=env)
    again = run_send_script(*args, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert again.returncode == 0
    assert f'"event_id":"{delivery}"' in first.stdout
    assert [e["id"] for e in fake_prefect.events] == [delivery, delivery]
    event = fake_prefect.events[0]
    assert event["resource"]["prefect.resource.id"] == "github.repo.acme.goldengoose"
    assert event["payload"]["clone_url"] == "https://github.com/acme/goldengoose.git"
    assert event["payload"]["head_commit_message"] == f"Ship it {MESSAGE_MARKER}"
    assert event["related"][0]["prefect.resource.name"] == "ada"

    # SIGTERM: uvicorn shuts down gracefully, then re-raises the signal as its exit status.
    assert relay_process.stop() in (0, -signal.SIGTERM)
    log = relay_process.log()
    assert "Application shutdown complete" in log
    assert f"delivery={delivery} event=push -> 202" in log
    assert SECRET not in log and MESSAGE_MARKER not in log and BODY_ONLY_MARKER not in log


def test_script_reports_refusals_and_missing_secret(relay_process, fake_prefect):
    url = f"{relay_process.url}/github"
    wrong = run_send_script(
        "acme/goldengoose", "refs/heads/main", A, B, url, env={"GITHUB_WEBHOOK_SECRET": "wrong"}
    )
    assert wrong.returncode == 1 and "-> 401" in wrong.stdout
    ignored = run_send_script(
        "acme/goldengoose", "refs/heads/topic", A, B, url, env={"GITHUB_WEBHOOK_SECRET": SECRET}
    )
    assert ignored.returncode == 0 and '"status":"ignored"' in ignored.stdout
    no_secret = run_send_script(
        "acme/goldengoose", "refs/heads/main", A, B, url, env={"GITHUB_WEBHOOK_SECRET": ""}
    )
    assert no_secret.returncode == 2 and "GITHUB_WEBHOOK_SECRET is not set" in no_secret.stderr
    bad_sha = run_send_script(
        "acme/goldengoose", "refs/heads/main", A, "HEAD", url, env={"GITHUB_WEBHOOK_SECRET": SECRET}
    )
    assert bad_sha.returncode == 2
    assert fake_prefect.events == []


def test_script_retries_a_503_with_the_same_delivery(relay_process, fake_prefect):
    fake_prefect.status = 503
    done = run_send_script(
        "acme/goldengoose",
        "refs/heads/main",
        A,
        B,
        f"{relay_process.url}/github",
        "--retries",
        "1",
        env={"GITHUB_WEBHOOK_SECRET": SECRET},
    )
    assert done.returncode == 1
    assert "retrying delivery" in done.stderr
    log = relay_process.log()
    (delivery,) = {
        line.split("delivery=")[1].split()[0] for line in log.splitlines() if " -> 503 " in line
    }
    assert log.count(f"delivery={delivery} event=push -> 503") == 2


def test_post_receive_hook_on_a_bare_repository(relay_process, fake_prefect, tmp_path):
    origin = tmp_path / "goldengoose.git"
    work = tmp_path / "work"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    hook = origin / "hooks" / "post-receive"
    hook.write_text(
        "#!/bin/sh\n"
        "while read -r before after ref; do\n"
        f'  "{sys.executable}" "{ROOT / "scripts" / "send_github_push.py"}" '
        f'"$PWD" "$ref" "$before" "$after" "{relay_process.url}/github"\n'
        "done\n"
    )
    hook.chmod(0o755)
    git(tmp_path, "init", "-q", "-b", "main", str(work))
    (work / "app.txt").write_text("v1\n")
    git(work, "add", "app.txt")
    git(work, "commit", "-q", "-m", f"First version {MESSAGE_MARKER}\n\nWith a body.")
    sha = git(work, "rev-parse", "HEAD")
    push = subprocess.run(
        ["git", "push", "-q", str(origin), "main", "main:refs/heads/topic"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "GITHUB_WEBHOOK_SECRET": SECRET, "GIT_PUSHER": "ada"},
    )
    assert "202" in push.stderr  # the hook's output reaches the pusher as "remote: ..."
    (event,) = fake_prefect.events  # main is relayed; topic is not the default branch
    assert event["resource"]["prefect.resource.id"] == "github.repo.local.goldengoose"
    assert event["payload"] | {"delivery": None} == {
        "ref": "refs/heads/main",
        "branch": "main",
        "before": "0" * 40,
        "after": sha,
        "clone_url": str(origin.resolve()),
        "repository": "local/goldengoose",
        "default_branch": "main",
        "pusher": "ada",
        "head_commit_message": f"First version {MESSAGE_MARKER}\n\nWith a body.",
        "delivery": None,
    }
