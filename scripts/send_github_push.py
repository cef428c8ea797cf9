#!/usr/bin/env python3
"""Sign and POST a GitHub-format ``push`` delivery to the webhook relay.

Made for a git ``post-receive`` hook on a local (bare) repository, so a plain ``git push``
starts the canary chain the way a GitHub push would:

    #!/bin/sh
    # hooks/post-receive: one delivery per updated ref
    while read -r before after ref; do
        GITHUB_WEBHOOK_SECRET=... python3 /path/to/scripts/send_github_push.py \\
            "$PWD" "$ref" "$before" "$after" http://127.0.0.1:8088/github
    done

REPO is a path to a git repository (the payload then names it ``local/<dir name>``, its clone
URL is the absolute path, and the default branch and head commit message are read with git)
or an ``owner/name`` string for a GitHub-like payload. Only the standard library is used, so any
python3 can run it. The secret comes from GITHUB_WEBHOOK_SECRET and is never printed.

A 503 (Prefect unreachable) or a connection error is retried with the SAME delivery id, the way
a GitHub redelivery is, so the relay deduplicates it. Exit status: 0 when the relay answered
2xx, 1 when it refused or stayed unreachable, 2 on bad arguments or a missing secret.
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ZERO_SHA = "0" * 40
SECRET_ENV = "GITHUB_WEBHOOK_SECRET"
_SHA = re.compile(r"[0-9a-fA-F]{40}")


def _git(repo: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def _local_name(repo: Path) -> str:
    name = repo.name.removesuffix(".git") or "repo"
    return re.sub(r"[^A-Za-z0-9_.-]", "-", name)


def build_payload(
    repo: str,
    ref: str,
    before: str,
    after: str,
    *,
    full_name: str | None = None,
    default_branch: str | None = None,
    clone_url: str | None = None,
    pusher: str | None = None,
    message: str | None = None,
) -> dict:
    """A push payload with the fields (and nesting) GitHub uses for the ones the relay reads."""
    path = Path(repo)
    is_local = path.exists()
    if is_local:
        path = path.resolve()
        full_name = full_name or f"local/{_local_name(path)}"
        clone_url = clone_url or str(path)
        if default_branch is None:
            head = _git(path, "symbolic-ref", "--short", "HEAD")
            default_branch = head.strip() if head else None
        if message is None and after != ZERO_SHA:
            text = _git(path, "log", "-1", "--format=%B", after)
            message = text.rstrip("\n") if text is not None else None
    else:
        full_name = full_name or repo
        clone_url = clone_url or f"https://github.com/{full_name}.git"
    owner, _, name = full_name.partition("/")
    pusher = pusher or os.environ.get("GIT_PUSHER") or getpass.getuser()
    deleted = after == ZERO_SHA
    return {
        "ref": ref,
        "before": before,
        "after": after,
        "created": before == ZERO_SHA,
        "deleted": deleted,
        "forced": False,
        "repository": {
            "name": name,
            "full_name": full_name,
            "owner": {"login": owner, "name": owner},
            "clone_url": clone_url,
            "default_branch": default_branch or "main",
        },
        "pusher": {"name": pusher},
        "sender": {"login": pusher},
        "head_commit": None
        if deleted
        else {"id": after, "message": message or "", "distinct": True},
        "commits": [],
    }


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, str]:
    """(status, response text); status 0 means the relay could not be reached."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as exc:
        return 0, f"relay unreachable: {getattr(exc, 'reason', exc)}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repo", help="path to a git repository, or owner/name")
    parser.add_argument("ref", help="e.g. refs/heads/main")
    parser.add_argument("before", help="old commit SHA (40 zeros for a new ref)")
    parser.add_argument("after", help="new commit SHA (40 zeros for a deletion)")
    parser.add_argument("url", help="relay URL, e.g. http://127.0.0.1:8088/github")
    parser.add_argument("--full-name", help="owner/name for the payload")
    parser.add_argument("--default-branch", help="default: the repository's HEAD branch")
    parser.add_argument("--clone-url")
    parser.add_argument("--pusher", help="default: $GIT_PUSHER or the current user")
    parser.add_argument("--message", help="head commit message (default: read with git)")
    parser.add_argument("--delivery", help="X-GitHub-Delivery GUID (default: a new uuid4)")
    parser.add_argument("--event", default="push", help="X-GitHub-Event (default push)")
    parser.add_argument("--retries", type=int, default=3, help="retries on 503/unreachable")
    parser.add_argument("--timeout", type=float, default=15.0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    secret = os.environ.get(SECRET_ENV, "")
    if not secret:
        print(f"send_github_push: {SECRET_ENV} is not set", file=sys.stderr)
        return 2
    for key in ("before", "after"):
        if not _SHA.fullmatch(getattr(args, key)):
            print(f"send_github_push: {key} must be a 40-hex SHA", file=sys.stderr)
            return 2
    payload = build_payload(
        args.repo,
        args.ref,
        args.before.lower(),
        args.after.lower(),
        full_name=args.full_name,
        default_branch=args.default_branch,
        clone_url=args.clone_url,
        pusher=args.pusher,
        message=args.message,
    )
    body = json.dumps(payload).encode("utf-8")
    delivery = args.delivery or str(uuid.uuid4())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/prefect-canary-local",
        "X-GitHub-Event": args.event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": sign(secret, body),
    }
    for attempt in range(args.retries + 1):
        status, text = post(args.url, body, headers, args.timeout)
        retryable = status in (0, 502, 503, 504)
        if not retryable or attempt == args.retries:
            break
        print(
            f"send_github_push: {status or 'unreachable'}, retrying delivery {delivery}",
            file=sys.stderr,
        )
        time.sleep(min(2**attempt, 10))
    print(f"delivery {delivery} {args.ref} {args.after[:12]} -> {status or 'unreachable'} {text}")
    return 0 if 200 <= status < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
