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

The alone release's own parts (bench/_bookkeeping.py): each of its flow runs' CPU and PSS
peak, and the task runs, artifacts, log lines and events its canary-release run made,
counted on the server. The output ends with one machine-readable line per figure,
`name=value db=<db> n=<N>` (`cpu_per_release_s=`, `server_cpu_per_release_s=`,
`flow_run_rss_peak_mib=`, `overhead_ratio_max=`, `max_over_median=`, ...: bench/README.md).

Targets (printed PASS/FAIL): the slowest concurrent release's overhead <= 2x the alone
release's; max / median push → decision <= 1.5. Scheduled deployments (the */10 cron
re-analysis, which would fan out over every app) are paused in the private chain.

Everything it started (load, chain, flow-run processes of its worker, PostgreSQL) is stopped
in a finally, Ctrl-C included; the home is deleted after a clean run, kept (with its logs)
after a failure or with --keep-logs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable as a plain script

from bench._bookkeeping import alone_release, tail_lines  # noqa: E402
from bench._common import DEMO_PORTS, RELEASE_DEPLOYMENTS, missing_binary, say, stop_load  # noqa: E402
from bench._concurrent_apps import (  # noqa: E402
    App,
    Push,
    check_app_config,
    load_child,
    load_summary,
    push,
    push_all,
    start_load,
)
from bench._concurrent_report import PROMOTED, Release, phase_numbers, render  # noqa: E402
from bench._machine import CLK_TCK, MIB, Probe, Sampler  # noqa: E402
from canary.platforms.local import procs  # noqa: E402
from demo.chain import Chain, ChainConfig  # noqa: E402
from store.reader import PrefectAdmin, PrefectReader  # noqa: E402
from store.records import FlowRun  # noqa: E402


# -- following releases --------------------------------------------------------------------
class Bench:
    """Follows the releases of many apps on one chain."""

    def __init__(self, chain: Chain) -> None:
        self.reader = PrefectReader(chain.config.api_url, timeout=20)
        self.admin = PrefectAdmin(chain.config.api_url, timeout=20)
        self._names: dict[str, str] = {}

    def runs(self) -> dict[tuple[str, str], FlowRun]:
        """(deployment, commit) -> the newest flow run of build / canary-release."""
        found: dict[tuple[str, str], FlowRun] = {}
        if not self._names:
            self._names = self.reader.deployment_names()
        for run in self.reader.runs(sorted(RELEASE_DEPLOYMENTS), limit=200):
            found.setdefault((self._names.get(run.deployment_id or "", "?"), run.commit or ""), run)
        return found

    def _task_marks(self, rel: Release) -> None:
        """When the release's deploy began and its wait-ready ended (one task run each, for
        both tracks; two each, one per track, before issue 24 folded them)."""
        assert rel.run is not None
        tasks = self.reader.task_runs(rel.run.id)
        deploys = [t.start for t in tasks if t.name.startswith("deploy-") and t.start]
        readies = [t.end for t in tasks if t.name.startswith("wait-ready-") and t.end]
        rel.first_deploy = min((d for d in deploys if d), default=None)
        rel.ready = max((r for r in readies if r), default=None)

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
                if (rel.build and rel.build.failed) or (rel.run and rel.run.final):
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
        if run is None or not run.final:
            if build and build.failed:
                rel.outcome = f"build {build.state_name}"
                rel.decided, rel.decided_by = build.end, "build final state"
            return
        wait_until = time.monotonic() + 30  # events are persisted in batches, ~5 s late
        while rel.ended is None and time.monotonic() < wait_until:
            with contextlib.suppress(OSError, ValueError):
                rel.ended = self.reader.release_end(rel.app, rel.commit)
            if rel.ended is None:
                time.sleep(1)
        with contextlib.suppress(OSError, ValueError):
            self._task_marks(rel)
        if rel.ended is not None:
            rel.outcome = rel.ended.model.outcome.value
            rel.decided, rel.decided_by = rel.ended.occurred, "event"
        else:
            rel.outcome = f"{run.state_name} (no event)"
            rel.decided, rel.decided_by = run.end, "run final state"


