"""``python -m demo run``: start the chain, put v1 into production, push v2 and v3, follow
each release live and end with the summary."""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import httpx

from canary.errors import MetricsError
from canary.platforms.local import procs
from canary.platforms.local.prometheus import query as prometheus_query
from canary.values.outcome import Outcome
from demo.chain import ROOT, Chain, ChainConfig
from demo.config import (
    APP,
    DEPLOYMENTS,
    INTERVAL_KEY,
    PORTS,
    PRODUCTION_LIKE,
    WORKER_LOG,
    DemoError,
    Records,
    chain_config,
    port_settings,
    webhook_secret,
)
from demo.hooks import SECRET_ENV, install_post_receive
from demo.ports import port_conflicts
from demo.progress import Progress, clock, judgement_text, status_line
from demo.repo import DemoRepo, check_delivery
from demo.summary import (
    ReleaseRow,
    release_metrics,
    release_outcome,
    render_release_metrics,
    render_summary,
    short_reason,
    ui_guide,
    verdict,
)
from store.reader import PrefectAdmin, PrefectReader
from store.records import ACTIVE, FlowRun

#: (label, version, faults.json, the outcome it must have, the step's title)
PLAN: tuple[tuple[str, str, Mapping[str, object], Outcome, str], ...] = (
    ("v2", "2.0.0", PRODUCTION_LIKE, Outcome.PROMOTED,
     "5/6 push v2 (2.0.0, good): build, then a judged canary release"),
    ("v3", "3.0.0", {**PRODUCTION_LIKE, "added_latency_ms": 60}, Outcome.ROLLED_BACK,
     "6/6 push v3 (3.0.0, +60 ms latency): build, then a judged canary release"),
)  # fmt: skip


def leftover_runs(reader: PrefectReader) -> list[FlowRun]:
    """Runs of the demo's deployments that have not ended (future scheduled runs aside)."""
    now = time.time()
    return [run for run in reader.runs(DEPLOYMENTS) if run.state_type in ACTIVE
            and not (run.state_type == "SCHEDULED" and run.expected_start is not None
                     and run.expected_start > now + 5)]  # fmt: skip


