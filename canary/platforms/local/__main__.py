"""``python -m canary.platforms.local {start,stop,status,reconcile,supervise}``: the stack by hand.

    python -m canary.platforms.local start --app goldengoose=18080
    python -m canary.platforms.local status
    python -m canary.platforms.local reconcile goldengoose   # after a crashed release
    python -m canary.platforms.local supervise --interval 2  # restart dead parts (foreground)
    python -m canary.platforms.local stop                    # supervisor, workloads, Prometheus, HAProxy

Every command but ``supervise`` is idempotent and prints JSON. Exit status 0 on success, 1 on
a platform error, 2 on bad arguments. The state directory defaults to the demo's
(``.demo/local``) when it exists, else ``.state/local``; ports and binaries default to what
the last ``start`` there used (``stack/settings.json``).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from canary.errors import CanaryError
from canary.platforms.local import procs, supervisor
from canary.platforms.local.stack import LocalStack

CHECKOUT = Path(__file__).resolve().parents[3]
DEMO_STATE = Path(".demo") / "local"  # demo.chain.ChainConfig.state_dir, from the repo root
FALLBACK_STATE = Path(".state") / "local"


def default_state_dir(cwd: Path | None = None, checkout: Path = CHECKOUT) -> Path:
    """The demo's state dir if there is one (here or in this checkout), else .state/local."""
    for candidate in ((cwd or Path.cwd()) / DEMO_STATE, checkout / DEMO_STATE):
        if candidate.is_dir():
            return candidate
    return FALLBACK_STATE


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m canary.platforms.local", description=__doc__.split("\n")[0]
    )
    p.add_argument("--state-dir", type=Path, default=None,
                   help=f"state directory [the demo's {DEMO_STATE} if it exists, "
                        f"else {FALLBACK_STATE}]")  # fmt: skip
    p.add_argument("--haproxy", default=None, help="haproxy binary [/usr/sbin/haproxy]")
    p.add_argument("--prometheus", default=None, help="prometheus binary [/usr/bin/prometheus]")
    p.add_argument("--stats-port", type=int, default=None, help="HAProxy stats port [18404]")
    p.add_argument("--prometheus-port", type=int, default=None, help="Prometheus port [19090]")
    p.add_argument("--scrape-interval", type=float, default=None, help="seconds [1.0]")
    p.add_argument("--release-metrics", default=None, metavar="HOST:PORT",
                   help="the webhook relay whose /metrics Prometheus scrapes [none]")  # fmt: skip
    sub = p.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start (or reload) HAProxy and Prometheus")
    start.add_argument(
        "--app",
        action="append",
        default=[],
        metavar="NAME[=PORT]",
        help="register an app behind HAProxy (repeatable)",
    )
    stop = sub.add_parser("stop", help="stop the supervisor, workloads, Prometheus and HAProxy")
    stop.add_argument("--keep-workloads", action="store_true", help="leave app processes running")
    sub.add_parser("status", help="what runs, where, with which weights; the supervisor's view")
    rec = sub.add_parser("reconcile", help="100%% primary, stop baseline/canary and orphans")
    rec.add_argument("app")
    sup = sub.add_parser("supervise", help="restart dead parts (foreground; SIGTERM stops it)")
    sup.add_argument("--interval", type=float, default=2.0, help="seconds between checks [2]")
    sup.add_argument("--once", action="store_true", help="one check, print it as JSON, exit")
    sup.add_argument("--reset", action="store_true", help="forget restart budgets first")
    sup.add_argument("--max-restarts", type=int, default=3, help="per part and window [3]")
    sup.add_argument("--window", type=float, default=300.0, help="seconds [300]")
    sup.add_argument("--backoff", type=float, default=1.0, help="first retry delay, doubling [1]")
    return p


def _supervise(stack: LocalStack, args: argparse.Namespace) -> dict[str, object] | None:
    sup = supervisor.Supervisor(stack, max_restarts=args.max_restarts, window=args.window,
                                backoff=args.backoff, echo=not args.once)  # fmt: skip
    if args.once:
        sup.claim()
        try:
            if args.reset:
                sup.reset()
            return {name: part.to_json() for name, part in sup.check_and_repair().items()}
        finally:
            sup.release()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if args.reset:
        sup.reset()
    sup.run(args.interval, stop)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (start, stop, status, supervise, reconcile); its exit status."""
    args = _parser().parse_args(argv)
    state_dir = args.state_dir or default_state_dir()
    if args.command != "start" and not state_dir.is_dir():
        print(f"error: state directory {state_dir} does not exist (nothing was started there); "
              f"pass --state-dir: `make demo` uses {CHECKOUT / DEMO_STATE}, a LocalPlatform "
              f"block its state_dir", file=sys.stderr)  # fmt: skip
        return 1
    try:
        stack = LocalStack.from_state(
            state_dir,
            haproxy_bin=args.haproxy,
            prometheus_bin=args.prometheus,
            haproxy_stats_port=args.stats_port,
            prometheus_port=args.prometheus_port,
            scrape_interval=args.scrape_interval,
            release_metrics=args.release_metrics,
        )
        out: Mapping[str, object]
        if args.command == "start":
            for spec in args.app:
                name, _, port = spec.partition("=")
                stack.add_app(name, int(port) if port else None)
            out = stack.start()
        elif args.command == "stop":
            out = stack.stop(workloads=not args.keep_workloads)
        elif args.command == "status":
            status = stack.status()
            status["supervisor"] = {**procs.as_mapping(status["supervisor"]),
                                    **supervisor.read_status(state_dir)}  # fmt: skip
            out = status
        elif args.command == "supervise":
            supervised = _supervise(stack, args)
            if supervised is None:
                return 0
            out = supervised
        else:
            out = stack.workloads().reconcile(args.app)
    except (CanaryError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(out, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