# -- one run ---------------------------------------------------------------------------------
@dataclass
class ChainRun:
    """One chain with `n` apps on database `db`, and what was measured on it so far."""

    n: int
    db: str
    args: argparse.Namespace
    home: Path
    apps: list[App]
    chain: Chain
    result: dict[str, Any]
    phases: dict[str, dict[str, Any]] = field(default_factory=dict)
    sampler: Sampler | None = None
    probe: Probe | None = None
    load: subprocess.Popen[bytes] | None = None

    @property
    def analysis(self) -> float:
        """The configured analysis of every release: begin_after + lifetime."""
        return float(self.args.begin_after + self.args.lifetime)

    @classmethod
    def create(cls, n: int, db: str, args: argparse.Namespace) -> ChainRun:
        """The chain's configuration (free ports, a temporary home) and its apps; nothing runs."""
        home = Path(tempfile.mkdtemp(prefix=f"concurrent-releases-{db}-{n}-"))
        (home / "logs").mkdir()
        width = max(2, len(str(n)))
        names = [f"gg{i:0{width}d}" for i in range(1, n + 1)]
        ports = procs.free_ports(5 + n, exclude=DEMO_PORTS)
        prefect_port, relay_port, stats_port, prometheus_port, db_port = ports[:5]
        apps = [App(name, port, home / "repos" / name) for name, port in zip(names, ports[5:], strict=False)]
        config = ChainConfig(home=home, prefect_port=prefect_port, relay_port=relay_port,
                             app=apps[0].name, app_port=apps[0].port,
                             extra_apps={a.name: a.port for a in apps[1:]}, stats_port=stats_port,
                             prometheus_port=prometheus_port, webhook_secret=secrets.token_hex(16),
                             db=db, db_port=db_port)  # fmt: skip
        chain = Chain(config, say=lambda line: say(f"  chain: {line}"))
        result = {"n": n, "db": db, "home": str(home), "analysis_s": args.begin_after + args.lifetime,
                  "loadavg_start": os.getloadavg()[0]}  # fmt: skip
        return cls(n, db, args, home, apps, chain, result)

    def start(self) -> Bench:
        """The apps' repositories, the chain, and the sampler and probe on its processes."""
        for app in self.apps:
            app.create(self.args)
        check_app_config(self.apps)
        v1 = {a.name: a.commit("1.0.0") for a in self.apps}
        t0 = time.monotonic()
        say(f"[{self.db}, N={self.n}] starting the chain in {self.home}")
        self.chain.start()
        self.result["chain_start_s"] = time.monotonic() - t0
        bench = Bench(self.chain)
        paused = bench.admin.pause_scheduled(keep=RELEASE_DEPLOYMENTS)
        say(f"  chain up in {self.result['chain_start_s']:.1f} s; paused for the bench: "
            f"{', '.join(paused) or 'nothing'}")  # fmt: skip
        server, worker = self.chain.record("prefect-server"), self.chain.record("worker")
        if server is None or worker is None:
            raise RuntimeError("the chain's server or worker is not running")
        self.sampler = Sampler(worker.pid, server.pid, self.postmaster)
        self.probe = Probe(self.chain.config.api_url)
        self.sampler.start()
        self.probe.start()
        self.bootstrap(v1)
        return bench

    def postmaster(self) -> int | None:
        """PostgreSQL's postmaster, from the cluster's own pid file (None on SQLite)."""
        if self.db != "postgres":
            return None
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.chain.postgres().data_dir / "postmaster.pid").read_text().split()[0])
        return None

    def bootstrap(self, v1: dict[str, str]) -> None:
        """v1.0.0 of every app into production."""
        t0 = time.monotonic()
        env = self.chain.client_env()
        for app in self.apps:
            subprocess.run([sys.executable, "scripts/bootstrap_production.py", "--repo",
                            str(app.repo), "--commit", v1[app.name], "--app", app.name], cwd=ROOT,
                           env=env, check=True, capture_output=True, timeout=180)  # fmt: skip
            app.head = v1[app.name]
        self.result["bootstrap_s"] = time.monotonic() - t0
        say(f"  production v1.0.0 of {self.n} app(s) in {self.result['bootstrap_s']:.1f} s")

    def budgets(self) -> tuple[float, float]:
        """Seconds the alone release, and all at once, may take."""
        return self.analysis + 300, self.analysis + 300 + 15 * self.n

    def idle(self) -> None:
        """Steady load, its warm-up, then 10 s of the chain idle under load."""
        assert self.sampler is not None
        load_seconds = 30 + sum(self.budgets()) + 120
        self.load = start_load(self.apps, self.args.rate, load_seconds, self.home)
        say(f"  steady load: {self.args.rate:g} req/s on each of {self.n} app(s) (bounded: "
            f"{load_seconds:.0f} s)")  # fmt: skip
        time.sleep(self.args.warmup)
        idle0 = time.time()
        cpu0 = self.sampler.cpu()
        time.sleep(10)
        self.phases["idle"] = {"t0": idle0, "t1": time.time(), "cpu0": cpu0, "cpu1": self.sampler.cpu()}

    def alone(self, bench: Bench) -> list[Release]:
        """1. One app's release on its own."""
        assert self.sampler is not None
        first, config = self.apps[0], self.chain.config
        sha = first.commit("2.0.0")
        say(f"  alone: push {first.name} 2.0.0 ({sha[:7]}); analysis {self.analysis:g} s")
        cpu0 = self.sampler.cpu()
        p = push(config.relay_url, config.webhook_secret, first, sha)
        alone = bench.follow([p], self.budgets()[0])
        self.sampler.wait_reaped({i for rel in alone for i in rel.run_ids})
        self.phases["alone"] = {"t0": p.sent, "t1": time.time(), "cpu0": cpu0, "cpu1": self.sampler.cpu()}
        say(f"  alone: {alone[0].outcome} in "
            f"{(alone[0].decided or float('nan')) - p.sent:.1f} s")  # fmt: skip
        return alone

    def together(self, bench: Bench) -> list[Release]:
        """2. Every app's release at once."""
        assert self.sampler is not None
        first, config = self.apps[0], self.chain.config
        targets = [(a, a.commit("3.0.0" if a is first else "2.0.0")) for a in self.apps]
        time.sleep(5)  # let the alone release's report/event writes settle
        say(f"  all at once: {self.n} pushes")
        cpu0 = self.sampler.cpu()
        pushes = push_all(config.relay_url, config.webhook_secret, targets)
        together = bench.follow(pushes, self.budgets()[1])
        self.sampler.wait_reaped({i for rel in together for i in rel.run_ids})
        self.phases["together"] = {"t0": min(p.sent for p in pushes), "t1": time.time(),
                                   "cpu0": cpu0, "cpu1": self.sampler.cpu()}  # fmt: skip
        decided = sum(r.outcome == PROMOTED for r in together)
        say(f"  all at once: {decided}/{self.n} promoted")
        return together

    def conclude(self, alone: list[Release], together: list[Release]) -> dict[str, Any]:
        """Stop measuring; the run's numbers (memory per flow run, CPU, API, machine)."""
        assert self.sampler is not None and self.probe is not None
        sampler, probe, result = self.sampler, self.probe, self.result
        sampler.stop()
        probe.stop()
        stop_load(self.load)
        result["load"] = load_summary(self.home / "load.jsonl")
        run_ids = {run.id: (rel, kind) for rel in alone + together
                   for kind, run in (("build", rel.build), ("canary-release", rel.run)) if run}  # fmt: skip
        for proc in sampler.flows.values():  # memory per flow run, by deployment
            if proc.run_id in run_ids:
                rel, kind = run_ids[proc.run_id]
                rel.flow_rss_mib[kind] = max(rel.flow_rss_mib.get(kind, 0), proc.peak_rss / MIB)
        result["alone"] = phase_numbers(alone, self.analysis)
        result["alone_release"] = alone_release(  # its own CPU, PSS and bookkeeping
            sampler.flows.values(), {kind: run.id for kind, run in (("build", alone[0].build),
                                     ("canary-release", alone[0].run)) if run},
            self.chain.config.api_url, CLK_TCK)  # fmt: skip
        result["together"] = phase_numbers(together, self.analysis)
        for name, ph in self.phases.items():
            wall = ph["cpu1"]["t"] - ph["cpu0"]["t"]
            cpu = {k: ph["cpu1"][k] - ph["cpu0"][k] for k in ("server", "worker", "flow_runs", "postgres")}
            result.setdefault(name, {}).update({
                "wall_s": wall, "cpu_s": cpu, "probe": probe.stats(ph["t0"], ph["t1"]),
                "rss_peak_mib": sampler.peaks(ph["t0"], ph["t1"]),
            })  # fmt: skip
        result["machine_busy"] = self.machine_busy(together)
        result["sampler_errors"] = sampler.errors
        result["loadavg_end"] = os.getloadavg()[0]
        return result

    def machine_busy(self, together: list[Release]) -> dict[str, float | None]:
        """The share of all cores busy in each phase (and until the last release ran)."""
        assert self.sampler is not None
        busy, ph = self.sampler.machine_busy, self.phases
        starts = [r.run.start for r in together if r.run is not None]
        last_start = max((x for x in starts if x), default=None)
        return {
            "idle": busy(ph["idle"]["t0"], ph["idle"]["t1"]),
            "alone": busy(ph["alone"]["t0"], ph["alone"]["t1"]),
            "together": busy(ph["together"]["t0"], ph["together"]["t1"]),
            "together_starts": busy(ph["together"]["t0"], last_start) if last_start else None,
        }

    def clean_up(self, ok: bool) -> None:
        """Stop everything this run started (Ctrl-C included); remove the home after a clean
        run unless --keep-logs."""
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a 2nd Ctrl-C must not cut this
        try:
            for part in (self.sampler, self.probe):
                if part is not None:
                    part.stop()
            stop_load(self.load)
            if self.sampler is not None:  # one last look for flow runs of our worker
                with contextlib.suppress(Exception):
                    self.sampler.sample()
            with contextlib.suppress(Exception):  # the worker first: it starts no more runs
                say(f"  stopped: {', '.join(self.chain.stop())}")
            for rec in self.sampler.leftovers() if self.sampler is not None else []:
                with contextlib.suppress(Exception):
                    procs.stop(rec, timeout=10)
                    say(f"  stopped a flow-run process that outlived the worker (pid {rec.pid})")
            if self.db == "postgres":
                with contextlib.suppress(Exception):
                    self.chain.postgres().remove()
            if ok and not self.args.keep_logs:
                shutil.rmtree(self.home, ignore_errors=True)
            else:
                say(f"  logs kept in {self.home / 'logs'}")
        finally:
            signal.signal(signal.SIGINT, previous)


def run_one(n: int, db: str, args: argparse.Namespace) -> dict[str, Any]:
    """One chain with `n` apps on database `db`: the alone release, then all at once."""
    one = ChainRun.create(n, db, args)
    ok = False
    try:
        bench = one.start()
        one.idle()
        alone = one.alone(bench)
        together = one.together(bench)
        result = one.conclude(alone, together)
        ok = True
        return result
    finally:
        one.clean_up(ok)


# -- the command line ------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
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
    return parser


def main(argv: list[str] | None = None) -> int:
    """The command line (or the load child); the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.load_child:
        return load_child(args.load_child.split(","), args.rate, args.load_seconds, args.load_out)
    if any(n < 1 for n in args.apps):
        parser.error("--apps must be at least 1")
    if (binary := missing_binary()) is not None:
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
    print("\n".join(tail_lines(everything)), flush=True)  # one `name=value db= n=` per figure
    if wrong:
        print("FAILED: a release was not promoted (or a run did not finish): see above",
              flush=True)  # fmt: skip
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
