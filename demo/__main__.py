"""``python -m demo [run|stop|status]``: the whole canary chain on this machine (``make demo``).

``run`` (the default) starts the chain (Prefect server, blocks, HAProxy + Prometheus,
deployments and their automations, a process worker, the webhook relay; parts already running
and ours are reused), creates a fresh goldengoose git repository whose ``post-receive`` hook
sends signed GitHub-format webhooks to the relay, puts v1 into production under steady load,
then pushes v2 (good) and v3 (+60 ms latency) and follows each release live. It ends with a
summary table and exits 0 only if v2 was promoted and v3 rolled back. The stack stays up.

``stop`` stops exactly what the demo started (by verified pid); ``status`` shows what runs.
Everything lives in ``.demo/`` of the repository. The webhook secret comes from
GITHUB_WEBHOOK_SECRET or is generated once into ``.demo/secret`` (mode 600); it is never
printed and never written anywhere else.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx

from canary.platforms.local import procs
from demo.chain import ROOT, Chain, ChainConfig, ChainError
from demo.hooks import SECRET_ENV, install_post_receive

APP = "goldengoose"
DEFAULT_HOME = ROOT / ".demo"
DEPLOYMENTS = ("build", "canary-release")
FINAL = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})
ACTIVE = frozenset({"SCHEDULED", "PENDING", "RUNNING", "CANCELLING", "PAUSED"})
PROMOTED, ROLLED_BACK, FAILED = "promoted", "rolled back", "failed"
WORKER_LOG = "logs/worker.log"
INTERVAL_KEY = f"canary-interval-{APP}"
_DEFAULTS = ChainConfig(home=DEFAULT_HOME)

#: (ChainConfig attribute, command-line flag, what listens there, which recorded part owns it)
PORTS: tuple[tuple[str, str, str], ...] = (
    ("prefect_port", "--prefect-port", "Prefect server (API + UI)"),
    ("relay_port", "--relay-port", "webhook relay"),
    ("app_port", "--app-port", f"HAProxy frontend of {APP}"),
    ("stats_port", "--stats-port", "HAProxy stats/metrics"),
    ("prometheus_port", "--prometheus-port", "Prometheus"),
)


class DemoError(RuntimeError):
    """The demo cannot go on; the message says why and what to do."""


# -- arguments -------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m demo",
        description="The whole canary chain on this machine: make demo / make demo-stop.",
    )
    p.add_argument("command", nargs="?", default="run", choices=("run", "stop", "status"),
                   help="run the demo (default), stop what it started, or show what runs")  # fmt: skip
    p.add_argument("--home", type=Path, default=DEFAULT_HOME,
                   help=f"state, logs and repositories (default {DEFAULT_HOME})")  # fmt: skip
    for attr, flag, what in PORTS:
        default = getattr(_DEFAULTS, attr)
        p.add_argument(flag, dest=attr, type=_port, default=default,
                       help=f"{what} on 127.0.0.1 (default {default})")  # fmt: skip
    p.add_argument("--db", choices=("sqlite", "postgres"), default=_DEFAULTS.db,
                   help="the Prefect server's database: embedded SQLite (default) or a "
                        "PostgreSQL cluster of the demo's own, under --home")  # fmt: skip
    p.add_argument("--db-port", dest="db_port", type=_port, default=_DEFAULTS.db_port,
                   help=f"PostgreSQL on 127.0.0.1, with --db postgres (default {_DEFAULTS.db_port})")  # fmt: skip
    p.add_argument("--rate", type=float, default=60.0,
                   help="steady production load, requests per second (default 60)")  # fmt: skip
    p.add_argument("--load-duration", type=float, default=900.0,
                   help="seconds of load before it stops by itself (default 900)")  # fmt: skip
    p.add_argument("--release-timeout", type=float, default=360.0,
                   help="seconds a push may take until its release is final (default 360)")  # fmt: skip
    return p.parse_args(argv)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not between 1 and 65535")
    return value


def chain_config(args: argparse.Namespace, secret: str = "") -> ChainConfig:
    ports = {attr: getattr(args, attr) for attr, _, _ in PORTS}
    return ChainConfig(home=args.home.resolve(), app=APP, webhook_secret=secret,
                       db=getattr(args, "db", "sqlite"), db_port=getattr(args, "db_port", 15432),
                       **ports)  # fmt: skip


def port_settings(config: ChainConfig) -> dict[str, int]:
    return {attr: int(getattr(config, attr)) for attr, _, _ in PORTS}


# -- the webhook secret ----------------------------------------------------------------------
def webhook_secret(home: Path, environ: Mapping[str, str] = os.environ) -> tuple[str, str]:
    """(secret, where it came from): the environment, else ``<home>/secret`` (made once)."""
    if environ.get(SECRET_ENV):
        return environ[SECRET_ENV], f"${SECRET_ENV}"
    path = home / "secret"
    if path.exists():
        path.chmod(0o600)
        kept = path.read_text().strip()
        if kept:
            return kept, str(path)
    home.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".secret.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        value = secrets.token_hex(32)
        os.write(fd, value.encode() + b"\n")
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return value, f"{path} (new)"


# -- what is ours: records of the chain, the load and the local stack ------------------------
class Records:
    """The demo's own record file (``<home>/demo.json``: settings, the load process) and a
    read-only view of the chain's and the local stack's records."""

    def __init__(self, home: Path) -> None:
        self.home = home.resolve()
        self.file = self.home / "demo.json"

    def read(self) -> dict[str, Any]:
        return procs.read_json(self.file, {}) or {}

    def update(self, **items: Any) -> None:
        data = self.read()
        for key, value in items.items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        procs.write_json(self.file, data)

    def load(self) -> procs.ProcessRecord | None:
        raw = self.read().get("load")
        return procs.ProcessRecord.from_json(raw) if raw else None

    def chain_parts(self) -> dict[str, procs.ProcessRecord]:
        raw = procs.read_json(self.home / "chain.json", {}) or {}
        return {name: procs.ProcessRecord.from_json(rec) for name, rec in raw.items()}

    def stack_parts(self) -> dict[str, procs.ProcessRecord]:
        out = {}
        for name in ("haproxy", "prometheus"):
            doc = procs.read_json(self.home / "local" / "stack" / f"{name}.pid.json")
            if doc and doc.get("process"):
                out[name] = procs.ProcessRecord.from_json(doc["process"])
        return out

    def running(self) -> dict[str, procs.ProcessRecord]:
        """Every recorded process of the demo that is still the very process recorded."""
        parts = {**self.chain_parts(), **self.stack_parts()}
        if (load := self.load()) is not None:
            parts["load"] = load
        return {name: rec for name, rec in parts.items() if procs.is_ours(rec)}


# -- ports -----------------------------------------------------------------------------------
def listening_inodes(port: int) -> set[int]:
    """Socket inodes listening on TCP `port` (any address, IPv4 or IPv6) in this netns."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                found.add(int(cols[9]))
    return found


