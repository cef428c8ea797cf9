"""Pipeline latency: webhook → build run, and the orchestration overhead of a whole release.

    .venv/bin/python bench/pipeline_latency.py [--pushes 8] [--json] [--keep]
                                               [--set PREFECT_WORKER_QUERY_SECONDS=0.5 ...]

Starts its own chain (demo.chain: Prefect server, HAProxy, Prometheus, worker, relay) on
free ports in a temporary home, never the demo's ports, puts goldengoose v1 into production
under steady bounded load, then measures, in one run:

1. Latency of a push. N signed GitHub-format pushes go to the relay, one new commit each and
   one at a time: POST → the relay's 202 (client clock), → build run created (the run's
   `created`), → Pending (the worker picked it up), → Running (first Running state). The
   canary-release automation is DISABLED for this part (PATCH /api/automations/{id}
   {"enabled": false}): each build still announces canary.build.succeeded, but no release
   starts, so every push meets an idle worker and the part takes seconds, not minutes.
2. The overhead of one full local release. The automation is enabled again and one more
   push (a good version) runs build → canary-release → promoted with the shipped spec
   (deployments/releases/goldengoose.yaml). Overhead = the wall time from the
   canary.build.succeeded event to the release run's end, minus begin_after + lifetime of
   the spec. Task-run timings (POST /api/task_runs/filter) split it into: automation,
   worker pick-up, process start, setup, deploy + ready, per-judgement work, promote,
   cleanup, finish.

Overhead and analysis time come from the same run, so their ratio does not depend on how
fast the machine is. Scheduled deployments other than build/canary-release (the cron
re-analysis) are paused in this private chain so that no scheduled run lands in the middle.

Every wait has a deadline. The chain is always stopped by its own stop() unless --keep is
given; then `python bench/pipeline_latency.py --stop HOME` stops it later. `--set K=V` adds
environment (e.g. worker polling settings) to every process of the chain, to try tunings.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable as a plain script

from canary.config.release import ReleaseSpec  # noqa: E402
from canary.platforms.local import procs  # noqa: E402
from demo.chain import Chain, ChainConfig  # noqa: E402
from scripts.send_github_push import build_payload, sign  # noqa: E402

APP = "goldengoose"
DEMO_PORTS = {4200, 8088, 18080, 18404, 19090}  # ChainConfig's defaults: never ours
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
RELEASE_AUTOMATION = "canary-release-on-build-succeeded"
LOAD_RATE = 60.0  # requests per second through HAProxy, as in the e2e tests


def say(line: str) -> None:
    print(f"[bench] {line}", file=sys.stderr, flush=True)


def ts(iso: str | None) -> float | None:
    """Epoch seconds of an API timestamp (None stays None)."""
    if not iso:
        return None
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), q in [0, 100]."""
    data = sorted(values)
    if not data:
        return float("nan")
    pos = (len(data) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)


def git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid",
           "PATH": "/usr/bin:/bin", "HOME": str(repo)}  # fmt: skip
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          env=env, check=True, timeout=30)  # fmt: skip
    return done.stdout.strip()