@dataclass
class Demo:
    """One run of the demo, from the chain's start to the summary.

    Attributes:
        args: The parsed command line.
        out: Where progress and the summary go.
    """

    args: argparse.Namespace
    out: TextIO = field(default=sys.stdout)

    def __post_init__(self) -> None:
        self.t0 = time.monotonic()
        self.home = self.args.home.resolve()
        self.records = Records(self.home)
        self.started = False  # True once the chain was (re)started: the stack is up

    def say(self, text: str) -> None:
        """Print a step, with the time since the demo started."""
        print(f"[{clock(time.monotonic() - self.t0)}] {text}", file=self.out, flush=True)

    def detail(self, text: str) -> None:
        """Print a detail of the current step."""
        print(f"       {text}", file=self.out, flush=True)

    # preflight ------------------------------------------------------------------------
    def preflight(self, config: ChainConfig) -> None:
        """Check the binaries and the ports, and record the ports.

        Raises:
            DemoError: A binary is missing, the running demo has other ports, or a port is
                held by something the demo did not start.
        """
        missing = [b for b, path in (("git", shutil.which("git")),
                                     ("haproxy", "/usr/sbin/haproxy"),
                                     ("prometheus", "/usr/bin/prometheus"))
                   if not path or not Path(path).exists()]  # fmt: skip
        if missing:
            raise DemoError(f"missing: {', '.join(missing)}; run `make setup` (installs them)")
        wanted = port_settings(config)
        running = self.records.running()
        kept = self.records.settings()
        if running and kept and kept != wanted:
            diff = ", ".join(f"{flag} {kept.get(attr)}" for attr, flag, _ in PORTS
                             if kept.get(attr) != wanted[attr])  # fmt: skip
            raise DemoError(
                f"the demo is already running with other ports ({diff}); run `make demo-stop` "
                "first, or run again with the same flags"
            )
        problems = port_conflicts(wanted, {rec.pid for rec in running.values()})
        if problems:
            raise DemoError("\n".join(problems))
        self.records.update(settings=wanted)

    def check_relay_secret(self, config: ChainConfig) -> None:
        """A signed ping: 401 means the running relay holds another secret.

        Raises:
            DemoError: The relay refused the ping.
        """
        from webhook.signing import sign

        body = json.dumps({"zen": "canary demo secret check", "hook_id": 0}).encode()
        answer = httpx.post(config.relay_url, content=body, timeout=10, headers={
            "Content-Type": "application/json", "X-GitHub-Event": "ping",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": sign(config.webhook_secret, body),
        })  # fmt: skip
        if answer.status_code == 401:
            raise DemoError(
                "the running webhook relay was started with another secret (did "
                f"{SECRET_ENV} change?): run `make demo-stop`, then `make demo` again"
            )
        if answer.status_code != 200:
            raise DemoError(f"the relay answered {answer.status_code} to a signed ping")

    def settle_leftovers(self, config: ChainConfig, worker_was_running: bool, timeout: float) -> None:
        """Runs of an earlier demo: wait for live ones, cancel orphans of a dead worker.

        Raises:
            DemoError: Live runs of an earlier demo did not finish within `timeout`.
        """
        reader = PrefectReader(config.api_url)
        left = leftover_runs(reader)
        if not left:
            return
        if not worker_was_running:
            admin = PrefectAdmin(config.api_url)
            for run in left:
                admin.cancel(run.id, "left behind by a stopped demo worker")
            self.detail(f"cancelled {len(left)} run(s) left behind by an earlier demo")
            return
        self.detail(f"waiting for {len(left)} run(s) of an earlier demo to finish")
        deadline = time.monotonic() + timeout
        while leftover_runs(reader):
            if time.monotonic() > deadline:
                raise DemoError("runs of an earlier demo did not finish; see "
                                f"{self.home / WORKER_LOG} or run `make demo-stop`")  # fmt: skip
            time.sleep(2)

    # steps ----------------------------------------------------------------------------
    def start_chain(self) -> tuple[Chain, ChainConfig]:
        """Step 1: the chain, up, with a relay that holds our secret and no leftover runs."""
        self.preflight(chain_config(self.args))
        secret, source = webhook_secret(self.home)
        self.detail(f"webhook secret: {source}; never printed")
        config = chain_config(self.args, secret)
        chain = Chain(config, say=self.detail)
        worker_was_running = chain.running("worker")
        self.started = True
        self.say("1/6 starting the chain: Prefect server, blocks, HAProxy + Prometheus, "
                 "deployments, worker, webhook relay")  # fmt: skip
        chain.start()
        self.check_relay_secret(config)
        self.settle_leftovers(config, worker_was_running, self.args.release_timeout)
        return chain, config

    def make_repo(self, config: ChainConfig) -> tuple[DemoRepo, str]:
        """Step 2: a fresh repository with v1 pushed, then the hook; (repo, v1's commit)."""
        self.say(f"2/6 fresh git repository {self.home / 'git' / (APP + '.git')} "
                 f"with a post-receive hook → {config.relay_url}")  # fmt: skip
        repo = DemoRepo(self.home / "git" / f"{APP}.git", self.home / "work" / APP)
        repo.create(ROOT / "examples" / APP)
        v1 = repo.commit("1.0.0", PRODUCTION_LIKE)
        repo.push()  # before the hook exists: v1 goes to production directly, not as a release
        hook = install_post_receive(repo.bare, relay_url=config.relay_url,
                                    secret_file=self.home / "secret")  # fmt: skip
        self.detail(f"working clone {repo.work}; hook {hook} (reads the secret at run time)")
        return repo, v1

    def bootstrap(self, chain: Chain, config: ChainConfig, repo: DemoRepo, v1: str) -> None:
        """Step 3: v1 in production, answering.

        Raises:
            DemoError: The bootstrap failed, or production does not answer 1.0.0.
        """
        self.say(f"3/6 production v1.0.0 at {v1[:7]} (scripts/bootstrap_production.py)")
        done = subprocess.run([sys.executable, "scripts/bootstrap_production.py", "--repo",
                               str(repo.bare), "--commit", v1], cwd=ROOT,
                              env=chain.client_env(), capture_output=True, text=True,
                              timeout=300, check=False)  # fmt: skip
        if done.returncode != 0:
            raise DemoError(f"bootstrapping production failed:\n{done.stdout[-2000:]}"
                            f"{done.stderr[-3000:]}")  # fmt: skip
        deadline = time.monotonic() + 20
        while (version := self.production_version(config)) != "1.0.0":
            if time.monotonic() > deadline:
                raise DemoError(f"production answers version {version!r}, not 1.0.0")
            time.sleep(0.5)
        self.detail(f"http://127.0.0.1:{config.app_port}/ answers version 1.0.0")

    def start_load(self, chain: Chain, config: ChainConfig) -> None:
        """Step 4: steady load on production, a recorded background process.

        Raises:
            DemoError: The load generator exited at once.
        """
        old = self.records.load()
        if old is not None and procs.stop(old, timeout=10):
            self.detail(f"stopped the load of an earlier run (pid {old.pid})")
        url = f"http://127.0.0.1:{config.app_port}/"
        argv = [sys.executable, "-m", "examples.goldengoose.load", "--url", url,
                "--rate", f"{self.args.rate:g}", "--duration", f"{self.args.load_duration:g}"]  # fmt: skip
        env = {k: v for k, v in chain.client_env().items() if k != SECRET_ENV}
        log = self.home / "logs" / "load.log"
        proc, rec = procs.spawn(argv, cwd=ROOT, env=env, log=log)
        self.records.update(load=rec.to_json())
        time.sleep(1.0)
        if proc.poll() is not None:
            raise DemoError(f"the load generator exited at once ({proc.returncode}):\n"
                            f"{procs.tail(log, 20)}")  # fmt: skip
        self.detail(f"{self.args.rate:g} req/s to {url} for {self.args.load_duration:g} s "
                    f"(pid {proc.pid}, log {log})")  # fmt: skip

    def production_version(self, config: ChainConfig) -> str | None:
        """The version production answers with (None when it does not answer)."""
        with contextlib.suppress(httpx.HTTPError):
            answer = httpx.get(f"http://127.0.0.1:{config.app_port}/", timeout=3)
            return answer.headers.get("X-Goldengoose-Version")
        return None

    def push_releases(self, config: ChainConfig, repo: DemoRepo, secret: str) -> list[ReleaseRow]:
        """Steps 5 and 6: push v2 and v3, following each release to its end."""
        reader = PrefectReader(config.api_url)
        rows: list[ReleaseRow] = []
        for label, version, faults, expected, title in PLAN:
            sha = repo.commit(version, faults)
            row = ReleaseRow(label, version, sha, expected)
            rows.append(row)
            self.say(f"{title} — commit {sha[:7]}")
            pushed_at = time.monotonic()
            check_delivery(repo.push(secret))
            self.follow(reader, config, row, pushed_at)
            score = "-" if row.score is None else f"{row.score:g}"
            self.detail(f"{label}: {row.outcome_words} (score {score}) in {clock(row.seconds or 0)}")
            if row.outcome is None:
                break  # the chain is broken: a second push would only wait for the deadline
        return rows

    # following a release ------------------------------------------------------------------
    def follow(self, reader: PrefectReader, config: ChainConfig, row: ReleaseRow,
               pushed_at: float) -> None:  # fmt: skip
        """Poll the push's build and canary-release runs until final; fill in `row`."""
        progress = Progress(self.out)
        try:
            release = self._until_final(reader, config, row, pushed_at, progress)
        finally:
            progress.done()
            row.seconds = time.monotonic() - pushed_at
        if release is None:
            return
        ended = None
        wait_until = time.monotonic() + 25  # the server persists events every ~5 s
        while ended is None and time.monotonic() < wait_until:
            found = reader.release_end(APP, row.commit)
            ended = found.model if found is not None else None
            if ended is None:
                time.sleep(1.0)
        if ended is not None:
            row.record(ended)
        row.outcome, why = release_outcome(release, ended)
        row.reason = why if row.outcome is not row.expected else short_reason(ended)

    def _until_final(self, reader: PrefectReader, config: ChainConfig, row: ReleaseRow,
                     pushed_at: float, progress: Progress) -> FlowRun | None:  # fmt: skip
        """The final canary-release run; None (with `row.reason`) on a failed build or the
        deadline."""
        deadline = pushed_at + self.args.release_timeout
        runs = f"{config.ui_url}/runs"
        while True:
            build = reader.run_for("build", row.commit)
            release = reader.run_for("canary-release", row.commit) if build else None
            judgement = None
            if release is not None:
                row.url = f"{runs}/flow-run/{release.id}"
                judgement = judgement_text(reader.latest_artifact(release.id, INTERVAL_KEY))
            progress.update(time.monotonic() - pushed_at,
                            status_line(row.label, row.commit, build, release, judgement))  # fmt: skip
            if build and build.failed:
                row.url = f"{runs}/flow-run/{build.id}"
                row.reason = f"the build ended {build.state_name}: {build.message}".strip()
                return None
            if release and release.final:
                return release
            if time.monotonic() > deadline:
                where = row.url or (f"{runs}/flow-run/{build.id}" if build else runs)
                row.reason = (f"not final after {self.args.release_timeout:g} s; see the "
                              f"worker log {self.home / WORKER_LOG} and {where}")  # fmt: skip
                return None
            time.sleep(1.0)

    # the whole run ------------------------------------------------------------------------
    def run(self) -> int:
        """The whole demo; the exit code (0 only when v2 was promoted and v3 rolled back)."""
        self.say(f"prefect-canary demo in {self.home}")
        chain, config = self.start_chain()
        repo, v1 = self.make_repo(config)
        self.bootstrap(chain, config, repo, v1)
        self.say("4/6 steady load on production through HAProxy")
        self.start_load(chain, config)
        rows = self.push_releases(config, repo, config.webhook_secret)
        return self.report(rows, config, repo)

    def report(self, rows: list[ReleaseRow], config: ChainConfig, repo: DemoRepo) -> int:
        """Print the summary, the verdict and where to look next; the exit code."""
        code, why = verdict(rows)
        print(file=self.out)
        print(render_summary(rows), file=self.out)
        print(file=self.out)
        print(f"{'OK' if code == 0 else 'FAILED'}: {why} "
              f"(demo took {clock(time.monotonic() - self.t0)})", file=self.out)  # fmt: skip
        prometheus_url = f"http://127.0.0.1:{config.prometheus_port}"
        counts = release_metrics(lambda promql: _one_value(prometheus_url, promql))
        print(f"\n{render_release_metrics(counts, prometheus_url)}", file=self.out)
        print(f"\nThe stack stays up. Where to look in the Prefect UI ({config.ui_url}):",
              file=self.out)  # fmt: skip
        print(ui_guide(config), file=self.out)
        print(f"\nPush a release yourself: cd {repo.work}, edit VERSION (or faults.json), "
              "git commit -am ..., git push", file=self.out)  # fmt: skip
        print("Status: python -m demo status.  Stop everything: make demo-stop", file=self.out)
        return code


def _one_value(prometheus_url: str, promql: str) -> float | None:
    """The value of a query's one sample; None without one, or when Prometheus fails."""
    try:
        found = prometheus_query(prometheus_url, promql)
    except MetricsError:
        return None
    value = found[0].get("value") if len(found) == 1 else None
    return float(value[1]) if isinstance(value, list) and len(value) == 2 else None