def listening_holders(port: int) -> dict[int, str] | None:
    """{pid: command line} of processes listening on `port`; None when nothing listens.
    An empty dict means something listens but its process is not visible to this user."""
    inodes = listening_inodes(port)
    if not inodes:
        return None
    wanted = {f"socket:[{i}]" for i in inodes}
    holders: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        links = set()
        for fd in fds:  # one may close while we look (our own listing's fd does)
            with contextlib.suppress(OSError):
                links.add(os.readlink(fd))
        if links & wanted:
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                cmd = "?"
            holders[int(entry.name)] = cmd.strip() or "?"
    return holders


def session_of(pid: int) -> int | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(raw[raw.rindex(")") + 2 :].split()[3])


def _free_suggestion(port: int, taken: set[int]) -> int:
    for candidate in range(port + 1, min(port + 200, 65535)):
        if candidate not in taken and not listening_inodes(candidate):
            return candidate
    return port + 1


def port_conflicts(
    ports: Mapping[str, int],
    our_sessions: set[int],
    *,
    holders_of: Callable[[int], dict[int, str] | None] = listening_holders,
    sessions: Callable[[int], int | None] = session_of,
) -> list[str]:
    """One message per port (keyed by ChainConfig attribute) that something not ours holds.

    A listener is ours when its process belongs to the session of a process the demo
    recorded (every part is started as the leader of its own session).
    """
    problems = []
    by_attr = {attr: (flag, what) for attr, flag, what in PORTS}
    seen: dict[int, str] = {}
    for attr, port in ports.items():
        flag, what = by_attr[attr]
        if port in seen:
            problems.append(f"port {port} is given for both {seen[port]} and {flag}: "
                            f"every part needs its own port")  # fmt: skip
            continue
        seen[port] = flag
        holders = holders_of(port)
        if holders is None:
            continue
        if holders and all(sessions(pid) in our_sessions for pid in holders):
            continue
        who = ", ".join(f"pid {pid} ({cmd[:80]})" for pid, cmd in sorted(holders.items()))
        who = who or "a process this user cannot see"
        other = _free_suggestion(port, set(ports.values()))
        problems.append(
            f"port {port} ({what}) is already in use by {who}, which this demo did not start.\n"
            f"    Free it (stop that process; `ss -ltnp 'sport = :{port}'` shows it), or run the "
            f"demo on another port:\n"
            f"    make demo DEMO_ARGS='{flag} {other}'   (or: python -m demo {flag} {other})"
        )
    return problems