class Api:
    """The few REST calls the bench needs, standard library only."""

    def __init__(self, base: str) -> None:
        self.base = base

    def call(self, method: str, path: str, body: Any = None, timeout: float = 10) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.base}{path}", data=data, method=method,
                                         headers={"content-type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            raw = answer.read()
        return json.loads(raw) if raw else None

    def runs_of(self, deployment: str, commit: str) -> list[dict[str, Any]]:
        body = {"deployments": {"name": {"any_": [deployment]}},
                "sort": "EXPECTED_START_TIME_DESC", "limit": 50}  # fmt: skip
        runs = self.call("POST", "/flow_runs/filter", body)
        return [r for r in runs if r["parameters"].get("commit") == commit]

    def states(self, run_id: str) -> list[dict[str, Any]]:
        found = self.call("GET", f"/flow_run_states/?flow_run_id={run_id}")
        return sorted(found, key=lambda s: ts(s["timestamp"]) or 0.0)

    def task_runs(self, run_id: str) -> list[dict[str, Any]]:
        body = {"flow_runs": {"id": {"any_": [run_id]}}, "sort": "EXPECTED_START_TIME_ASC",
                "limit": 200}  # fmt: skip
        return self.call("POST", "/task_runs/filter", body)

    def events(self, name: str, resource: str | None = None) -> list[dict[str, Any]]:
        filt: dict[str, Any] = {"event": {"name": [name]}}
        if resource is not None:
            filt["any_resource"] = {"id": [resource]}
        return self.call("POST", "/events/filter", {"filter": filt, "limit": 50})["events"]

    def set_job_variables(self, deployments: set[str], variables: dict[str, Any]) -> None:
        for dep in self.call("POST", "/deployments/filter", {"limit": 200}):
            if dep["name"] in deployments:
                merged = {**(dep.get("job_variables") or {}), **variables}
                self.call("PATCH", f"/deployments/{dep['id']}", {"job_variables": merged})

    def set_automation(self, name: str, enabled: bool) -> None:
        found = self.call("POST", "/automations/filter",
                          {"automations": {"name": {"any_": [name]}}})  # fmt: skip
        if not found:
            raise RuntimeError(f"automation {name!r} not found")
        for automation in found:
            self.call("PATCH", f"/automations/{automation['id']}", {"enabled": enabled})

    def pause_scheduled(self, keep: set[str]) -> list[str]:
        """Pause deployments with schedules (the cron re-analysis) except those in `keep`."""
        paused = []
        for dep in self.call("POST", "/deployments/filter", {"limit": 200}):
            if dep["name"] not in keep and dep.get("schedules") and not dep.get("paused"):
                self.call("PATCH", f"/deployments/{dep['id']}", {"paused": True})
                paused.append(dep["name"])
        return paused


def wait_for(what: str, check: Any, timeout: float, every: float = 0.1) -> Any:
    """Poll `check()` until it returns something truthy; TimeoutError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except (OSError, ValueError):
            value = None  # a busy server may drop one poll; the deadline still holds
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)


def timed_push(relay_url: str, secret: str, repo: Path | str, before: str, sha: str, *,
               timeout: float) -> tuple[float, float]:  # fmt: skip
    """Sign and POST a push delivery the way scripts/send_github_push.py does.

    Done in-process (its build_payload and sign) so the client clock brackets exactly the
    HTTP request: (epoch just before the POST, epoch when the 202 arrived).
    """
    payload = build_payload(str(repo), "refs/heads/main", before, sha)
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "X-GitHub-Event": "push",
               "X-GitHub-Delivery": str(uuid.uuid4()),
               "X-Hub-Signature-256": sign(secret, body)}  # fmt: skip
    request = urllib.request.Request(relay_url, data=body, headers=headers, method="POST")
    sent = time.time()
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        status = answer.status
    accepted = time.time()
    if status != 202:
        raise RuntimeError(f"the relay answered {status} for {repo}, not 202")
    return sent, accepted


class Bench:
    def __init__(self, chain: Chain, repo: Path, secret: str) -> None:
        self.chain = chain
        self.repo = repo
        self.secret = secret
        self.api = Api(chain.config.api_url)
        self.head = "0" * 40

    # -- pushes ------------------------------------------------------------------------------
    def commit(self, version: str, faults: dict[str, Any] | None = None) -> str:
        (self.repo / "VERSION").write_text(f"{version}\n")
        (self.repo / "faults.json").write_text(json.dumps(faults or {}) + "\n")
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-qm", f"{APP} {version}")
        return git(self.repo, "rev-parse", "HEAD")

    def push(self, sha: str) -> tuple[float, float]:
        """(epoch just before the POST, epoch when the 202 arrived), see timed_push."""
        sent, accepted = timed_push(self.chain.config.relay_url, self.secret, self.repo,
                                    self.head, sha, timeout=15)  # fmt: skip
        self.head = sha
        return sent, accepted

    def final_run(self, deployment: str, sha: str, timeout: float) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            runs = self.api.runs_of(deployment, sha)
            return runs[0] if runs and runs[0]["state_type"] in FINAL else None

        return wait_for(f"{deployment} run for {sha[:12]} final", done, timeout, every=0.5)

    def state_times(self, run: dict[str, Any]) -> dict[str, float | None]:
        states = self.api.states(run["id"])

        def first(kind: str) -> float | None:
            return next((ts(s["timestamp"]) for s in states if s["type"] == kind), None)

        return {"created": ts(run["created"]), "pending": first("PENDING"),
                "running": first("RUNNING") or ts(run.get("start_time")),
                "end": ts(run.get("end_time"))}  # fmt: skip

    # -- part 1 ------------------------------------------------------------------------------
    def push_latency(self, pushes: int) -> list[dict[str, float]]:
        samples = []
        for i in range(pushes):
            sha = self.commit(f"1.1.{i}")
            time.sleep(random.uniform(0.3, 1.3))  # do not push in phase with the worker's poll
            sent, accepted = self.push(sha)
            run = self.final_run("build", sha, timeout=180)
            if run["state_type"] != "COMPLETED":
                raise RuntimeError(f"build of {sha[:12]} ended {run['state_name']}")
            t = self.state_times(run)
            sample = {"relay_202": accepted - sent, "created": t["created"] - sent,
                      "pending": t["pending"] - sent, "running": t["running"] - sent,
                      "completed": t["end"] - sent}  # fmt: skip
            samples.append(sample)
            say(f"push {i + 1}/{pushes} {sha[:10]}: 202 {sample['relay_202'] * 1e3:.0f} ms, "
                f"created {sample['created']:.2f} s, running {sample['running']:.2f} s")  # fmt: skip
        return samples

    # -- part 2 ------------------------------------------------------------------------------
    def release(self, spec: ReleaseSpec) -> dict[str, Any]:
        sha = self.commit("2.0.0")
        sent, _ = self.push(sha)
        build = self.final_run("build", sha, timeout=180)
        if build["state_type"] != "COMPLETED":
            raise RuntimeError(f"build of {sha[:12]} ended {build['state_name']}")
        budget = (spec.analysis.begin_after + spec.analysis.lifetime).total_seconds()
        timeout = budget + 2 * spec.ready_timeout_seconds + 240
        say(f"release of {sha[:10]} under way (analysis {budget:.0f} s; deadline {timeout:.0f} s)")
        run = self.final_run("canary-release", sha, timeout=timeout)
        result = (run.get("state") or {}).get("name", "")
        if run["state_type"] != "COMPLETED":
            raise RuntimeError(f"canary-release of {sha[:12]} ended {result}")

        def event() -> dict[str, Any] | None:  # persisted in batches: up to ~5 s late
            found = self.api.events("canary.build.succeeded", f"canary.app.{APP}")
            return next((e for e in found if e["payload"].get("commit") == sha), None)

        built = wait_for("canary.build.succeeded event", event, 30, every=0.5)
        tasks = self.settled_task_runs(run["id"])
        return {"commit": sha, "pushed": sent, "build": self.state_times(build),
                "event": {"occurred": ts(built["occurred"]), "received": ts(built["received"])},
                "automation_triggered": self.automation_times(ts(built["occurred"]) or 0.0),
                "release": self.state_times(run), "tasks": tasks,
                "states": [(s["name"], s["timestamp"]) for s in self.api.states(run["id"])],
                "logs": self.logs(run["id"]),
                "outcome": self.outcome(run)}  # fmt: skip

    def automation_times(self, since: float) -> float | None:
        """When the canary-release automation fired for the event at `since` (or None)."""
        try:
            found = self.api.events("prefect.automation.triggered")
        except OSError:
            return None
        times = [ts(e["occurred"]) or 0.0 for e in found
                 if e["resource"].get("prefect.resource.name") == RELEASE_AUTOMATION
                 and (ts(e["occurred"]) or 0.0) >= since]  # fmt: skip
        return min(times) if times else None

    def logs(self, run_id: str) -> list[tuple[str, str]]:
        body = {"logs": {"flow_run_id": {"any_": [run_id]}}, "sort": "TIMESTAMP_ASC", "limit": 200}
        try:
            found = self.api.call("POST", "/logs/filter", body)
        except OSError:
            return []
        return [(r["timestamp"], r["message"][:300]) for r in found]

    def outcome(self, run: dict[str, Any]) -> str:
        def event() -> str | None:
            for name in ("canary.release.promoted", "canary.release.rolled-back"):
                found = self.api.events(name, f"canary.app.{APP}")
                if any(e["payload"].get("commit") == run["parameters"]["commit"] for e in found):
                    return name.rsplit(".", 1)[1]
            return None

        try:
            return wait_for("release outcome event", event, 20, every=0.5)
        except TimeoutError:
            return "unknown"

    def settled_task_runs(self, run_id: str) -> list[dict[str, Any]]:
        """Task runs are recorded from client events: wait until all are final and stable."""
        previous: list[tuple[str, str]] = []

        def stable() -> list[dict[str, Any]] | None:
            nonlocal previous
            runs = self.api.task_runs(run_id)
            key = sorted((r["id"], r["state_type"]) for r in runs)
            settled = runs and key == previous and all(r["state_type"] in FINAL for r in runs)
            previous = key
            return runs if settled else None

        return wait_for("task runs recorded", stable, 60, every=2.0)


# -- analysis of the release timeline -------------------------------------------------------
def _starts(tasks: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    found = [t for t in tasks if t["name"].startswith(prefix) and t.get("start_time")]
    return sorted(found, key=lambda t: ts(t["start_time"]) or 0.0)


def split_release(data: dict[str, Any], spec: ReleaseSpec) -> dict[str, Any]:
    """The release's wall time from the build event to the run's end, in segments."""
    plan = spec.analysis
    analysis = (plan.begin_after + plan.lifetime).total_seconds()
    interval = (plan.interval or plan.lifetime).total_seconds()
    begin_after = plan.begin_after.total_seconds()
    tasks = data["tasks"]
    ev, rel = data["event"], data["release"]

    def start(t: dict[str, Any]) -> float:
        return ts(t["start_time"]) or 0.0

    def end(t: dict[str, Any]) -> float:
        return ts(t["end_time"]) or start(t)

    by_start = sorted((t for t in tasks if t.get("start_time")), key=start)
    deploys, readies = _starts(tasks, "deploy-"), _starts(tasks, "wait-ready-")
    fetches, judges = _starts(tasks, "fetch-metrics-"), _starts(tasks, "judge-interval-")
    traffic = _starts(tasks, "traffic-")
    promote = _starts(tasks, "promote-")
    cleanup = [t for p in ("roll-back-", "remove-", "restore-routes-") for t in _starts(tasks, p)]
    if not (deploys and readies and fetches and judges and cleanup):
        raise RuntimeError(f"unexpected task runs: {[t['name'] for t in by_start]}")
    analysis_start = max(end(t) for t in readies)  # the flow takes `start` right after this
    # a release decided early makes fewer looks: the analysis ran up to its last window
    analysis = min(analysis, begin_after + interval * len(judges))
    windows_end = analysis_start + analysis

    judgements = []
    for i, (fetch, judge) in enumerate(zip(fetches, judges, strict=False), start=1):
        not_before = analysis_start + begin_after + i * interval
        after = next((start(t) for t in by_start if start(t) >= end(judge)), None)
        done = after if after is not None else rel["end"]
        judgements.append({
            "index": i, "total": done - not_before, "wait_tail": start(fetch) - not_before,
            "fetch": end(fetch) - start(fetch), "judge": end(judge) - start(judge),
            "publish": done - end(judge),
        })  # fmt: skip
    last = judgements[-1]
    cleanup_start, cleanup_end = min(map(start, cleanup)), max(map(end, cleanup))
    fired = data.get("automation_triggered")
    if fired:
        automation = {
            "received → automation fired (triggers service)": fired - ev["received"],
            "fired → release run created (actions service)": rel["created"] - fired,
        }
    else:
        automation = {
            "received → release run created (automation)": rel["created"] - ev["received"]
        }
    # The setup before the first deploy, split where the flow's task names allow it.
    lock, reconcile = _starts(tasks, "ensure-release-lock-"), _starts(tasks, "reconcile-")
    if lock and reconcile and start(lock[0]) < start(reconcile[0]) < start(deploys[0]):
        setup = {
            "Running → lock task (spec, load blocks: imports + API)":
                start(lock[0]) - rel["running"],
            "release lock (create limit, acquire the slot)": start(reconcile[0]) - start(lock[0]),
            "reconcile + read production image": start(deploys[0]) - start(reconcile[0]),
        }  # fmt: skip
    else:
        setup = {"Running → first deploy (spec, blocks, lock, reconcile)":
                 start(deploys[0]) - rel["running"]}  # fmt: skip
    segments = {
        "event → received by the server": ev["received"] - ev["occurred"],
        **automation,
        "created → Pending (worker poll)": rel["pending"] - rel["created"],
        "Pending → Running (flow-run process start, imports)": rel["running"] - rel["pending"],
        **setup,
        "deploy + ready (baseline, canary)": analysis_start - start(deploys[0]),
        "last judgement past its window (fetch+judge+artifact)": last["total"],
        "promote": (end(promote[0]) - start(promote[0])) if promote else 0.0,
        "promote → cleanup (progress 100 %)": cleanup_start - (end(promote[0]) if promote
                                                              else windows_end + last["total"]),
        "cleanup (traffic back, tracks removed, routes)": cleanup_end - cleanup_start,
        "finish (report, event, final state)": rel["end"] - cleanup_end,
    }  # fmt: skip
    wall = rel["end"] - ev["occurred"]
    overhead = wall - analysis
    return {
        "analysis_s": analysis, "wall_from_event_s": wall, "overhead_s": overhead,
        "overhead_ratio": overhead / analysis, "segments_s": segments,
        "segments_sum_s": sum(segments.values()) + analysis,
        "judgements": judgements,
        "set_traffic_s": [end(t) - start(t) for t in traffic],
        "push_to_release_end_s": rel["end"] - data["pushed"],
        "push_to_build_succeeded_s": ev["occurred"] - data["pushed"],
        "outcome": data["outcome"], "commit": data["commit"],
    }  # fmt: skip


def summarize_pushes(samples: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    keys = ("relay_202", "created", "pending", "running", "completed")
    out = {k: {"p50": percentile([s[k] for s in samples], 50),
               "p95": percentile([s[k] for s in samples], 95),
               "max": max(s[k] for s in samples)} for k in keys}  # fmt: skip
    gaps = [s["running"] - s["created"] for s in samples]
    out["created→running"] = {"p50": percentile(gaps, 50), "p95": percentile(gaps, 95),
                              "max": max(gaps)}  # fmt: skip
    return out


def print_report(result: dict[str, Any]) -> None:
    p = result["pushes"]
    print(
        f"\nPipeline latency ({result['pushes_n']} pushes; worker env: {result['worker_env']}; "
        f"engine command: {result.get('engine_command') or 'default (supervisor + engine)'}; "
        f"1-min load {result['loadavg_1min_at_start']:.1f} → "
        f"{result.get('loadavg_1min_at_end', float('nan')):.1f} on {os.cpu_count()} cores)"
    )
    print(f"{'webhook POST →':<44}{'p50':>9}{'p95':>9}{'max':>9}")
    labels = {"relay_202": "relay 202 (client)", "created": "build run created",
              "pending": "build run Pending (worker picked it up)",
              "running": "build run Running", "created→running": "  (created → Running)",
              "completed": "build run Completed"}  # fmt: skip
    for key, label in labels.items():
        row = p[key]
        print(f"{label:<44}{row['p50']:>8.2f}s{row['p95']:>8.2f}s{row['max']:>8.2f}s")
    r = result.get("release")
    if not r:
        return
    print(f"\nOne full local release ({r['outcome']}), measured side by side in one run")
    for label, value in r["segments_s"].items():
        print(f"  {label:<58}{value:>8.2f} s")
    print(f"  {'= overhead beyond the analysis':<58}{r['overhead_s']:>8.2f} s")
    print(f"  {'analysis (begin_after + the looks made)':<58}{r['analysis_s']:>8.2f} s")
    wall = r["wall_from_event_s"]
    print(f"  {'wall: build.succeeded event → release run end':<58}{wall:>8.2f} s")
    print(f"  overhead / analysis = {r['overhead_ratio']:.2f}")
    print("  per judgement (s): " + "; ".join(
        f"#{j['index']} {j['total']:.2f} (wait tail {j['wait_tail']:.2f}, fetch {j['fetch']:.2f}"
        f", judge {j['judge']:.2f}, artifact {j['publish']:.2f})" for j in r["judgements"]))  # fmt: skip
    shifts = ", ".join(f"{v:.2f}" for v in r["set_traffic_s"])
    print(f"  set-traffic (inside the waits): {shifts} s")
    print(f"  push → build.succeeded {r['push_to_build_succeeded_s']:.2f} s; "
          f"push → release end {r['push_to_release_end_s']:.2f} s")  # fmt: skip


class TunedChain(Chain):
    """The demo chain with extra environment (e.g. worker polling) for every process."""

    def __init__(self, config: ChainConfig, extra_env: dict[str, str], **kw: Any) -> None:
        super().__init__(config, **kw)
        self.extra_env = extra_env

    def client_env(self) -> dict[str, str]:
        return {**super().client_env(), **self.extra_env}


def start_load(config: ChainConfig, seconds: float, log: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "examples.goldengoose.load", "--url",
            f"http://127.0.0.1:{config.app_port}/", "--rate", str(LOAD_RATE),
            "--duration", str(seconds), "--deadline", str(seconds + 10)]  # fmt: skip
    with open(log, "ab") as out:
        return subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip


def stop_load(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def private_chain(prefix: str, extra: dict[str, str]) -> tuple[TunedChain, Bench, ChainConfig, Path]:
    """A chain of our own (free ports, never the demo's, a temporary home) and a bench on
    a fresh goldengoose repository; nothing is started yet."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    ports = procs.free_ports(6, exclude=DEMO_PORTS)
    secret = secrets.token_hex(16)
    config = ChainConfig(home=home, prefect_port=ports[0], relay_port=ports[1], app=APP,
                         app_port=ports[2], stats_port=ports[3], prometheus_port=ports[4],
                         webhook_secret=secret)  # fmt: skip
    chain = TunedChain(config, extra, say=lambda line: say(f"chain: {line}"))
    repo = home / APP
    shutil.copytree(ROOT / "examples" / APP, repo,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))  # fmt: skip
    git(repo, "init", "-q", "-b", "main")
    return chain, Bench(chain, repo, secret), config, home


def run(args: argparse.Namespace) -> dict[str, Any]:
    for binary in ("prometheus", "haproxy", "git"):
        if shutil.which(binary) is None and not Path(f"/usr/sbin/{binary}").exists():
            raise SystemExit(f"{binary} is missing: run `make setup`")
    extra = dict(kv.split("=", 1) for kv in args.set)
    spec = ReleaseSpec.load(ROOT / "deployments" / "releases" / f"{APP}.yaml")
    chain, bench, config, home = private_chain("pipeline-latency-", extra)
    repo = bench.repo
    load = None
    ok = False
    load_at_start = os.getloadavg()[0]
    try:
        t0 = time.monotonic()
        chain.start()
        say(f"chain up in {time.monotonic() - t0:.1f} s (home {home})")
        paused = bench.api.pause_scheduled(keep={"build", "canary-release"})
        if paused:
            say(f"paused scheduled deployments for the bench: {', '.join(paused)}")
        if args.engine_command:
            command = args.engine_command.replace("{python}", sys.executable)
            bench.api.set_job_variables({"build", "canary-release"}, {"command": command})
            say(f"job variable command={command!r} on build and canary-release")
        v1 = bench.commit("1.0.0")
        env = chain.client_env()
        subprocess.run([sys.executable, "scripts/bootstrap_production.py", "--repo", str(repo),
                        "--commit", v1], cwd=ROOT, env=env, check=True, capture_output=True,
                       timeout=120)  # fmt: skip
        bench.head = v1
        budget = args.pushes * 60 + spec.analysis.lifetime.total_seconds() + 600
        load = start_load(config, budget, home / "logs" / "load.log")
        say("production v1 up under steady load")
        bench.api.set_automation(RELEASE_AUTOMATION, enabled=False)
        say(f"automation {RELEASE_AUTOMATION} disabled for the push latency part")
        samples = bench.push_latency(args.pushes)
        if bench.api.call("POST", "/flow_runs/filter",
                          {"deployments": {"name": {"any_": ["canary-release"]}}}):  # fmt: skip
            raise RuntimeError("a canary-release run started although its automation was off")
        result: dict[str, Any] = {
            "loadavg_1min_at_start": load_at_start, "engine_command": args.engine_command,
            "pushes_n": args.pushes, "worker_env": {
                "PREFECT_WORKER_QUERY_SECONDS": env.get("PREFECT_WORKER_QUERY_SECONDS"),
                "PREFECT_WORKER_PREFETCH_SECONDS": env.get("PREFECT_WORKER_PREFETCH_SECONDS"),
                **extra},
            "push_samples": samples, "pushes": summarize_pushes(samples),
        }  # fmt: skip
        if not args.no_release:
            bench.api.set_automation(RELEASE_AUTOMATION, enabled=True)
            time.sleep(1.0)  # let the triggers service load the re-enabled automation
            say(f"automation {RELEASE_AUTOMATION} enabled again: one full release")
            raw = bench.release(spec)
            result["release"] = split_release(raw, spec)
            result["release_raw"] = raw
        result["loadavg_1min_at_end"] = os.getloadavg()[0]
        ok = True
        return result
    finally:
        stop_load(load)
        if args.keep:
            say(f"chain left up (--keep): stop it with `{sys.executable} {__file__} --stop {home}`")
        else:
            say(f"stopped: {', '.join(chain.stop())}")
            if ok:
                shutil.rmtree(home, ignore_errors=True)
            else:
                say(f"logs kept in {home / 'logs'}")


def stop_kept(home: Path) -> None:
    chain = Chain(ChainConfig(home=home), say=say)
    say(f"stopped: {', '.join(chain.stop())}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pushes", type=int, default=8, help="pushes for part 1 (default 8)")
    parser.add_argument("--keep", action="store_true", help="leave the chain up at the end")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--no-release", action="store_true", help="skip part 2 (the release)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment for every chain process (repeatable), e.g. "
                             "PREFECT_WORKER_QUERY_SECONDS=0.5")  # fmt: skip
    parser.add_argument("--engine-command", metavar="CMD",
                        help="experiment: set the job variable `command` of build and "
                             "canary-release (e.g. '{python} -m prefect.engine': one process "
                             "per flow run instead of supervisor + engine)")  # fmt: skip
    parser.add_argument("--stop", type=Path, metavar="HOME",
                        help="stop a chain left up by --keep, then exit")  # fmt: skip
    args = parser.parse_args(argv)
    if args.stop is not None:
        stop_kept(args.stop)
        return 0
    if args.pushes < 1:
        parser.error("--pushes must be at least 1")
    if any("=" not in kv for kv in args.set):
        parser.error("--set takes KEY=VALUE")
    os.environ.pop("PREFECT_API_URL", None)  # the chain sets its own for every process
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print_report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
