"""What the chain benches share: a private chain on free ports, pushes, waits and load.

Used by pipeline_latency.py, early_decisions.py and concurrent_releases.py. Runs, events
and task runs are read through the store's one reader (``store.reader.PrefectReader``),
as typed records; the few writes (pause schedules, switch an automation) through
``store.reader.PrefectAdmin``.
"""

from __future__ import annotations

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
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # runnable as a plain script

from canary.platforms.local import procs  # noqa: E402
from demo.chain import Chain, ChainConfig  # noqa: E402
from scripts.send_github_push import build_payload, sign  # noqa: E402
from store.reader import PrefectAdmin, PrefectReader  # noqa: E402
from store.records import FlowRun  # noqa: E402

APP = "goldengoose"
DEMO_PORTS = {4200, 8088, 18080, 18404, 19090}  # ChainConfig's defaults: never ours
LOAD_RATE = 60.0  # requests per second through HAProxy, as in the e2e tests
#: the deployments a bench releases through; every other scheduled one is paused
RELEASE_DEPLOYMENTS = {"build", "canary-release"}

T = TypeVar("T")


def say(line: str) -> None:
    """A progress line on stderr (stdout carries the results)."""
    print(f"[bench] {line}", file=sys.stderr, flush=True)


def missing_binary() -> str | None:
    """The first of prometheus, haproxy and git that is not installed, if any."""
    for binary in ("prometheus", "haproxy", "git"):
        if shutil.which(binary) is None and not Path(f"/usr/sbin/{binary}").exists():
            return binary
    return None


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
    """Run git in `repo` with a fixed identity; its stdout."""
    env = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid",
           "PATH": "/usr/bin:/bin", "HOME": str(repo)}  # fmt: skip
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          env=env, check=True, timeout=30)  # fmt: skip
    return done.stdout.strip()


def wait_for(what: str, check: Callable[[], T | None], timeout: float, every: float = 0.1) -> T:
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


def stop_load(proc: subprocess.Popen[bytes] | None) -> None:
    """Stop a load child (and its process group): SIGTERM, then SIGKILL after 10 s."""
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


def start_load(config: ChainConfig, seconds: float, log: Path) -> subprocess.Popen[bytes]:
    """Steady load (LOAD_RATE req/s) on the chain's app for `seconds`, in its own session."""
    argv = [sys.executable, "-m", "examples.goldengoose.load", "--url",
            f"http://127.0.0.1:{config.app_port}/", "--rate", str(LOAD_RATE),
            "--duration", str(seconds), "--deadline", str(seconds + 10)]  # fmt: skip
    with open(log, "ab") as out:
        return subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip


class TunedChain(Chain):
    """The demo chain with extra environment (e.g. worker polling) for every process."""

    def __init__(self, config: ChainConfig, extra_env: Mapping[str, str],
                 say: Callable[[str], None] = say) -> None:  # fmt: skip
        super().__init__(config, say=say)
        self.extra_env = dict(extra_env)

    def client_env(self) -> dict[str, str]:
        """The chain's client environment plus the extra one."""
        return {**super().client_env(), **self.extra_env}


class Bench:
    """One app's repository on a private chain: commits, timed pushes and their runs."""

    def __init__(self, chain: Chain, repo: Path, secret: str) -> None:
        self.chain = chain
        self.repo = repo
        self.secret = secret
        self.reader = PrefectReader(chain.config.api_url)
        self.admin = PrefectAdmin(chain.config.api_url)
        self.head = "0" * 40

    def commit(self, version: str, faults: Mapping[str, object] | None = None) -> str:
        """Commit `version` with `faults` (faults.json); its sha."""
        (self.repo / "VERSION").write_text(f"{version}\n")
        (self.repo / "faults.json").write_text(json.dumps(dict(faults or {})) + "\n")
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-qm", f"{APP} {version}")
        return git(self.repo, "rev-parse", "HEAD")

    def push(self, sha: str) -> tuple[float, float]:
        """(epoch just before the POST, epoch when the 202 arrived), see timed_push."""
        sent, accepted = timed_push(self.chain.config.relay_url, self.secret, self.repo,
                                    self.head, sha, timeout=15)  # fmt: skip
        self.head = sha
        return sent, accepted

    def final_run(self, deployment: str, sha: str, timeout: float) -> FlowRun:
        """The run of `deployment` for `sha`, once it has ended (TimeoutError after `timeout`)."""
        def done() -> FlowRun | None:
            run = self.reader.run_for(deployment, sha)
            return run if run is not None and run.final else None

        return wait_for(f"{deployment} run for {sha[:12]} final", done, timeout, every=0.5)

    def state_times(self, run: FlowRun) -> dict[str, float | None]:
        """When the run was created, first Pending, first Running, and when it ended."""
        states = self.reader.run_states(run.id)

        def first(kind: str) -> float | None:
            return next((s.at for s in states if s.type == kind), None)

        return {"created": run.created, "pending": first("PENDING"),
                "running": first("RUNNING") or run.start, "end": run.end}  # fmt: skip

    def pause_scheduled(self) -> None:
        """Pause every scheduled deployment but build and canary-release (the re-analysis)."""
        paused = self.admin.pause_scheduled(keep=RELEASE_DEPLOYMENTS)
        if paused:
            say(f"paused scheduled deployments for the bench: {', '.join(paused)}")

    def bootstrap(self, faults: Mapping[str, object] | None = None) -> str:
        """Commit v1.0.0 and put it into production directly; its sha."""
        v1 = self.commit("1.0.0", faults)
        subprocess.run([sys.executable, "scripts/bootstrap_production.py", "--repo",
                        str(self.repo), "--commit", v1], cwd=ROOT, env=self.chain.client_env(),
                       check=True, capture_output=True, timeout=120)  # fmt: skip
        self.head = v1
        return v1


@dataclass
class Session:
    """A private chain, its bench and home, and the load running on it (if started)."""

    chain: TunedChain
    bench: Bench
    config: ChainConfig
    home: Path
    load: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the chain and pause the scheduled deployments."""
        t0 = time.monotonic()
        self.chain.start()
        say(f"chain up in {time.monotonic() - t0:.1f} s (home {self.home})")
        self.bench.pause_scheduled()


def private_chain(prefix: str, extra: Mapping[str, str]) -> Session:
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
    return Session(chain, Bench(chain, repo, secret), config, home)


@contextlib.contextmanager
def private_session(prefix: str, extra: Mapping[str, str], *, keep: bool,
                    kept: Callable[[Path], str]) -> Iterator[Session]:  # fmt: skip
    """A private chain for the duration of a bench, always cleaned up.

    On the way out the load stops; the chain is stopped by its own stop() unless `keep`
    (then `kept(home)` is said); the home is removed after a clean run, else its logs kept.
    """
    session = private_chain(prefix, extra)
    ok = False
    try:
        yield session
        ok = True
    finally:
        stop_load(session.load)
        if keep:
            say(kept(session.home))
        else:
            say(f"stopped: {', '.join(session.chain.stop())}")
            if ok:
                shutil.rmtree(session.home, ignore_errors=True)
            else:
                say(f"logs kept in {session.home / 'logs'}")