# -- git -------------------------------------------------------------------------------------
def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A predictable git: no user/system config (hooksPath, signing), a fixed identity."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", SECRET_ENV)}  # fmt: skip
    env.update({
        "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "canary demo", "GIT_AUTHOR_EMAIL": "demo@example.invalid",
        "GIT_COMMITTER_NAME": "canary demo", "GIT_COMMITTER_EMAIL": "demo@example.invalid",
    })  # fmt: skip
    env.update(extra or {})
    return env


def git(*args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, env=dict(env or git_env()),
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    if done.returncode != 0:
        raise DemoError(f"git {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return (done.stdout + done.stderr).strip()


@dataclass
class DemoRepo:
    bare: Path
    work: Path

    def create(self, source: Path) -> None:
        """A fresh bare repository and a fresh working clone holding the app's files."""
        for path in (self.bare, self.work):
            if path.exists():
                shutil.rmtree(path)
        self.bare.parent.mkdir(parents=True, exist_ok=True)
        git("init", "-q", "--bare", "-b", "main", str(self.bare))
        # The repository's own config wins over anyone's core.hooksPath: our hook runs.
        git("--git-dir", str(self.bare), "config", "core.hooksPath", str(self.bare / "hooks"))
        shutil.copytree(source, self.work,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))  # fmt: skip
        git("init", "-q", "-b", "main", cwd=self.work)
        git("remote", "add", "origin", str(self.bare), cwd=self.work)

    def commit(self, version: str, faults: Mapping[str, Any]) -> str:
        (self.work / "VERSION").write_text(f"{version}\n")
        (self.work / "faults.json").write_text(json.dumps(dict(faults)) + "\n")
        git("add", "-A", cwd=self.work)
        git("commit", "-q", "-m", f"goldengoose {version}", cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)

    def push(self, secret: str | None = None) -> str:
        """`git push` of main; the hook (if installed) gets the secret from this environment."""
        extra = {SECRET_ENV: secret} if secret else {}
        return git("push", "-q", "origin", "main", cwd=self.work, env=git_env(extra))


_DELIVERY = re.compile(r"delivery \S+ \S+ [0-9a-f]{12} -> (\d{3}|unreachable)")


def check_delivery(push_output: str) -> None:
    """Raise unless the hook's output shows a 2xx answer of the relay."""
    answers = _DELIVERY.findall(push_output)
    if not answers or not all(a.isdigit() and 200 <= int(a) < 300 for a in answers):
        raise DemoError("the post-receive hook did not deliver the push to the relay:\n"
                        + (push_output or "(no output from the hook)"))  # fmt: skip


# -- the Prefect REST API --------------------------------------------------------------------
class Api:
    def __init__(self, api_url: str) -> None:
        self.http = httpx.Client(base_url=api_url, timeout=10)

    def _post(self, path: str, body: Mapping[str, Any]) -> Any:
        answer = self.http.post(path, json=body)
        answer.raise_for_status()
        return answer.json()

    def runs(self, deployments: Sequence[str] = DEPLOYMENTS, limit: int = 100) -> list[dict]:
        return self._post("/flow_runs/filter", {
            "deployments": {"name": {"any_": list(deployments)}},
            "sort": "EXPECTED_START_TIME_DESC", "limit": limit,
        })  # fmt: skip

    def run_for(self, deployment: str, commit: str) -> dict[str, Any] | None:
        found = [r for r in self.runs([deployment]) if r["parameters"].get("commit") == commit]
        return found[0] if found else None

    def active_runs(self) -> list[dict[str, Any]]:
        now = time.time()
        out = []
        for run in self.runs():
            if run["state_type"] not in ACTIVE:
                continue
            expected = _epoch(run.get("expected_start_time"))
            if run["state_type"] == "SCHEDULED" and expected is not None and expected > now + 5:
                continue  # a future scheduled run, not a leftover
            out.append(run)
        return out

    def cancel(self, run_id: str, message: str) -> None:
        self._post(f"/flow_runs/{run_id}/set_state", {
            "state": {"type": "CANCELLED", "name": "Cancelled", "message": message},
            "force": True,
        })  # fmt: skip

    def latest_judgement(self, run_id: str) -> str | None:
        """`judgement #2 score 100 → Pass` from the run's newest canary-interval table, if any."""
        found = self._post("/artifacts/filter", {
            "artifacts": {"flow_run_id": {"any_": [run_id]}, "key": {"any_": [INTERVAL_KEY]}},
            "sort": "CREATED_DESC", "limit": 1,
        })  # fmt: skip
        if not found:
            return None
        text = found[0].get("description") or ""
        m = re.search(r"judgement #(\d+): score ([-\d.]+) → (\w+)", text)
        return f"judgement #{m[1]} score {m[2]} → {m[3]}" if m else "judged"

    def release_event(self, commit: str) -> dict[str, Any] | None:
        body = {"filter": {"event": {"prefix": ["canary.release."]},
                           "any_resource": {"id": [f"canary.app.{APP}"]}},
                "limit": 50}  # fmt: skip
        events = self._post("/events/filter", body).get("events", [])
        found = [e for e in events if e.get("payload", {}).get("commit") == commit]
        return found[0] if found else None


def _epoch(text: str | None) -> float | None:
    if not text:
        return None
    from datetime import datetime

    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    return None


# -- progress --------------------------------------------------------------------------------
def clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def status_line(label: str, commit: str, build: Mapping[str, Any] | None,
                release: Mapping[str, Any] | None, judgement: str | None) -> str:  # fmt: skip
    """What each run of one push is doing, e.g. `v2 1a2b3c4: build Completed · canary-release
    Running · judgement #2 score 100 → Pass`."""
    parts = [f"{label} {commit[:7]}:"]
    parts.append(f"build {build['state_name']}" if build else "waiting for the build run")
    if build and build.get("state_type") == "COMPLETED":
        parts.append(f"· canary-release {release['state_name']}" if release
                     else "· waiting for the canary-release run")  # fmt: skip
    if judgement:
        parts.append(f"· {judgement}")
    return " ".join(parts)


class Progress:
    """One line rewritten in place on a terminal; plain lines (on change, or every `every`
    seconds) otherwise, so logs of `make demo > file` stay readable."""

    def __init__(self, stream: TextIO = sys.stdout, *, tty: bool | None = None,
                 every: float = 15.0) -> None:  # fmt: skip
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.every = every
        self._last_key: str | None = None
        self._last_time = 0.0
        self._open = False

    def update(self, elapsed: float, text: str) -> None:
        line = f"  [+{clock(elapsed)}] {text}"  # time since the push
        if self.tty:
            width = shutil.get_terminal_size((120, 20)).columns - 1
            self.stream.write("\r" + line[:width] + "\x1b[K")
            self.stream.flush()
            self._open = True
            return
        now = time.monotonic()
        if text != self._last_key or now - self._last_time >= self.every:
            self.stream.write(line + "\n")
            self.stream.flush()
            self._last_key, self._last_time = text, now

    def done(self) -> None:
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False
        self._last_key = None


# -- the summary -----------------------------------------------------------------------------
#: Every demo version answers like a real service: 20 ms plus exponential jitter of mean
#: 10 ms (p50 ~27 ms, p99 ~66 ms); v3 adds 60 ms. Kept in each commit's faults.json.
PRODUCTION_LIKE = {"base_latency_ms": 20, "jitter_ms": 10, "jitter_dist": "exponential"}


@dataclass
class ReleaseRow:
    label: str  # v2, v3
    version: str
    commit: str
    expected: str  # promoted / rolled back
    outcome: str = FAILED
    score: float | None = None
    url: str = ""
    reason: str = ""
    seconds: float | None = None
    #: analysis time until the decision, and the number of looks it took
    decided: float | None = None
    looks: int | None = None
    #: the analysis time the release spec planned (its lifetime)
    lifetime: float | None = None

    @property
    def decision(self) -> str:
        if self.decided is None or self.looks is None:
            return "-"
        return f"{clock(self.decided)} ({self.looks} look{'s' if self.looks != 1 else ''})"

    @property
    def saved(self) -> str:
        """Analysis time the early decision saved (of the planned lifetime)."""
        if self.decided is None or self.lifetime is None:
            return "-"
        return clock(max(0.0, self.lifetime - self.decided))


def _why(event: dict[str, Any] | None) -> str:
    """The release's own reason, shortened for the summary: what decided it and when."""
    if event is None:
        return ""
    reason = str(event["payload"].get("reason") or "")
    return reason if len(reason) <= 400 else reason[:399] + "…"


def render_summary(rows: Sequence[ReleaseRow]) -> str:
    """The summary table (plain text, fixed-width columns) plus one line per reason."""
    header = ("release", "commit", "version", "outcome", "expected", "score", "decided after",
              "saved", "time", "flow run")  # fmt: skip
    body = [
        (r.label, r.commit[:7], r.version, r.outcome, r.expected,
         "-" if r.score is None else f"{r.score:g}", r.decision, r.saved,
         "-" if r.seconds is None else clock(r.seconds), r.url or "-")
        for r in rows
    ]  # fmt: skip
    widths = [max(len(str(line[i])) for line in (header, *body)) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header).rstrip(), fmt.format(*("-" * w for w in widths)).rstrip()]
    lines += [fmt.format(*line).rstrip() for line in body]
    lines += [f"{r.label}: {r.reason}" for r in rows if r.reason]
    return "\n".join(lines)


