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
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable as a plain script

from bench._common import (  # noqa: E402
    APP,
    RELEASE_DEPLOYMENTS,
    Bench,
    Session,
    missing_binary,
    percentile,
    private_session,
    say,
    start_load,
    wait_for,
)
from canary.config.release import ReleaseSpec  # noqa: E402
from canary.values.events import BuildSucceeded  # noqa: E402
from demo.chain import Chain, ChainConfig  # noqa: E402
from store.records import FINAL, TaskRun  # noqa: E402

RELEASE_AUTOMATION = "canary-release-on-build-succeeded"
AUTOMATION_TRIGGERED = "prefect.automation.triggered"

#: One release's raw measurements (see `release`); JSON-able but for the task runs.
Raw = dict[str, Any]


# -- part 1 ----------------------------------------------------------------------------------
def push_latency(bench: Bench, pushes: int) -> list[dict[str, float]]:
    """`pushes` pushes one at a time: POST → 202, → build created, Pending, Running, Completed."""
    samples = []
    for i in range(pushes):
        sha = bench.commit(f"1.1.{i}")
        time.sleep(random.uniform(0.3, 1.3))  # do not push in phase with the worker's poll
        sent, accepted = bench.push(sha)
        run = bench.final_run("build", sha, timeout=180)
        if run.state_type != "COMPLETED":
            raise RuntimeError(f"build of {sha[:12]} ended {run.state_name}")
        t = bench.state_times(run)
        sample = {"relay_202": accepted - sent, "created": _since(t["created"], sent),
                  "pending": _since(t["pending"], sent), "running": _since(t["running"], sent),
                  "completed": _since(t["end"], sent)}  # fmt: skip
        samples.append(sample)
        say(f"push {i + 1}/{pushes} {sha[:10]}: 202 {sample['relay_202'] * 1e3:.0f} ms, "
            f"created {sample['created']:.2f} s, running {sample['running']:.2f} s")  # fmt: skip
    return samples


def _since(epoch: float | None, start: float) -> float:
    if epoch is None:
        raise RuntimeError("a run state has no timestamp")
    return epoch - start


# -- part 2 ----------------------------------------------------------------------------------
def release(bench: Bench, spec: ReleaseSpec) -> Raw:
    """One full release of a good version: its runs, event, task runs, states and logs."""
    sha = bench.commit("2.0.0")
    sent, _ = bench.push(sha)
    build = bench.final_run("build", sha, timeout=180)
    if build.state_type != "COMPLETED":
        raise RuntimeError(f"build of {sha[:12]} ended {build.state_name}")
    budget = (spec.analysis.begin_after + spec.analysis.lifetime).total_seconds()
    timeout = budget + 2 * spec.ready_timeout_seconds + 240
    say(f"release of {sha[:10]} under way (analysis {budget:.0f} s; deadline {timeout:.0f} s)")
    run = bench.final_run("canary-release", sha, timeout=timeout)
    if run.state_type != "COMPLETED":
        raise RuntimeError(f"canary-release of {sha[:12]} ended {run.state_name}")
    built = wait_for(f"{BuildSucceeded.name} event",  # persisted in batches: up to ~5 s late
                     lambda: bench.reader.build_succeeded(APP, sha), 30, every=0.5)  # fmt: skip
    occurred = built.occurred or 0.0
    return {"commit": sha, "pushed": sent, "build": bench.state_times(build),
            "event": {"occurred": built.occurred, "received": built.received},
            "automation_triggered": automation_fired(bench, occurred),
            "release": bench.state_times(run), "tasks": settled_task_runs(bench, run.id),
            "states": [(s.name, s.timestamp) for s in bench.reader.run_states(run.id)],
            "logs": logs(bench, run.id), "outcome": outcome(bench, sha)}  # fmt: skip


def automation_fired(bench: Bench, since: float) -> float | None:
    """When the canary-release automation fired for the event at `since` (or None)."""
    try:
        found = bench.reader.events([AUTOMATION_TRIGGERED])
    except OSError:
        return None
    times = [e.occurred or 0.0 for e in found
             if e.resource.get("prefect.resource.name") == RELEASE_AUTOMATION
             and (e.occurred or 0.0) >= since]  # fmt: skip
    return min(times) if times else None


def logs(bench: Bench, run_id: str) -> list[tuple[str, str]]:
    """The run's log lines (each cut to 300 characters); none when they cannot be read."""
    try:
        return [(line.timestamp, line.message[:300]) for line in bench.reader.logs(run_id)]
    except OSError:
        return []


def outcome(bench: Bench, commit: str) -> str:
    """How the release of `commit` ended, from its event (``unknown`` without one)."""
    def ended() -> str | None:
        found = bench.reader.release_end(APP, commit)
        return found.model.outcome.value if found is not None else None

    try:
        return wait_for("release outcome event", ended, 20, every=0.5)
    except TimeoutError:
        return "unknown"


