"""What starting one flow run costs: a fresh interpreter (Prefect's ProcessWorker) against a
fork of the warm worker's pre-imported zygote (flows/warm_worker.py), side by side.

    .venv/bin/python bench/flow_run_start.py [--runs 6] [--idle 30] [--json]

Starts its own `prefect server start` (temporary home, free port), two process pools with
one deployment each of the same small flow, and two workers (`python -m flows.warm_worker`,
one with CANARY_WORKER_FORK=0: every run a fresh `python -m prefect.engine`, exactly as
`prefect worker start` runs it). The flow imports what a release's process imports
(flows.canary_release) and then reports, at its first line, its process' CPU time and its
RSS and PSS (/proc/self/smaps_rollup). Runs alternate between the pools, one at a time, after
one warm-up run each. Per run:

* CPU-s of the flow-run process up to the flow's first line (its own `process_time`: for
  the fresh interpreter its imports included, for the fork only what ran after the fork);
* CPU-s of the whole worker tree (worker, zygote, flow-run processes reaped by either:
  utime+stime+cutime+cstime over the measured runs, divided by their number; both workers
  poll the whole time, so both carry the same idle share);
* created → Running, Pending → Running (the run's state times);
* RSS, PSS and USS (its private pages) of the flow-run process.

With --idle S it then measures the server's CPU for S seconds with both workers idle
(polling at PREFECT_WORKER_QUERY_SECONDS, default 0.5 here: the chain's rate before its
worker was woken by events, demo/chain.py), then S s
with the workers stopped: the cost of polling at that rate.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable as a plain script

from bench._common import say  # noqa: E402
from tests.support.prefect_server import PrefectServer  # noqa: E402

MODES = ("spawn", "fork")
TICK = os.sysconf("SC_CLK_TCK")

FLOW = '''
import json, os, time
from pathlib import Path
from prefect import flow
from prefect.runtime import flow_run

import flows.canary_release  # what a release's process imports

@flow
def start_cost(out: str) -> None:
    cpu = time.process_time()
    rollup = dict(line.split(":", 1) for line in
                  Path("/proc/self/smaps_rollup").read_text().splitlines()[1:])
    kib = lambda k: int(rollup[k].split()[0])
    Path(out, f"{flow_run.id}.json").write_text(json.dumps({
        "cpu_to_first_line": cpu, "rss_kib": kib("Rss"), "pss_kib": kib("Pss"),
        "uss_kib": kib("Private_Clean") + kib("Private_Dirty"),
        "pid": os.getpid(), "ppid": os.getppid()}))
'''


def cpu_ticks(pid: int) -> int:
    """utime + stime + cutime + cstime of `pid` (its reaped children included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15])