#: The release run's final state names (flows/canary_release.py): Promoted is of type
#: Completed, RolledBack of type Failed (alerting on failed runs sees it).
RUN_OUTCOMES = {"Promoted": PROMOTED, "RolledBack": ROLLED_BACK}
EVENT_OUTCOMES = {"promoted": PROMOTED, "rolled-back": ROLLED_BACK}


def release_outcome(run: dict[str, Any], event: dict[str, Any] | None) -> tuple[str, str]:
    """(outcome, why) of a final canary-release run and its canary.release.* event: promoted
    or rolled back only when the run's state and the event agree; else FAILED, saying what
    the run ended as (a crash, a skip, a missing or contradicting event)."""
    state, message = run["state_name"], (run.get("state") or {}).get("message") or ""
    by_run = RUN_OUTCOMES.get(state)
    if by_run is None:
        return FAILED, f"canary-release ended {state}" + (f": {message}" if message else "")
    if event is None:
        return FAILED, f"the release ended {state} but no canary.release.* event was found"
    kind = event["event"].removeprefix("canary.release.")
    if EVENT_OUTCOMES.get(kind) != by_run:
        return FAILED, f"the release ended {state} but its event says {kind}"
    reason = event["payload"].get("reason") or message
    return by_run, f"{by_run}: {reason}"