def settled_task_runs(bench: Bench, run_id: str) -> list[TaskRun]:
    """Task runs are recorded from client events: wait until all are final and stable."""
    previous: list[tuple[str, str]] = []

    def stable() -> list[TaskRun] | None:
        nonlocal previous
        runs = bench.reader.task_runs(run_id)
        key = sorted((r.id, r.state_type) for r in runs)
        settled = runs and key == previous and all(r.state_type in FINAL for r in runs)
        previous = key
        return runs if settled else None

    return wait_for("task runs recorded", stable, 60, every=2.0)


# -- analysis of the release timeline -------------------------------------------------------
def _start(t: TaskRun) -> float:
    return t.start or 0.0


def _end(t: TaskRun) -> float:
    return t.end or _start(t)


def _starts(tasks: list[TaskRun], *prefixes: str) -> list[TaskRun]:
    found = [t for t in tasks if t.name.startswith(prefixes) and t.start is not None]
    return sorted(found, key=_start)


def _judgements(tasks: list[TaskRun], analysis_start: float, begin_after: float,
                interval: float, release_end: float) -> list[dict[str, float]]:  # fmt: skip
    """Per look: from its window's end to the next task (fetch, judge, artifact)."""
    by_start = _starts(tasks, "")
    fetches, judges = _starts(tasks, "observe-"), _starts(tasks, "judge-interval-")
    rows = []
    for i, (fetch, judge) in enumerate(zip(fetches, judges, strict=False), start=1):
        not_before = analysis_start + begin_after + i * interval
        after = next((_start(t) for t in by_start if _start(t) >= _end(judge)), None)
        done = after if after is not None else release_end
        rows.append({
            "index": i, "total": done - not_before, "wait_tail": _start(fetch) - not_before,
            "fetch": _end(fetch) - _start(fetch), "judge": _end(judge) - _start(judge),
            "publish": done - _end(judge),
        })  # fmt: skip
    return rows


def _automation(fired: float | None, ev: Mapping[str, float], rel: Mapping[str, float]) -> dict[str, float]:
    if fired:
        return {
            "received → automation fired (triggers service)": fired - ev["received"],
            "fired → release run created (actions service)": rel["created"] - fired,
        }
    return {"received → release run created (automation)": rel["created"] - ev["received"]}


def _setup(tasks: list[TaskRun], first_deploy: float, running: float) -> dict[str, float]:
    """The setup before the first deploy, split where the flow's task names allow it."""
    lock, reconcile = _starts(tasks, "ensure-release-lock-"), _starts(tasks, "reconcile-")
    if lock and reconcile and _start(lock[0]) < _start(reconcile[0]) < first_deploy:
        return {
            "Running → lock task (spec, load blocks: imports + API)": _start(lock[0]) - running,
            "release lock (create limit, acquire the slot)": _start(reconcile[0]) - _start(lock[0]),
            "reconcile + read production image": first_deploy - _start(reconcile[0]),
        }  # fmt: skip
    return {"Running → first deploy (spec, blocks, lock, reconcile)": first_deploy - running}


def split_release(data: Raw, spec: ReleaseSpec) -> dict[str, Any]:
    """The release's wall time from the build event to the run's end, in segments."""
    plan = spec.analysis
    interval = (plan.interval or plan.lifetime).total_seconds()
    begin_after = plan.begin_after.total_seconds()
    tasks: list[TaskRun] = data["tasks"]
    ev, rel = data["event"], data["release"]
    deploys, readies = _starts(tasks, "deploy-"), _starts(tasks, "wait-ready-")
    judges, promote = _starts(tasks, "judge-interval-"), _starts(tasks, "promote-")
    cleanup = _starts(tasks, "roll-back-", "remove-", "restore-routes-", "cleanup-")
    if not (deploys and readies and _starts(tasks, "observe-") and judges and cleanup):
        raise RuntimeError(f"unexpected task runs: {[t.name for t in _starts(tasks, '')]}")
    analysis_start = max(_end(t) for t in readies)  # the flow takes `start` right after this
    # a release decided early makes fewer looks: the analysis ran up to its last window
    analysis = min((plan.begin_after + plan.lifetime).total_seconds(),
                   begin_after + interval * len(judges))  # fmt: skip
    judgements = _judgements(tasks, analysis_start, begin_after, interval, rel["end"])
    last = judgements[-1]
    cleanup_start, cleanup_end = min(map(_start, cleanup)), max(map(_end, cleanup))
    promoted = _end(promote[0]) if promote else analysis_start + analysis + last["total"]
    segments = {
        "event → received by the server": ev["received"] - ev["occurred"],
        **_automation(data.get("automation_triggered"), ev, rel),
        "created → Pending (worker poll)": rel["pending"] - rel["created"],
        "Pending → Running (flow-run process start, imports)": rel["running"] - rel["pending"],
        **_setup(tasks, _start(deploys[0]), rel["running"]),
        "deploy + ready (baseline, canary)": analysis_start - _start(deploys[0]),
        "last judgement past its window (fetch+judge+artifact)": last["total"],
        "promote": (_end(promote[0]) - _start(promote[0])) if promote else 0.0,
        "promote → cleanup (progress 100 %)": cleanup_start - promoted,
        "cleanup (traffic back, tracks removed, routes)": cleanup_end - cleanup_start,
        "finish (report, event, final state)": rel["end"] - cleanup_end,
    }  # fmt: skip
    wall = rel["end"] - ev["occurred"]
    return {
        "analysis_s": analysis, "wall_from_event_s": wall, "overhead_s": wall - analysis,
        "overhead_ratio": (wall - analysis) / analysis, "segments_s": segments,
        "segments_sum_s": sum(segments.values()) + analysis, "judgements": judgements,
        "set_traffic_s": [_end(t) - _start(t) for t in _starts(tasks, "traffic-")],
        "push_to_release_end_s": rel["end"] - data["pushed"],
        "push_to_build_succeeded_s": ev["occurred"] - data["pushed"],
        "outcome": data["outcome"], "commit": data["commit"],
    }  # fmt: skip


