"""The apps of concurrent_releases.py (goldengoose copies with a short release config of
their own), their timed pushes, and the steady load on all of them (a child process)."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._common import ROOT, git, timed_push

#: the bench's entry point: the load child is `concurrent_releases.py --load-child ...`
ENTRY = ROOT / "bench" / "concurrent_releases.py"
LOAD_SEGMENT_S = 10.0  # the load child reports per segment: a SIGTERM loses at most one


def release_yaml(app: str, args: argparse.Namespace) -> str:
    analysis = args.begin_after + args.lifetime
    return (
        f"# bench/concurrent_releases.py: a short analysis, never promoted early\n"
        f"app: {app}\n"
        f"canary_config: canary.yaml\n"
        f"analysis:\n"
        f"  lifetime: {args.lifetime:g}s\n"
        f"  interval: {args.interval:g}s\n"
        f"  begin_after: {args.begin_after:g}s\n"
        f"  min_analysis: {analysis:g}s\n"
        f"  lookback: 0s\n"
        f"  step: 1s\n"
        f"  thresholds: {{pass: 95, marginal: 75}}\n"
        f"traffic:\n"
        f"  steps: [20, 25, 25]\n"
        f"scopes:\n"
        f"  control: baseline\n"
        f"  experiment: canary\n"
        f"  extended_scope_params: {{rate_window: 5s}}\n"
        f"ready_timeout_seconds: 60\n"
        f"manual_judgement: false\n"
    )


def canary_yaml(app: str) -> str:
    """The shipped goldengoose canary config, every selector narrowed to this app."""
    text = (ROOT / "deployments" / "canary-configs" / "goldengoose.yaml").read_text()
    unscoped = text.count('{track="${scope}"')
    text = text.replace('{track="${scope}"', f'{{app="{app}",track="${{scope}}"')
    text = text.replace("name: goldengoose\n", f"name: {app}\n", 1)
    text = text.replace("applications: [goldengoose]", f"applications: [{app}]", 1)
    if unscoped == 0 or text.count(f'app="{app}"') != unscoped or 'track="${scope}"' in text.replace(
        f'app="{app}",track="${{scope}}"', ""
    ):
        raise RuntimeError("deployments/canary-configs/goldengoose.yaml changed: cannot scope it")
    return text


@dataclass
class App:
    """One app of the bench: its name, HAProxy frontend port, repository and pushed head."""

    name: str
    port: int
    repo: Path
    head: str = "0" * 40

    def create(self, args: argparse.Namespace) -> None:
        shutil.copytree(ROOT / "examples" / "goldengoose", self.repo,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))  # fmt: skip
        # The local platform tells a process its track as <APP>_TRACK (GG01_TRACK); the copy
        # still reads GOLDENGOOSE_TRACK, so its app spec (canary/platforms/local/spec.py)
        # passes the track and version under the names it reads.
        (self.repo / "canary.yaml").write_text(
            "env: {GOLDENGOOSE_TRACK: '{track}', GOLDENGOOSE_VERSION: '{version}'}\n")
        config = self.repo / ".canary"
        config.mkdir()
        (config / "release.yaml").write_text(release_yaml(self.name, args))
        (config / "canary.yaml").write_text(canary_yaml(self.name))
        git(self.repo, "init", "-q", "-b", "main")

    def commit(self, version: str) -> str:
        (self.repo / "VERSION").write_text(f"{version}\n")
        (self.repo / "faults.json").write_text("{}\n")
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-qm", f"{self.name} {version}")
        return git(self.repo, "rev-parse", "HEAD")


def check_app_config(apps: list[App]) -> None:
    """The carried configs load through the build's own checks (canary.appconfig)."""
    from canary.appconfig import check_files

    for app in apps:
        files = {p.name: p.read_text() for p in (app.repo / ".canary").iterdir()}
        _, named = check_files(files, app.name, f"{app.repo}")
        if named != app.name:
            raise RuntimeError(f"{app.repo}: .canary/release.yaml names {named!r}")


@dataclass
class Push:
    """One push of one app's commit: when it was sent and when the relay accepted it."""

    app: str
    commit: str
    sent: float = 0.0
    accepted: float = 0.0


def push(relay_url: str, secret: str, app: App, sha: str) -> Push:
    """One signed push delivery to the relay, timed (bench._common.timed_push)."""
    sent, accepted = timed_push(relay_url, secret, app.repo, app.head, sha, timeout=30)
    app.head = sha
    return Push(app.name, sha, sent, accepted)


def push_all(relay_url: str, secret: str, targets: list[tuple[App, str]]) -> list[Push]:
    """One push per app, all at once (a thread each, released by one barrier)."""
    barrier = threading.Barrier(len(targets))
    results: list[Push | BaseException | None] = [None] * len(targets)

    def one(i: int, app: App, sha: str) -> None:
        try:
            barrier.wait(30)
            results[i] = push(relay_url, secret, app, sha)
        except BaseException as exc:  # reported below, in the main thread
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i, app, sha), daemon=True)
               for i, (app, sha) in enumerate(targets)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    pushes = []
    for (app, _), result in zip(targets, results, strict=True):
        if not isinstance(result, Push):
            raise RuntimeError(f"push of {app.name} failed: {result!r}")
        pushes.append(result)
    return pushes


# -- steady load -----------------------------------------------------------------------------
def load_child(urls: list[str], rate: float, duration: float, out: Path) -> int:
    """(the child process) `rate` req/s on every URL in segments of LOAD_SEGMENT_S s until
    `duration` is spent; one JSON line per URL and segment appended to `out`."""
    from examples.goldengoose.load import run_load

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    end = time.monotonic() + duration

    async def segment(seconds: float) -> list[dict[str, Any]]:
        found = await asyncio.gather(*(run_load(u, rate=rate, duration=seconds,
                                                deadline=seconds + 5, timeout=4.0,
                                                concurrency=16) for u in urls))  # fmt: skip
        return [r.summary() for r in found]

    while (left := end - time.monotonic()) > 1.0:
        summaries = asyncio.run(segment(min(LOAD_SEGMENT_S, left)))
        with open(out, "a") as f:
            for s in summaries:
                f.write(json.dumps(s) + "\n")
    return 0


def start_load(apps: list[App], rate: float, seconds: float, home: Path) -> subprocess.Popen[bytes]:
    """The load child: `rate` req/s on every app for `seconds`, in its own session."""
    urls = ",".join(f"http://127.0.0.1:{a.port}/" for a in apps)
    argv = [sys.executable, str(ENTRY), "--load-child", urls, "--rate", str(rate),
            "--load-seconds", str(seconds), "--load-out", str(home / "load.jsonl")]  # fmt: skip
    with open(home / "logs" / "load.log", "ab") as log:
        return subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip


def load_summary(path: Path) -> dict[str, Any]:
    """What the load child sent, and how production answered, over all its segments."""
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    sent = sum(r["sent"] for r in rows)
    planned = sum(r["planned"] for r in rows)
    non2xx = sum(sum(r["errors"].values()) for r in rows)
    transport = sum(sum(r["transport_errors"].values()) for r in rows)
    return {"segments": len(rows), "planned": planned, "sent": sent,
            "ok": sum(r["ok"] for r in rows), "non_2xx": non2xx, "transport_errors": transport,
            "max_send_lag_ms": max((r["max_send_lag_ms"] for r in rows), default=float("nan")),
            "p99_ms_worst": max((r["latency_ms"]["p99"] or 0 for r in rows), default=float("nan"))}  # fmt: skip