def verdict(rows: Sequence[ReleaseRow]) -> tuple[int, str]:
    """(exit code, why): 0 only when v2 was promoted AND v3 rolled back."""
    outcomes = {r.label: r.outcome for r in rows}
    wrong = []
    for label, want in (("v2", PROMOTED), ("v3", ROLLED_BACK)):
        got = outcomes.get(label)
        if got != want:
            wrong.append(f"{label} should be {want} but " +
                         (f"was {got}" if got else "was not released"))  # fmt: skip
    if wrong:
        return 1, "; ".join(wrong)
    return 0, "v2 (good) was promoted and v3 (latency regression) rolled back, as expected"


def ui_guide(config: ChainConfig) -> str:
    ui = config.ui_url
    rows = [
        ("flow runs", f"{ui}/runs", "build and canary-release runs: logs, task runs, results"),
        ("deployments", f"{ui}/deployments", "build, canary-release (their triggers)"),
        ("automations", f"{ui}/automations",
         "build-on-github-push, canary-release-on-build-succeeded"),
        ("event feed", f"{ui}/events",
         "github.push → canary.build.succeeded → canary.release.promoted/rolled-back"),
        ("artifacts", f"{ui}/artifacts",
         f"{INTERVAL_KEY} (one table per judgement), canary-report-{APP}"),
        ("Prometheus", f"http://127.0.0.1:{config.prometheus_port}/graph", "scraped metrics"),
        ("production", f"http://127.0.0.1:{config.app_port}/", f"{APP} through HAProxy"),
    ]  # fmt: skip
    width = max(len(r[1]) for r in rows)
    return "\n".join(f"  {name:<12} {url:<{width}}  {what}" for name, url, what in rows)


