"""Concurrent releases: N apps released at once on one chain, against one app released alone.

    .venv/bin/python bench/concurrent_releases.py [--apps 20] [--db sqlite|postgres|both]
        [--rate 10] [--lifetime 30] [--interval 10] [--begin-after 10] [--json] [--keep-logs]

For each database (`both`: SQLite, then PostgreSQL, one chain after the other, never two at
once) it starts ONE chain (demo.chain: one Prefect server, one process worker, one relay,
one local stack of HAProxy + Prometheus + supervisor) on free ports in a temporary home,
with N apps `gg01`...`ggNN`. Each app is a copy of examples/goldengoose in a git repository
of its own, named like the app (canary.release.app_name_for_repository maps the repository
name onto the app name unchanged), with its own HAProxy frontend port, backends,
Prometheus targets and production (LocalPlatform.apps, scripts/bootstrap_production.py
--app). Its `canary.yaml` (the local app spec) hands the copy its track and version as
GOLDENGOOSE_TRACK/_VERSION (the platform names them <APP>_TRACK, GG01_TRACK). Each commit
carries its release config in `.canary/`: a short analysis (default
begin_after 10 s + lifetime 30 s, a look every 10 s, min_analysis = the whole analysis, so
no release is promoted early and every release analyses for exactly the configured time)
and the goldengoose canary config with every selector narrowed to `app="<app>"`: the apps
export the same metric names, and the shipped config, which selects by track only, would
judge every app's canary on all canaries' requests.

Steady load (a child process, `--rate` requests/s on every app, fixed schedule, bounded in
time) runs the whole time. Then, measured in the same run:

1. alone: one app (gg01) gets a signed push (through the relay, signed as
   scripts/send_github_push.py signs, by its own functions); the bench waits for its
   decision;
2. all at once: every app gets a signed push (N threads, released together).

Per release: push (client clock, just before the POST) → decision (the `occurred` of the
canary.release.promoted / rolled-back event; the run's end if no event is found), the
outcome (every commit is good: each must be promoted, else the exit status is 1), and
overhead = push → decision − the configured analysis. Also: the RSS of every flow-run
process (the `prefect.engine` process the worker starts, found by PREFECT__FLOW_RUN_ID in
its environment; not the app processes it starts), of the worker and of the server (its
process tree; and PostgreSQL's), sampled from /proc every second; the CPU time of the
server (tree), the worker (itself) and the flow runs (the worker's reaped children) from
/proc/<pid>/stat at each phase's ends; and the Prefect API's latency, timed by a probe
thread that POSTs /api/flow_runs/filter (limit 1) every 0.5 s over a kept-alive connection.

Targets (printed PASS/FAIL): the slowest concurrent release's overhead <= 2x the alone
release's; max / median push → decision <= 1.5. Scheduled deployments (the */10 cron
re-analysis, which would fan out over every app) are paused in the private chain.

Everything it started (load, chain, flow-run processes of its worker, PostgreSQL) is stopped
in a finally, Ctrl-C included; the home is deleted after a clean run, kept (with its logs)
after a failure or with --keep-logs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable as a plain script

from bench.pipeline_latency import DEMO_PORTS, Api, git, percentile, timed_push, ts  # noqa: E402
from canary.platforms.local import procs  # noqa: E402
from demo.chain import Chain, ChainConfig  # noqa: E402

FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
PROMOTED, ROLLED_BACK = "promoted", "rolled-back"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024
#: the overhead of a release (push → decision − analysis), in the order it is spent
SEGMENTS = (
    "push → build Running (relay, automation, worker poll, process start)",
    "build Running → end (checkout, .canary/ checks, event)",
    "build end → release Running (automation, worker poll, process start)",
    "release Running → first deploy (spec, blocks, lock, reconcile)",
    "deploy + ready (baseline, canary)",
    "past the analysis (wait for metrics, last look, promote, cleanup)",
)
LOAD_SEGMENT_S = 10.0  # the load child reports per segment: a SIGTERM loses at most one


def say(line: str) -> None:
    print(f"[bench] {line}", file=sys.stderr, flush=True)


# -- the apps --------------------------------------------------------------------------------
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
    app: str
    commit: str
    sent: float = 0.0
    accepted: float = 0.0


def push(relay_url: str, secret: str, app: App, sha: str) -> Push:
    """One signed push delivery to the relay, timed (bench.pipeline_latency.timed_push)."""
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


# -- /proc -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Stat:
    ppid: int
    self_ticks: int  # utime + stime
    child_ticks: int  # cutime + cstime: reaped children
    start: int
    rss: int  # bytes


def read_stats() -> dict[int, Stat]:
    out = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        f = raw[raw.rindex(")") + 2 :].split()
        out[int(entry.name)] = Stat(int(f[1]), int(f[11]) + int(f[12]), int(f[13]) + int(f[14]),
                                    int(f[19]), int(f[21]) * PAGE)  # fmt: skip
    return out


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine, all cores (/proc/stat)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values) - idle, sum(values)


def tree(stats: dict[int, Stat], root: int | None) -> list[int]:
    """`root` and its live descendants."""
    if root is None or root not in stats:
        return []
    children: dict[int, list[int]] = {}
    for pid, st in stats.items():
        children.setdefault(st.ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def tree_ticks(stats: dict[int, Stat], root: int | None) -> int:
    """CPU ticks of a process tree: every live member's own and reaped children's."""
    return sum(stats[p].self_ticks + stats[p].child_ticks for p in tree(stats, root))


def flow_run_id(pid: int) -> str | None:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    for item in env.split(b"\0"):
        if item.startswith(b"PREFECT__FLOW_RUN_ID="):
            return item.split(b"=", 1)[1].decode()
    return None


@dataclass
class FlowProc:
    run_id: str
    pid: int
    start: int
    argv: tuple[str, ...]
    peak_rss: int = 0
    ticks: int = 0  # last sampled utime + stime (a lower bound: up to one interval missed)
    first_seen: float = 0.0
    last_seen: float = 0.0


class Sampler:
    """Every `every` s: RSS of each flow-run process, the worker, the server's and
    PostgreSQL's trees; the sum of all flow-run RSS at once."""

    def __init__(self, worker: int, server: int, postgres: Callable[[], int | None],
                 every: float = 1.0) -> None:  # fmt: skip
        self.worker, self.server, self.postgres = worker, server, postgres
        self.every = every
        self.flows: dict[tuple[int, int], FlowProc] = {}
        self._env: dict[tuple[int, int], str | None] = {}
        self.samples: list[dict[str, float]] = []  # t, worker, server, postgres, flows (bytes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.errors = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sample()
            except Exception:  # noqa: BLE001 (a vanished pid mid-read; counted, not fatal)
                self.errors += 1
            self._stop.wait(self.every)

    def sample(self) -> None:
        now = time.time()
        stats = read_stats()
        flows_rss = 0
        worker_tree = tree(stats, self.worker)
        for pid in worker_tree[1:]:
            st = stats[pid]
            key = (pid, st.start)
            if key not in self._env:
                self._env[key] = flow_run_id(pid)
            run = self._env[key]
            parent = stats.get(st.ppid)
            if run is None or (parent and self._env.get((st.ppid, parent.start)) == run):
                continue  # not a flow run, or a helper (git, a shell) under its flow run
            proc = self.flows.get(key)
            if proc is None:
                argv = procs._cmdline(pid) or ()  # noqa: SLF001 (the one /proc reader)
                proc = self.flows[key] = FlowProc(run, pid, st.start, argv, first_seen=now)
            proc.peak_rss = max(proc.peak_rss, st.rss)
            proc.ticks, proc.last_seen = st.self_ticks, now
            flows_rss += st.rss
        pg = self.postgres()
        busy, total = machine_ticks()
        self.samples.append({
            "t": now, "flows": flows_rss, "busy": busy, "total": total,
            "worker": stats[self.worker].rss if self.worker in stats else 0,
            "server": sum(stats[p].rss for p in tree(stats, self.server)),
            "postgres": sum(stats[p].rss for p in tree(stats, pg)) if pg else 0,
        })  # fmt: skip

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far: server tree, worker itself, flow runs the worker reaped,
        PostgreSQL's tree (its postmaster reaps the backends)."""
        stats = read_stats()
        worker = stats.get(self.worker)
        return {"t": time.time(), "server": tree_ticks(stats, self.server) / CLK_TCK,
                "worker": (worker.self_ticks if worker else 0) / CLK_TCK,
                "flow_runs": (worker.child_ticks if worker else 0) / CLK_TCK,
                "postgres": tree_ticks(stats, self.postgres()) / CLK_TCK}  # fmt: skip

    def peaks(self, t0: float, t1: float) -> dict[str, float]:
        inside = [s for s in self.samples if t0 <= s["t"] <= t1] or [{"flows": 0, "worker": 0,
                                                                       "server": 0, "postgres": 0}]  # fmt: skip
        return {k: max(s[k] for s in inside) / MIB for k in ("flows", "worker", "server", "postgres")}

    def machine_busy(self, t0: float, t1: float) -> float | None:
        """The share of all cores busy between the first sample after t0 and the last
        before t1 (other sessions' processes included)."""
        inside = [s for s in self.samples if t0 <= s["t"] <= t1]
        if len(inside) < 2 or inside[-1]["total"] == inside[0]["total"]:
            return None
        return (inside[-1]["busy"] - inside[0]["busy"]) / (inside[-1]["total"] - inside[0]["total"])

    def wait_reaped(self, releases: list[Release], timeout: float = 30.0) -> None:
        """Until the flow-run processes of `releases` are reaped by the worker (only then is
        their CPU time in its cutime), or `timeout`."""
        ids = {run["id"] for rel in releases for run in (rel.build, rel.run) if run}
        pids = [p.pid for p in self.flows.values() if p.run_id in ids]
        deadline = time.monotonic() + timeout
        while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.2)

    def leftovers(self) -> list[procs.ProcessRecord]:
        """Flow-run processes of our worker that still run (to stop on the way out)."""
        return [rec for p in self.flows.values()
                if procs.is_ours(rec := procs.ProcessRecord(p.pid, p.start, p.argv))]  # fmt: skip