def summarize_pushes(samples: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """p50, p95 and max of every latency of part 1."""
    keys = ("relay_202", "created", "pending", "running", "completed")
    out = {k: {"p50": percentile([s[k] for s in samples], 50),
               "p95": percentile([s[k] for s in samples], 95),
               "max": max(s[k] for s in samples)} for k in keys}  # fmt: skip
    gaps = [s["running"] - s["created"] for s in samples]
    out["created→running"] = {"p50": percentile(gaps, 50), "p95": percentile(gaps, 95),
                              "max": max(gaps)}  # fmt: skip
    return out


def print_report(result: dict[str, Any]) -> None:
    """The human-readable tables of both parts."""
    p = result["pushes"]
    print(
        f"\nPipeline latency ({result['pushes_n']} pushes; worker env: {result['worker_env']}; "
        f"engine command: {result.get('engine_command') or 'the one of prefect.yaml'}; worker: "
        f"{'fresh interpreters' if result['worker_env'].get('CANARY_WORKER_FORK') == '0' else 'warm (forks)'}; "
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
    if r:
        print_release(r)


def print_release(r: dict[str, Any]) -> None:
    """The table of part 2: where one release's overhead goes."""
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


def measure(session: Session, args: argparse.Namespace, spec: ReleaseSpec,
            extra: dict[str, str]) -> dict[str, Any]:  # fmt: skip
    """Both parts on a started chain: push latency, then (unless --no-release) one release."""
    bench, env = session.bench, session.chain.client_env()
    bench.bootstrap()
    budget = args.pushes * 60 + spec.analysis.lifetime.total_seconds() + 600
    session.load = start_load(session.config, budget, session.home / "logs" / "load.log")
    say("production v1 up under steady load")
    bench.admin.set_automation(RELEASE_AUTOMATION, enabled=False)
    say(f"automation {RELEASE_AUTOMATION} disabled for the push latency part")
    samples = push_latency(bench, args.pushes)
    if bench.reader.runs(["canary-release"]):
        raise RuntimeError("a canary-release run started although its automation was off")
    result: dict[str, Any] = {
        "engine_command": args.engine_command,
        "pushes_n": args.pushes, "worker_env": {
            "PREFECT_WORKER_QUERY_SECONDS": env.get("PREFECT_WORKER_QUERY_SECONDS"),
            "PREFECT_WORKER_PREFETCH_SECONDS": env.get("PREFECT_WORKER_PREFETCH_SECONDS"),
            **extra},
        "push_samples": samples, "pushes": summarize_pushes(samples),
    }  # fmt: skip
    if not args.no_release:
        bench.admin.set_automation(RELEASE_AUTOMATION, enabled=True)
        time.sleep(1.0)  # let the triggers service load the re-enabled automation
        say(f"automation {RELEASE_AUTOMATION} enabled again: one full release")
        raw = release(bench, spec)
        result["release"] = split_release(raw, spec)
        result["release_raw"] = {**raw, "tasks": [asdict(t) for t in raw["tasks"]]}
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The whole bench on a private chain, stopped at the end unless --keep."""
    if (binary := missing_binary()) is not None:
        raise SystemExit(f"{binary} is missing: run `make setup`")
    extra = dict(kv.split("=", 1) for kv in args.set)
    spec = ReleaseSpec.load(ROOT / "deployments" / "releases" / f"{APP}.yaml")
    load_at_start = os.getloadavg()[0]

    def kept(home: Path) -> str:
        return f"chain left up (--keep): stop it with `{sys.executable} {__file__} --stop {home}`"

    with private_session("pipeline-latency-", extra, keep=args.keep, kept=kept) as session:
        session.start()
        if args.engine_command:
            command = args.engine_command.replace("{python}", sys.executable)
            session.bench.admin.set_job_variables(RELEASE_DEPLOYMENTS, {"command": command})
            say(f"job variable command={command!r} on build and canary-release")
        result = {"loadavg_1min_at_start": load_at_start,
                  **measure(session, args, spec, extra)}  # fmt: skip
        result["loadavg_1min_at_end"] = os.getloadavg()[0]
        return result


def stop_kept(home: Path) -> None:
    """Stop a chain left up by --keep."""
    chain = Chain(ChainConfig(home=home), say=say)
    say(f"stopped: {', '.join(chain.stop())}")


def main(argv: list[str] | None = None) -> int:
    """The command line; the exit code."""
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