# -- the run ---------------------------------------------------------------------------------
@dataclass
class Demo:
    args: argparse.Namespace
    out: TextIO = field(default=sys.stdout)

    def __post_init__(self) -> None:
        self.t0 = time.monotonic()
        self.home = self.args.home.resolve()
        self.records = Records(self.home)
        self.started = False  # True once the chain was (re)started: the stack is up

    def say(self, text: str) -> None:
        print(f"[{clock(time.monotonic() - self.t0)}] {text}", file=self.out, flush=True)

    def detail(self, text: str) -> None:
        print(f"       {text}", file=self.out, flush=True)

    # preflight ------------------------------------------------------------------------
    def preflight(self, config: ChainConfig) -> None:
        missing = [b for b, path in (("git", shutil.which("git")),
                                     ("haproxy", "/usr/sbin/haproxy"),
                                     ("prometheus", "/usr/bin/prometheus"))
                   if not path or not Path(path).exists()]  # fmt: skip
        if missing:
            raise DemoError(f"missing: {', '.join(missing)}; run `make setup` (installs them)")
        wanted = port_settings(config)
        running = self.records.running()
        kept = self.records.read().get("settings")
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
        """A signed ping: 401 means the running relay holds another secret."""
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

    def settle_leftovers(self, api: Api, worker_was_running: bool, timeout: float) -> None:
        """Runs of an earlier demo: wait for live ones, cancel orphans of a dead worker."""
        left = api.active_runs()
        if not left:
            return
        if not worker_was_running:
            for run in left:
                api.cancel(run["id"], "left behind by a stopped demo worker")
            self.detail(f"cancelled {len(left)} run(s) left behind by an earlier demo")
            return
        self.detail(f"waiting for {len(left)} run(s) of an earlier demo to finish")
        deadline = time.monotonic() + timeout
        while api.active_runs():
            if time.monotonic() > deadline:
                raise DemoError("runs of an earlier demo did not finish; see "
                                f"{self.home / WORKER_LOG} or run `make demo-stop`")  # fmt: skip
            time.sleep(2)

    # steps ----------------------------------------------------------------------------
    def start_load(self, chain: Chain, config: ChainConfig) -> None:
        old = self.records.load()
        if old is not None and procs.stop(old, timeout=10):
            self.detail(f"stopped the load of an earlier run (pid {old.pid})")
        url = f"http://127.0.0.1:{config.app_port}/"
        argv = [
            sys.executable,
            "-m",
            "examples.goldengoose.load",
            "--url",
            url,
            "--rate",
            f"{self.args.rate:g}",
            "--duration",
            f"{self.args.load_duration:g}",
        ]
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
        with contextlib.suppress(httpx.HTTPError):
            answer = httpx.get(f"http://127.0.0.1:{config.app_port}/", timeout=3)
            return answer.headers.get("X-Goldengoose-Version")
        return None

    def follow(self, api: Api, config: ChainConfig, row: ReleaseRow, pushed_at: float) -> None:
        """Poll the push's build and canary-release runs until final; fill in `row`."""
        progress = Progress(self.out)
        deadline = pushed_at + self.args.release_timeout
        build = release = None
        try:
            while True:
                build = api.run_for("build", row.commit)
                release = api.run_for("canary-release", row.commit) if build else None
                judgement = None
                if release is not None:
                    row.url = f"{config.ui_url}/runs/flow-run/{release['id']}"
                    judgement = api.latest_judgement(release["id"])
                progress.update(
                    time.monotonic() - pushed_at,
                    status_line(row.label, row.commit, build, release, judgement),
                )
                if build and build["state_type"] in FINAL and build["state_type"] != "COMPLETED":
                    row.url = f"{config.ui_url}/runs/flow-run/{build['id']}"
                    row.reason = (
                        f"the build ended {build['state_name']}: "
                        f"{(build.get('state') or {}).get('message') or ''}"
                    ).strip()
                    return
                if release and release["state_type"] in FINAL:
                    break
                if time.monotonic() > deadline:
                    where = row.url or (f"{config.ui_url}/runs/flow-run/{build['id']}" if build
                                        else f"{config.ui_url}/runs")  # fmt: skip
                    row.reason = (
                        f"not final after {self.args.release_timeout:g} s; see the "
                        f"worker log {self.home / WORKER_LOG} and {where}"
                    )
                    return
                time.sleep(1.0)
        finally:
            progress.done()
            row.seconds = time.monotonic() - pushed_at
        assert release is not None
        event = None
        wait_until = time.monotonic() + 25  # the server persists events every ~5 s
        while event is None and time.monotonic() < wait_until:
            event = api.release_event(row.commit)
            if event is None:
                time.sleep(1.0)
        if event is not None:
            row.score = event["payload"].get("score")
            row.decided = event["payload"].get("decision_seconds")
            row.looks = event["payload"].get("judgements")
            row.lifetime = event["payload"].get("lifetime_seconds")
        row.outcome, why = release_outcome(release, event)
        row.reason = why if row.outcome != row.expected else _why(event)

    def run(self) -> int:
        self.say(f"prefect-canary demo in {self.home}")
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
        api = Api(config.api_url)
        self.settle_leftovers(api, worker_was_running, self.args.release_timeout)

        self.say(f"2/6 fresh git repository {self.home / 'git' / (APP + '.git')} "
                 f"with a post-receive hook → {config.relay_url}")  # fmt: skip
        repo = DemoRepo(self.home / "git" / f"{APP}.git", self.home / "work" / APP)
        repo.create(ROOT / "examples" / APP)
        v1 = repo.commit("1.0.0", PRODUCTION_LIKE)
        repo.push()  # before the hook exists: v1 goes to production directly, not as a release
        hook = install_post_receive(repo.bare, relay_url=config.relay_url,
                                    secret_file=self.home / "secret")  # fmt: skip
        self.detail(f"working clone {repo.work}; hook {hook} (reads the secret at run time)")

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

        self.say("4/6 steady load on production through HAProxy")
        self.start_load(chain, config)

        rows: list[ReleaseRow] = []
        plan = [
            (
                "v2",
                "2.0.0",
                PRODUCTION_LIKE,
                PROMOTED,
                "5/6 push v2 (2.0.0, good): build, then a judged canary release",
            ),
            (
                "v3",
                "3.0.0",
                {**PRODUCTION_LIKE, "added_latency_ms": 60},
                ROLLED_BACK,
                "6/6 push v3 (3.0.0, +60 ms latency): build, then a judged canary release",
            ),
        ]
        for label, version, faults, expected, title in plan:
            sha = repo.commit(version, faults)
            row = ReleaseRow(label, version, sha, expected)
            rows.append(row)
            self.say(f"{title} — commit {sha[:7]}")
            pushed_at = time.monotonic()
            output = repo.push(secret)
            check_delivery(output)
            self.follow(api, config, row, pushed_at)
            score = "-" if row.score is None else f"{row.score:g}"
            self.detail(f"{label}: {row.outcome} (score {score}) in {clock(row.seconds or 0)}")
            if row.outcome == FAILED:
                break  # the chain is broken: a second push would only wait for the deadline

        code, why = verdict(rows)
        print(file=self.out)
        print(render_summary(rows), file=self.out)
        print(file=self.out)
        print(
            f"{'OK' if code == 0 else 'FAILED'}: {why} "
            f"(demo took {clock(time.monotonic() - self.t0)})",
            file=self.out,
        )
        print(f"\nThe stack stays up. Where to look in the Prefect UI ({config.ui_url}):",
              file=self.out)  # fmt: skip
        print(ui_guide(config), file=self.out)
        print(f"\nPush a release yourself: cd {repo.work}, edit VERSION (or faults.json), "
              "git commit -am ..., git push", file=self.out)  # fmt: skip
        print("Status: python -m demo status.  Stop everything: make demo-stop", file=self.out)
        return code