class Probe:
    """POST /api/flow_runs/filter {"limit": 1} every `every` s on a kept-alive connection;
    (start epoch, seconds or None on an error/timeout) per call."""

    def __init__(self, api_url: str, every: float = 0.5, timeout: float = 10.0) -> None:
        host_port = api_url.split("//", 1)[1].split("/", 1)[0]
        self.host, _, port = host_port.partition(":")
        self.port, self.every, self.timeout = int(port), every, timeout
        self.calls: list[tuple[float, float | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.timeout + 5)

    def _loop(self) -> None:
        conn: http.client.HTTPConnection | None = None
        body = json.dumps({"limit": 1}).encode()
        while not self._stop.is_set():
            began, t0 = time.time(), time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                conn.request("POST", "/api/flow_runs/filter", body=body,
                             headers={"content-type": "application/json"})  # fmt: skip
                answer = conn.getresponse()
                answer.read()
                ok = 200 <= answer.status < 300
                self.calls.append((began, time.perf_counter() - t0 if ok else None))
            except (OSError, http.client.HTTPException):
                self.calls.append((began, None))
                if conn is not None:
                    conn.close()
                conn = None
            self._stop.wait(max(0.0, self.every - (time.perf_counter() - t0)))
        if conn is not None:
            conn.close()

    def stats(self, t0: float, t1: float) -> dict[str, float]:
        inside = [s for t, s in self.calls if t0 <= t <= t1]
        good = [s for s in inside if s is not None]
        return {"n": len(inside), "errors": len(inside) - len(good),
                "p50_ms": percentile(good, 50) * 1e3, "p95_ms": percentile(good, 95) * 1e3,
                "max_ms": max(good) * 1e3 if good else float("nan")}  # fmt: skip


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
    urls = ",".join(f"http://127.0.0.1:{a.port}/" for a in apps)
    argv = [sys.executable, __file__, "--load-child", urls, "--rate", str(rate),
            "--load-seconds", str(seconds), "--load-out", str(home / "load.jsonl")]  # fmt: skip
    with open(home / "logs" / "load.log", "ab") as log:
        return subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip


def stop_load(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def load_summary(path: Path) -> dict[str, Any]:
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    sent = sum(r["sent"] for r in rows)
    planned = sum(r["planned"] for r in rows)
    non2xx = sum(sum(r["errors"].values()) for r in rows)
    transport = sum(sum(r["transport_errors"].values()) for r in rows)
    return {"segments": len(rows), "planned": planned, "sent": sent,
            "ok": sum(r["ok"] for r in rows), "non_2xx": non2xx, "transport_errors": transport,
            "max_send_lag_ms": max((r["max_send_lag_ms"] for r in rows), default=float("nan")),
            "p99_ms_worst": max((r["latency_ms"]["p99"] or 0 for r in rows), default=float("nan"))}  # fmt: skip


# -- one run ---------------------------------------------------------------------------------
@dataclass
class Release:
    app: str
    commit: str
    pushed: float
    build: dict[str, Any] | None = None
    run: dict[str, Any] | None = None
    event: dict[str, Any] | None = None
    outcome: str = "undecided"
    decided: float | None = None  # epoch of the decision
    decided_by: str = ""
    flow_rss_mib: dict[str, float] = field(default_factory=dict)  # deployment -> peak
    first_deploy: float | None = None  # start of the release's first deploy task
    ready: float | None = None  # end of its last wait-ready task: the analysis starts

    def segments(self, analysis: float) -> dict[str, float | None]:
        """push → decision − analysis, split at the runs' states and the release's tasks
        (None where a boundary is missing); the parts add up to the overhead."""
        marks = [self.pushed, ts((self.build or {}).get("start_time")),
                 ts((self.build or {}).get("end_time")), ts((self.run or {}).get("start_time")),
                 self.first_deploy, self.ready]  # fmt: skip
        parts: dict[str, float | None] = {}
        for name, a, b in zip(SEGMENTS[:-1], marks, marks[1:], strict=False):
            parts[name] = b - a if a is not None and b is not None else None
        last = (self.decided - self.ready - analysis
                if self.decided is not None and self.ready is not None else None)  # fmt: skip
        parts[SEGMENTS[-1]] = last
        return parts

    def to_json(self, analysis: float) -> dict[str, Any]:
        def since_push(epoch: float | None) -> float | None:
            return None if epoch is None else epoch - self.pushed

        decision = since_push(self.decided)
        return {
            "app": self.app, "commit": self.commit, "outcome": self.outcome,
            "decided_by": self.decided_by, "push_to_decision_s": decision,
            "overhead_s": None if decision is None else decision - analysis,
            "push_to_build_end_s": since_push(ts((self.build or {}).get("end_time"))),
            "push_to_release_running_s": since_push(ts((self.run or {}).get("start_time"))),
            "release_state": (self.run or {}).get("state_name"),
            "looks": (self.event or {}).get("payload", {}).get("judgements"),
            "reason": (self.event or {}).get("payload", {}).get("reason")
                      or ((self.run or {}).get("state") or {}).get("message"),
            "flow_rss_peak_mib": self.flow_rss_mib,
            "segments_s": self.segments(analysis),
        }  # fmt: skip


class Bench:
    def __init__(self, chain: Chain, apps: list[App], secret: str, analysis: float) -> None:
        self.chain, self.apps, self.secret, self.analysis = chain, apps, secret, analysis
        self.api = Api(chain.config.api_url)
        self._names: dict[str, str] = {}

    def runs(self) -> dict[tuple[str, str], dict[str, Any]]:
        """(deployment, commit) -> the newest flow run of build / canary-release."""
        body = {"deployments": {"name": {"any_": ["build", "canary-release"]}},
                "sort": "EXPECTED_START_TIME_DESC", "limit": 200}  # fmt: skip
        found: dict[tuple[str, str], dict[str, Any]] = {}
        deployments = self._deployment_names()
        for run in self.api.call("POST", "/flow_runs/filter", body, timeout=20):
            key = (deployments.get(run["deployment_id"], "?"), run["parameters"].get("commit", ""))
            found.setdefault(key, run)
        return found

    def _deployment_names(self) -> dict[str, str]:
        if not self._names:
            deps = self.api.call("POST", "/deployments/filter", {"limit": 200})
            self._names = {d["id"]: d["name"] for d in deps}
        return self._names

    def decision_event(self, app: str, commit: str) -> dict[str, Any] | None:
        body = {"filter": {"event": {"prefix": ["canary.release."]},
                           "any_resource": {"id": [f"canary.app.{app}"]}}, "limit": 50}  # fmt: skip
        events = self.api.call("POST", "/events/filter", body, timeout=20)["events"]
        return next((e for e in events if e["payload"].get("commit") == commit), None)

    def _task_marks(self, rel: Release) -> None:
        """When the release's first deploy began and its last wait-ready ended."""
        assert rel.run is not None
        body = {"flow_runs": {"id": {"any_": [rel.run["id"]]}}, "limit": 200}
        tasks = self.api.call("POST", "/task_runs/filter", body, timeout=20)
        deploys = [ts(t["start_time"]) for t in tasks
                   if t["name"].startswith("deploy-") and t.get("start_time")]  # fmt: skip
        readies = [ts(t["end_time"]) for t in tasks
                   if t["name"].startswith("wait-ready-") and t.get("end_time")]  # fmt: skip
        rel.first_deploy = min((d for d in deploys if d), default=None)
        rel.ready = max((r for r in readies if r), default=None) if len(readies) >= 2 else None

    def follow(self, pushes: list[Push], timeout: float) -> list[Release]:
        """Wait until every push's release (or its build) is final; then its event."""
        releases = {p.app: Release(p.app, p.commit, p.sent) for p in pushes}
        deadline = time.monotonic() + timeout
        pending = set(releases)
        last_note = 0.0
        while pending and time.monotonic() < deadline:
            try:
                runs = self.runs()
            except (OSError, ValueError) as exc:  # a busy server may drop one poll
                say(f"  (poll failed: {exc!r}; retrying)")
                time.sleep(2)
                continue
            for app in list(pending):
                rel = releases[app]
                rel.build = runs.get(("build", rel.commit))
                rel.run = runs.get(("canary-release", rel.commit))
                build_bad = rel.build and rel.build["state_type"] in FINAL and (
                    rel.build["state_type"] != "COMPLETED")  # fmt: skip
                if build_bad or (rel.run and rel.run["state_type"] in FINAL):
                    pending.discard(app)
            if time.monotonic() - last_note > 15:
                last_note = time.monotonic()
                say(f"  {len(releases) - len(pending)}/{len(releases)} final")
            if pending:
                time.sleep(2)
        for rel in releases.values():
            self._conclude(rel)
        return list(releases.values())

    def _conclude(self, rel: Release) -> None:
        run, build = rel.run, rel.build
        if run is None or run["state_type"] not in FINAL:
            if build and build["state_type"] in FINAL and build["state_type"] != "COMPLETED":
                rel.outcome = f"build {build['state_name']}"
                rel.decided, rel.decided_by = ts(build.get("end_time")), "build final state"
            return
        wait_until = time.monotonic() + 30  # events are persisted in batches, ~5 s late
        while rel.event is None and time.monotonic() < wait_until:
            with contextlib.suppress(OSError, ValueError):
                rel.event = self.decision_event(rel.app, rel.commit)
            if rel.event is None:
                time.sleep(1)
        with contextlib.suppress(OSError, ValueError):
            self._task_marks(rel)
        if rel.event is not None:
            rel.outcome = rel.event["event"].removeprefix("canary.release.")
            rel.decided, rel.decided_by = ts(rel.event["occurred"]), "event"
        else:
            rel.outcome = f"{run['state_name']} (no event)"
            rel.decided, rel.decided_by = ts(run.get("end_time")), "run final state"


def phase_numbers(releases: list[Release], analysis: float) -> dict[str, Any]:
    rows = [r.to_json(analysis) for r in releases]
    times = [r["push_to_decision_s"] for r in rows if r["push_to_decision_s"] is not None]
    rss = [r["flow_rss_peak_mib"].get("canary-release") for r in rows]
    builds = [r["flow_rss_peak_mib"].get("build") for r in rows]
    return {
        "releases": rows, "n": len(rows),
        "correct": sum(r["outcome"] == PROMOTED for r in rows),
        "decided": len(times),
        "decision_median_s": statistics.median(times) if times else None,
        "decision_max_s": max(times) if times else None,
        "overhead_median_s": statistics.median(times) - analysis if times else None,
        "overhead_max_s": max(times) - analysis if times else None,
        "release_rss_mib": [x for x in rss if x],
        "build_rss_mib": [x for x in builds if x],
    }  # fmt: skip


def run_one(n: int, db: str, args: argparse.Namespace) -> dict[str, Any]:
    """One chain with `n` apps on database `db`: the alone release, then all at once."""
    import secrets

    analysis = args.begin_after + args.lifetime
    home = Path(tempfile.mkdtemp(prefix=f"concurrent-releases-{db}-{n}-"))
    (home / "logs").mkdir()
    width = max(2, len(str(n)))
    names = [f"gg{i:0{width}d}" for i in range(1, n + 1)]
    ports = procs.free_ports(5 + n, exclude=DEMO_PORTS)
    prefect_port, relay_port, stats_port, prometheus_port, db_port = ports[:5]
    apps = [App(name, port, home / "repos" / name) for name, port in zip(names, ports[5:], strict=False)]
    secret = secrets.token_hex(16)
    config = ChainConfig(home=home, prefect_port=prefect_port, relay_port=relay_port,
                         app=apps[0].name, app_port=apps[0].port,
                         extra_apps={a.name: a.port for a in apps[1:]}, stats_port=stats_port,
                         prometheus_port=prometheus_port, webhook_secret=secret, db=db,
                         db_port=db_port)  # fmt: skip
    chain = Chain(config, say=lambda line: say(f"  chain: {line}"))
    result: dict[str, Any] = {"n": n, "db": db, "home": str(home), "analysis_s": analysis,
                              "loadavg_start": os.getloadavg()[0]}  # fmt: skip
    load = sampler = probe = None
    ok = False
    try:
        for app in apps:
            app.create(args)
        check_app_config(apps)
        v1 = {a.name: a.commit("1.0.0") for a in apps}
        t0 = time.monotonic()
        say(f"[{db}, N={n}] starting the chain in {home}")
        chain.start()
        result["chain_start_s"] = time.monotonic() - t0
        bench = Bench(chain, apps, secret, analysis)
        paused = bench.api.pause_scheduled(keep={"build", "canary-release"})
        say(f"  chain up in {result['chain_start_s']:.1f} s; paused for the bench: "
            f"{', '.join(paused) or 'nothing'}")  # fmt: skip
        server, worker = chain.record("prefect-server"), chain.record("worker")
        if server is None or worker is None:
            raise RuntimeError("the chain's server or worker is not running")

        def pg_pid() -> int | None:  # the postmaster, from the cluster's own pid file
            if db != "postgres":
                return None
            with contextlib.suppress(OSError, ValueError, IndexError):
                return int((chain.postgres().data_dir / "postmaster.pid").read_text().split()[0])
            return None

        sampler = Sampler(worker.pid, server.pid, pg_pid)
        probe = Probe(config.api_url)
        sampler.start()
        probe.start()

        t0 = time.monotonic()
        env = chain.client_env()
        for app in apps:
            subprocess.run([sys.executable, "scripts/bootstrap_production.py", "--repo",
                            str(app.repo), "--commit", v1[app.name], "--app", app.name], cwd=ROOT,
                           env=env, check=True, capture_output=True, timeout=180)  # fmt: skip
            app.head = v1[app.name]
        result["bootstrap_s"] = time.monotonic() - t0
        say(f"  production v1.0.0 of {n} app(s) in {result['bootstrap_s']:.1f} s")

        alone_budget = analysis + 300
        all_budget = analysis + 300 + 15 * n
        load_seconds = 30 + alone_budget + all_budget + 120
        load = start_load(apps, args.rate, load_seconds, home)
        say(f"  steady load: {args.rate:g} req/s on each of {n} app(s) (bounded: "
            f"{load_seconds:.0f} s)")  # fmt: skip
        time.sleep(args.warmup)
        phases: dict[str, dict[str, Any]] = {}
        idle0 = time.time()
        cpu0 = sampler.cpu()
        time.sleep(10)
        phases["idle"] = {"t0": idle0, "t1": time.time(), "cpu0": cpu0, "cpu1": sampler.cpu()}

        # 1. alone
        first = apps[0]
        sha = first.commit("2.0.0")
        say(f"  alone: push {first.name} 2.0.0 ({sha[:7]}); analysis {analysis:g} s")
        cpu0 = sampler.cpu()
        p = push(config.relay_url, secret, first, sha)
        alone = bench.follow([p], alone_budget)
        sampler.wait_reaped(alone)
        phases["alone"] = {"t0": p.sent, "t1": time.time(), "cpu0": cpu0, "cpu1": sampler.cpu()}
        say(f"  alone: {alone[0].outcome} in "
            f"{(alone[0].decided or float('nan')) - p.sent:.1f} s")  # fmt: skip

        # 2. all at once
        targets = [(a, a.commit("3.0.0" if a is first else "2.0.0")) for a in apps]
        time.sleep(5)  # let the alone release's report/event writes settle
        say(f"  all at once: {n} pushes")
        cpu0 = sampler.cpu()
        pushes = push_all(config.relay_url, secret, targets)
        together = bench.follow(pushes, all_budget)
        sampler.wait_reaped(together)
        phases["together"] = {"t0": min(p.sent for p in pushes), "t1": time.time(),
                              "cpu0": cpu0, "cpu1": sampler.cpu()}  # fmt: skip
        decided = sum(r.outcome == PROMOTED for r in together)
        say(f"  all at once: {decided}/{n} promoted")
        sampler.stop()
        probe.stop()
        stop_load(load)
        result["load"] = load_summary(home / "load.jsonl")

        # memory per flow run, by deployment
        run_ids = {}
        for rel in alone + together:
            for kind, run in (("build", rel.build), ("canary-release", rel.run)):
                if run:
                    run_ids[run["id"]] = (rel, kind)
        for proc in sampler.flows.values():
            if proc.run_id in run_ids:
                rel, kind = run_ids[proc.run_id]
                rel.flow_rss_mib[kind] = max(rel.flow_rss_mib.get(kind, 0), proc.peak_rss / MIB)
        result["alone"] = phase_numbers(alone, analysis)
        result["together"] = phase_numbers(together, analysis)
        for name, ph in phases.items():
            wall = ph["cpu1"]["t"] - ph["cpu0"]["t"]
            cpu = {k: ph["cpu1"][k] - ph["cpu0"][k] for k in ("server", "worker", "flow_runs", "postgres")}
            result.setdefault(name, {}).update({
                "wall_s": wall, "cpu_s": cpu, "probe": probe.stats(ph["t0"], ph["t1"]),
                "rss_peak_mib": sampler.peaks(ph["t0"], ph["t1"]),
            })  # fmt: skip
        starts = [ts((r.run or {}).get("start_time")) for r in together]
        last_start = max((x for x in starts if x), default=None)
        result["machine_busy"] = {
            "idle": sampler.machine_busy(phases["idle"]["t0"], phases["idle"]["t1"]),
            "alone": sampler.machine_busy(phases["alone"]["t0"], phases["alone"]["t1"]),
            "together": sampler.machine_busy(phases["together"]["t0"], phases["together"]["t1"]),
            "together_starts": sampler.machine_busy(phases["together"]["t0"], last_start)
            if last_start else None,
        }  # fmt: skip
        result["sampler_errors"] = sampler.errors
        result["loadavg_end"] = os.getloadavg()[0]
        ok = True
        return result
    finally:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a 2nd Ctrl-C must not cut this
        try:
            for part in (sampler, probe):
                if part is not None:
                    part.stop()
            stop_load(load)
            if sampler is not None:  # one last look for flow runs of our worker
                with contextlib.suppress(Exception):
                    sampler.sample()
            with contextlib.suppress(Exception):  # the worker first: it starts no more runs
                say(f"  stopped: {', '.join(chain.stop())}")
            for rec in sampler.leftovers() if sampler is not None else []:
                with contextlib.suppress(Exception):
                    procs.stop(rec, timeout=10)
                    say(f"  stopped a flow-run process that outlived the worker (pid {rec.pid})")
            if db == "postgres":
                with contextlib.suppress(Exception):
                    chain.postgres().remove()
            if ok and not args.keep_logs:
                shutil.rmtree(home, ignore_errors=True)
            else:
                say(f"  logs kept in {home / 'logs'}")
        finally:
            signal.signal(signal.SIGINT, previous)


# -- the table -------------------------------------------------------------------------------
def _s(x: float | None, unit: str = " s") -> str:
    return "-" if x is None or x != x else f"{x:.1f}{unit}"


def rows_for(r: dict[str, Any]) -> dict[str, str]:
    """Label -> cell of one run (one database)."""
    if "error" in r:
        return {"error": r["error"][:60]}
    a, t = r["alone"], r["together"]
    alone_time = a["decision_max_s"]
    alone_over = a["overhead_max_s"]
    over_ratio = (t["overhead_max_s"] / alone_over if alone_over and t["overhead_max_s"] is not None
                  else None)  # fmt: skip
    spread = (t["decision_max_s"] / t["decision_median_s"]
              if t["decision_median_s"] else None)  # fmt: skip

    def target(value: float | None, limit: float) -> str:
        if value is None:
            return "- FAIL (not measured)"
        return f"{value:.2f} {'PASS' if value <= limit else 'FAIL (missed)'}"

    def cpu(phase: dict[str, Any], key: str) -> str:
        secs = phase["cpu_s"][key]
        return f"{secs:.1f} s ({100 * secs / phase['wall_s']:.0f}%)"

    def rss(values: list[float]) -> str:
        return f"{statistics.median(values):.0f} / {max(values):.0f}" if values else "-"

    def probe(phase: dict[str, Any]) -> str:
        p = phase["probe"]
        err = f", {p['errors']} err" if p["errors"] else ""
        return f"{p['p50_ms']:.0f} / {p['p95_ms']:.0f} / {p['max_ms']:.0f}{err}"

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.0f}%"

    load, busy = r["load"], r["machine_busy"]
    pg = r["db"] == "postgres"
    cores = os.cpu_count() or 1
    spent = {k: sum(r[k]["cpu_s"].values()) for k in ("alone", "together")}
    return {
        "releases promoted (good commits) alone + all": f"{a['correct']}/{a['n']} + {t['correct']}/{t['n']}",
        "alone: push → decision": _s(alone_time),
        "alone: overhead (− analysis)": _s(alone_over),
        "all at once: push → decision median / max": f"{_s(t['decision_median_s'])} / {_s(t['decision_max_s'])}",
        "all at once: overhead median / slowest": f"{_s(t['overhead_median_s'])} / {_s(t['overhead_max_s'])}",
        "TARGET slowest overhead / alone <= 2": target(over_ratio, 2.0),
        "TARGET max / median push → decision <= 1.5": target(spread, 1.5),
        "release flow-run RSS peak med / max, MiB": rss(a["release_rss_mib"] + t["release_rss_mib"]),
        "build flow-run RSS peak med / max, MiB": rss(a["build_rss_mib"] + t["build_rss_mib"]),
        "all at once: flow runs' RSS summed, peak": _s(t["rss_peak_mib"]["flows"], " MiB"),
        "worker RSS peak (all at once)": _s(t["rss_peak_mib"]["worker"], " MiB"),
        "server RSS peak, process tree (all at once)": _s(t["rss_peak_mib"]["server"], " MiB"),
        "PostgreSQL RSS peak (all at once)": _s(t["rss_peak_mib"]["postgres"], " MiB") if pg else "-",
        "server CPU (tree), % of a core: idle 10 s": cpu(r["idle"], "server"),
        "server CPU (tree), % of a core: alone": cpu(r["alone"], "server"),
        "server CPU (tree), % of a core: all at once": cpu(r["together"], "server"),
        "worker CPU: alone": cpu(r["alone"], "worker"),
        "worker CPU: all at once": cpu(r["together"], "worker"),
        "PostgreSQL CPU: alone": cpu(r["alone"], "postgres") if pg else "-",
        "PostgreSQL CPU: all at once": cpu(r["together"], "postgres") if pg else "-",
        "flow runs' CPU (reaped): alone / all at once": " / ".join(f"{r[k]['cpu_s']['flow_runs']:.0f} s" for k in ("alone", "together")),
        "CPU per release, all parts: alone / all at once ÷ N": f"{spent['alone']:.1f} / {spent['together'] / t['n']:.1f} s",
        f"all at once: CPU of all parts ÷ {cores} cores / wall": f"{spent['together'] / cores:.0f} / {t['wall_s']:.0f} s",
        "machine CPU busy (all cores): idle / alone": f"{pct(busy['idle'])} / {pct(busy['alone'])}",
        "machine CPU busy: all at once / until last Running": f"{pct(busy['together'])} / {pct(busy['together_starts'])}",
        "API p50 / p95 / max ms, idle (load only)": probe(r["idle"]),
        "API p50 / p95 / max ms, alone": probe(r["alone"]),
        "API p50 / p95 / max ms, all at once": probe(r["together"]),
        "load: sent / planned, non-2xx, transport err": f"{load['sent']}/{load['planned']}, {load['non_2xx']}, {load['transport_errors']}",
        "load: worst send lag / worst p99": f"{load['max_send_lag_ms']:.0f} / {load['p99_ms_worst']:.0f} ms",
        "wall: chain start / bootstrap / all at once": f"{r['chain_start_s']:.0f} / {r['bootstrap_s']:.0f} / {r['together']['wall_s']:.0f} s",
        "1-min load average start → end": f"{r['loadavg_start']:.1f} → {r['loadavg_end']:.1f}",
    }  # fmt: skip


def render(n: int, results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    analysis = args.begin_after + args.lifetime
    looks = -(-args.lifetime // args.interval)
    head = (f"Concurrent releases, N = {n} app(s) on one chain (one server, one worker, one relay, "
            f"one local stack), {args.rate:g} req/s steady load on each; configured analysis "
            f"{analysis:g} s per release (begin_after {args.begin_after:g} s + lifetime "
            f"{args.lifetime:g} s, {looks:g} looks every {args.interval:g} s, no early "
            f"promotion); {os.cpu_count()} cores")  # fmt: skip
    cols = [rows_for(r) for r in results]
    labels = list(dict.fromkeys(k for c in cols for k in c))
    width = max(len(k) for k in labels) + 2
    colw = [max([len(v) for v in c.values()] + [len(r["db"])]) + 2 for c, r in zip(cols, results, strict=True)]
    lines = [head, "", (f"{'':<{width}}" + "".join(f"{r['db']:<{w}}" for r, w in zip(results, colw, strict=True))).rstrip()]
    for label in labels:
        cells = "".join(f"{c.get(label, '-'):<{w}}" for c, w in zip(cols, colw, strict=True))
        lines.append(f"{label:<{width}}{cells}".rstrip())
    lines += ["", "Where the overhead goes (s): the alone release | median / max of all at once"]
    ok = [r for r in results if "error" not in r]
    segw = max(len(x) for x in SEGMENTS) + 2
    lines.append((f"{'':<{segw}}" + "".join(f"{r['db']:<22}" for r in ok)).rstrip())
    for name in (*SEGMENTS, "= overhead"):
        cells = []
        for r in ok:
            def seg(rel: dict[str, Any], key: str = name) -> float | None:
                return rel["overhead_s"] if key == "= overhead" else rel["segments_s"].get(key)

            alone = [seg(x) for x in r["alone"]["releases"]]
            many = [v for v in (seg(x) for x in r["together"]["releases"]) if v is not None]
            a_txt = _s(alone[0], "") if alone else "-"
            m_txt = (f"{statistics.median(many):.1f} / {max(many):.1f}" if many else "-")
            cells.append(f"{a_txt:>5} | {m_txt:<14}")
        lines.append(f"{name:<{segw}}" + "".join(f"{c:<22}" for c in cells).rstrip())
    lines.append("")
    lines.append("Per release (all at once, and the alone one first): push → build done, → "
                 "release Running, → decision; overhead; looks; RSS of its flow runs (MiB)")  # fmt: skip
    for r in results:
        if "error" in r:
            continue
        lines.append(f"  {r['db']}:")
        for label, rel in [("alone", x) for x in r["alone"]["releases"]] + [
                ("", x) for x in sorted(r["together"]["releases"], key=lambda x: x["push_to_decision_s"] or 1e9)]:  # fmt: skip
            rss = ", ".join(f"{k} {v:.0f}" for k, v in sorted(rel["flow_rss_peak_mib"].items()))
            lines.append(
                f"    {rel['app']:<6}{label:<6}{rel['outcome']:<13}"
                f"build {_s(rel['push_to_build_end_s']):>7}  running {_s(rel['push_to_release_running_s']):>7}  "
                f"decision {_s(rel['push_to_decision_s']):>7} ({rel['decided_by'] or '-'})  "
                f"overhead {_s(rel['overhead_s']):>7}  looks {rel['looks'] if rel['looks'] is not None else '-'}  "
                f"{rss}")  # fmt: skip
            if rel["outcome"] != PROMOTED:
                lines.append(f"          why: {(rel['reason'] or '?')[:300]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apps", type=int, nargs="+", default=[20], metavar="N",
                        help="apps released at once (one or more N: a table each) [20]")  # fmt: skip
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both",
                        help="the Prefect server's database [both: one chain after the other]")  # fmt: skip
    parser.add_argument("--rate", type=float, default=10.0, help="req/s of steady load per app [10]")
    parser.add_argument("--lifetime", type=float, default=30.0, help="analysis lifetime, s [30]")
    parser.add_argument("--interval", type=float, default=10.0, help="one look every ... s [10]")
    parser.add_argument("--begin-after", type=float, default=10.0, help="warm-up, s [10]")
    parser.add_argument("--warmup", type=float, default=5.0,
                        help="seconds of load before the first measurement [5]")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    parser.add_argument("--keep-logs", action="store_true", help="keep each chain's home and logs")
    parser.add_argument("--load-child", help=argparse.SUPPRESS)
    parser.add_argument("--load-seconds", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--load-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.load_child:
        return load_child(args.load_child.split(","), args.rate, args.load_seconds, args.load_out)
    if any(n < 1 for n in args.apps):
        parser.error("--apps must be at least 1")
    for binary in ("prometheus", "haproxy", "git"):
        if shutil.which(binary) is None and not Path(f"/usr/sbin/{binary}").exists():
            parser.error(f"{binary} is missing: run `make setup`")
    os.environ.pop("PREFECT_API_URL", None)  # the chain sets its own for every process
    dbs = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    wrong = False
    everything = []
    try:
        for n in args.apps:
            results = []
            for db in dbs:
                try:
                    results.append(run_one(n, db, args))
                except KeyboardInterrupt:
                    raise
                except Exception as exc:  # noqa: BLE001 (reported in the table, exit 1)
                    say(f"[{db}, N={n}] failed: {exc!r}")
                    results.append({"n": n, "db": db, "error": f"{type(exc).__name__}: {exc}"})
            for r in results:
                if "error" in r:
                    wrong = True
                    continue
                for phase in ("alone", "together"):
                    if r[phase]["correct"] != r[phase]["n"]:
                        wrong = True
            print(render(n, results, args), flush=True)
            print(flush=True)
            everything += results
    except KeyboardInterrupt:
        say("interrupted: everything this bench started was stopped")
        return 130
    if args.json:
        print(json.dumps(everything, indent=2, default=str))
    if wrong:
        print("FAILED: a release was not promoted (or a run did not finish): see above",
              flush=True)  # fmt: skip
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