def children(pid: int) -> list[int]:
    """The live children of `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                found.append(int(entry.name))
    return found


def tree_cpu(pid: int) -> float:
    """CPU-s of a worker and its zygote (each with its reaped children)."""
    total = cpu_ticks(pid)
    for child in children(pid):
        try:
            total += cpu_ticks(child)
        except OSError:
            continue
    return total / TICK


def api(method: str, url: str, **kwargs: Any) -> Any:
    """One API call; a 503 (SQLite busy under load) is retried for up to 20 s."""
    deadline = time.monotonic() + 20
    while True:
        answer = httpx.request(method, url, timeout=10, **kwargs)
        if answer.status_code != 503 or time.monotonic() > deadline:
            answer.raise_for_status()
            return answer.json() if answer.content else None
        time.sleep(0.5)


def _epoch(stamp: str | None) -> float:
    if stamp is None:
        raise RuntimeError("a run state has no timestamp")
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


class Setup:
    """The server, both pools with their deployment, both workers."""

    def __init__(self, server: PrefectServer, home: Path) -> None:
        self.server, self.home, self.api = server, home, server.api_url
        self.out = home / "out"
        self.out.mkdir()
        self.deployments: dict[str, str] = {}
        self.workers: dict[str, subprocess.Popen[bytes]] = {}

    def env(self, **extra: str) -> dict[str, str]:
        """A client's environment for this server."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        return {**base, **self.server.client_env(), "PYTHONPATH": str(ROOT),
                "PREFECT_HOME": str(self.home / "client"),
                "PREFECT_WORKER_QUERY_SECONDS": os.environ.get("PREFECT_WORKER_QUERY_SECONDS", "0.5"),
                **extra}  # fmt: skip

    def deploy(self) -> None:
        """Pools, the flow file, one deployment per pool (through `prefect deploy`'s API)."""
        (self.home / "start_cost.py").write_text(textwrap.dedent(FLOW))
        script = textwrap.dedent(f'''
            import json, sys
            from prefect import flow
            out = {{}}
            for mode in {MODES!r}:
                source = flow.from_source(source={str(self.home)!r}, entrypoint="start_cost.py:start_cost")
                out[mode] = str(source.deploy(name=mode, work_pool_name="start-" + mode,
                    print_next_steps=False, ignore_warnings=True,
                    job_variables={{"command": sys.executable + " -m prefect.engine",
                                    "stream_output": False}}))
            print(json.dumps(out))
        ''')  # fmt: skip
        for mode in MODES:
            httpx.post(f"{self.api}/work_pools/", json={"name": f"start-{mode}", "type": "process"},
                       timeout=10)  # fmt: skip (409 when it exists: fine)
        done = subprocess.run([sys.executable, "-c", script], env=self.env(), cwd=ROOT,
                              capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
        self.deployments = json.loads(done.stdout.strip().splitlines()[-1])

    def start_workers(self) -> None:
        """One warm worker per pool; the spawn one with forking switched off."""
        for mode in MODES:
            env = self.env(CANARY_WORKER_FORK="1" if mode == "fork" else "0")
            log = (self.home / f"worker-{mode}.log").open("wb")
            self.workers[mode] = subprocess.Popen(
                [sys.executable, "-m", "flows.warm_worker", "--pool", f"start-{mode}"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip

    def stop_workers(self) -> None:
        """SIGTERM each worker (Prefect turns it into SIGINT), SIGKILL after 30 s."""
        for proc in self.workers.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.workers.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def run(self, mode: str, timeout: float = 120) -> dict[str, Any]:
        """One run on `mode`'s pool, to its end: what the flow reported, its state times."""
        run_id = api("POST", f"{self.api}/deployments/{self.deployments[mode]}/create_flow_run",
                     json={"parameters": {"out": str(self.out)}})["id"]  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            run = api("GET", f"{self.api}/flow_runs/{run_id}")
            if run["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{mode} run {run_id} still {run['state_name']}")
            time.sleep(0.2)
        if run["state_type"] != "COMPLETED":
            raise RuntimeError(f"{mode} run ended {run['state_name']}")
        states = api("GET", f"{self.api}/flow_run_states/", params={"flow_run_id": run_id})
        first = {}
        for s in sorted(states, key=lambda s: s["timestamp"]):
            first.setdefault(s["type"], _epoch(s["timestamp"]))
        report = json.loads((self.out / f"{run_id}.json").read_text())
        created = _epoch(run["created"])
        return {**report, "to_running": first["RUNNING"] - created,
                "pending_to_running": first["RUNNING"] - first["PENDING"]}  # fmt: skip


def measure(setup: Setup, runs: int) -> dict[str, Any]:
    """Warm-up, then `runs` alternating runs per mode, with each worker tree's CPU."""
    for mode in MODES:
        setup.run(mode, timeout=180)  # warm-up: the zygote's imports, a cold page cache
    samples: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    before = {m: tree_cpu(setup.workers[m].pid) for m in MODES}
    for i in range(runs):
        for mode in MODES:
            samples[mode].append(setup.run(mode))
            s = samples[mode][-1]
            say(f"run {i + 1}/{runs} {mode}: {s['cpu_to_first_line']:.2f} CPU-s to the first "
                f"line, Running after {s['to_running']:.2f} s, PSS {s['pss_kib'] / 1024:.0f} MiB")
    after = {m: tree_cpu(setup.workers[m].pid) for m in MODES}
    out: dict[str, Any] = {}
    for mode in MODES:
        rows = samples[mode]
        med = {k: statistics.median(r[k] for r in rows)
               for k in ("cpu_to_first_line", "to_running", "pending_to_running", "rss_kib", "pss_kib", "uss_kib")}
        med["tree_cpu_per_run"] = (after[mode] - before[mode]) / runs
        out[mode] = {"median": med, "samples": rows}
    return out


def idle_server_cpu(setup: Setup, seconds: float) -> dict[str, float]:
    """The server's CPU-s per minute with both workers polling, then with none."""
    pid = setup.server.pid
    assert pid is not None
    start = cpu_ticks(pid)
    time.sleep(seconds)
    polling = (cpu_ticks(pid) - start) / TICK * 60 / seconds
    setup.stop_workers()
    time.sleep(5)  # let the last requests finish
    start = cpu_ticks(pid)
    time.sleep(seconds)
    quiet = (cpu_ticks(pid) - start) / TICK * 60 / seconds
    return {"server_cpu_s_per_min_two_workers_polling": polling,
            "server_cpu_s_per_min_no_worker": quiet}  # fmt: skip


def print_report(result: dict[str, Any]) -> None:
    """The side-by-side table."""
    print(f"\nFlow-run start, {result['runs']} runs per mode after a warm-up each "
          f"(1-min load {result['load'][0]:.1f} -> {result['load'][1]:.1f}, "
          f"{os.cpu_count()} cores, worker poll {result['query_seconds']} s)")
    print(f"{'median per run':<46}{'spawn':>10}{'fork':>10}{'fork/spawn':>12}")
    rows = [("CPU-s of the run's process to its first line", "cpu_to_first_line", 1.0, "s"),
            ("CPU-s of the worker tree per run (all of it)", "tree_cpu_per_run", 1.0, "s"),
            ("created -> Running", "to_running", 1.0, "s"),
            ("Pending -> Running", "pending_to_running", 1.0, "s"),
            ("RSS of the run's process", "rss_kib", 1 / 1024, "MiB"),
            ("PSS of the run's process", "pss_kib", 1 / 1024, "MiB"),
            ("USS (private) of the run's process", "uss_kib", 1 / 1024, "MiB")]  # fmt: skip
    for label, key, scale, unit in rows:
        a, b = (result[m]["median"][key] * scale for m in MODES)
        print(f"{label:<46}{a:>8.2f}{unit:<3}{b:>7.2f}{unit:<3}{b / a:>8.2f}")
    idle = result.get("idle")
    if idle:
        print(f"server CPU at idle: {idle['server_cpu_s_per_min_two_workers_polling']:.2f} "
              f"CPU-s/min with two workers polling, {idle['server_cpu_s_per_min_no_worker']:.2f} "
              f"with none")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """The command line; the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=6, help="measured runs per mode (default 6)")
    parser.add_argument("--idle", type=float, default=0, metavar="S",
                        help="also measure the server's idle CPU for S s with and without workers")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    home = Path(tempfile.mkdtemp(prefix="flow-run-start-"))
    with PrefectServer(home=home / "server", extra_env={"PREFECT_SERVER_ANALYTICS_ENABLED": "false"}) as server:
        setup = Setup(server, home)
        setup.deploy()
        setup.start_workers()
        try:
            result: dict[str, Any] = {"runs": args.runs, **measure(setup, args.runs)}
            if args.idle:
                result["idle"] = idle_server_cpu(setup, args.idle)
        finally:
            setup.stop_workers()
    result["load"] = (load, os.getloadavg()[0])
    result["query_seconds"] = setup.env()["PREFECT_WORKER_QUERY_SECONDS"]
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