# -- status and stop -------------------------------------------------------------------------
def _stack_status(home: Path) -> dict[str, Any]:
    from canary.platforms.local.stack import LocalStack

    state = home / "local"
    if not state.exists():
        return {}
    return LocalStack.from_state(state).status()


def _hhmmss(epoch: float) -> str:
    return time.strftime("%H:%M:%SZ", time.gmtime(epoch))


def restart_note(part: Mapping[str, Any] | None) -> str:
    """`restarts 1, last 07:13:36Z: pid 28589 was killed by SIGKILL` (+ why it failed)."""
    if not part:
        return ""
    note = f"restarts {part.get('restarts', 0)}"
    if part.get("last_restart"):
        note += f", last {_hhmmss(part['last_restart'])}: {part.get('last_reason') or '?'}"
    if part.get("health") == "failed":
        note += f"; FAILED: {part.get('detail')}"
    elif part.get("health") == "restarting" and part.get("last_error"):
        note += f"; retrying after: {part['last_error']}"
    return note


def _line(name: str, state: str, *extras: str) -> str:
    extra = " · ".join(e for e in extras if e)
    return f"  {name:<15} {state:<22} {extra}".rstrip()


def status(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    from canary.platforms.local.supervisor import health_now, read_status

    home = args.home.resolve()
    records = Records(home)
    running = records.running()
    settings = records.read().get("settings") or {}
    urls = {
        "prefect-server": f"http://127.0.0.1:{settings.get('prefect_port', '?')}",
        "relay": f"http://127.0.0.1:{settings.get('relay_port', '?')}/github",
        "prometheus": f"http://127.0.0.1:{settings.get('prometheus_port', '?')}",
        "haproxy": f"{APP} on http://127.0.0.1:{settings.get('app_port', '?')}/",
        "load": f"steady load on http://127.0.0.1:{settings.get('app_port', '?')}/",
    }
    sup = read_status(home / "local")
    # Restarting/failed only from a supervisor that runs; its counts are history either way.
    parts = (sup.get("parts") or {}) if sup.get("running") else {}
    notes = sup.get("parts") or {}
    print(f"demo in {home}", file=out)
    chain = records.chain_parts()  # (the load is not among them: it ends by itself)
    for name in ("prefect-server", "worker", "relay", "load", "supervisor"):
        rec = running.get(name)
        dead = chain.get(name)  # recorded, but no longer that process
        state = (f"running (pid {rec.pid})" if rec
                 else f"dead (pid {dead.pid})" if dead else "not running")  # fmt: skip
        extra = urls.get(name, "") if rec else ""
        if name == "supervisor" and rec and sup.get("age") is not None:
            every = float(sup.get("interval") or 2)
            late = sup["age"] > 5 * every + 30  # a restart may take a while (ready timeouts)
            extra = (f"{'STALE: ' if late else ''}checks every {every:g} s, last "
                     f"{sup['age']:g} s ago; log {home / 'local' / 'stack' / 'supervisor.log'}")  # fmt: skip
        print(_line(name, state, extra), file=out)
    recorded = records.stack_parts()
    for name in ("haproxy", "prometheus"):
        rec = running.get(name) or recorded.get(name)
        health = health_now((name in running) if name in recorded else None, parts.get(name))
        pid = rec.pid if rec else (parts.get(name) or {}).get("pid")
        state = f"{health} (pid {pid})" if pid else health
        print(_line(name, state, urls[name] if name in running else "", restart_note(notes.get(name))),
              file=out)  # fmt: skip
    for app, entry in sorted(_stack_status(home).get("apps", {}).items()):
        part = f"production/{app}"
        for w in entry.get("workloads", []):
            health = "running" if w.get("alive") else "dead"
            note = ""
            if w["role"] == "primary":
                health = health_now(bool(w.get("alive")), parts.get(part))
                note = restart_note(notes.get(part))
            print(_line(f"{app} {w['role']}", f"{health} (pid {w['pid']})",
                        f"version {w.get('version')} on port {w.get('port')}", note), file=out)  # fmt: skip
        if not any(w["role"] == "primary" for w in entry.get("workloads", [])) and part in notes:
            print(_line(f"{app} primary", health_now(None, parts.get(part)),
                        (notes[part].get("detail") or ""), restart_note(notes[part])), file=out)  # fmt: skip
    return 0


def stop(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    home = args.home.resolve()
    records = Records(home)
    if not home.exists():
        print(f"nothing to stop: {home} does not exist", file=out)
        return 0
    stopped: list[str] = []
    load = records.load()
    if load is not None and procs.stop(load, timeout=10):
        stopped.append(f"load generator (pid {load.pid})")
    records.update(load=None)
    before = records.running()
    workloads = [
        f"{app} {w['role']} (pid {w['pid']})"
        for app, entry in sorted(_stack_status(home).get("apps", {}).items())
        for w in entry.get("workloads", []) if w.get("alive")
    ]  # fmt: skip
    chain = Chain(ChainConfig(home=home))
    try:
        chain.stop()
    except ChainError as exc:
        print(f"stopping the local stack failed: {exc}", file=out)
        return 1
    after = records.running()
    for name in ("supervisor", "relay", "worker", "prefect-server", "prometheus", "haproxy"):
        if name in before and name not in after:
            stopped.append(f"{name} (pid {before[name].pid})")
    stopped += workloads
    records.update(settings=None)
    if stopped:
        print("stopped:", file=out)
        for item in stopped:
            print(f"  {item}", file=out)
    else:
        print("nothing was running", file=out)
    left = records.running()
    if left:
        print("still running: " + ", ".join(f"{n} (pid {r.pid})" for n, r in left.items()),
              file=out)  # fmt: skip
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "stop":
        return stop(args)
    if args.command == "status":
        return status(args)
    demo = Demo(args)
    try:
        return demo.run()
    except (DemoError, ChainError, httpx.HTTPError, subprocess.TimeoutExpired) as exc:
        print(f"\ndemo failed: {exc}", file=sys.stderr)
        if demo.started:
            logs = args.home.resolve() / "logs"
            print(f"Logs: {logs} (worker.log has the flow runs). The stack stays up "
                  "(python -m demo status); make demo-stop stops it.", file=sys.stderr)  # fmt: skip
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: the stack stays up (python -m demo status); make demo-stop "
              "stops it", file=sys.stderr)  # fmt: skip
        return 130


if __name__ == "__main__":
    sys.exit(main())
