"""``python -m canary.platforms.local {start,stop,status,reconcile}``: the local stack by hand.

    python -m canary.platforms.local start --app goldengoose=18080
    python -m canary.platforms.local status
    python -m canary.platforms.local reconcile goldengoose   # after a crashed release
    python -m canary.platforms.local stop                    # workloads, Prometheus, HAProxy

Every command is idempotent and prints JSON. Exit status 0 on success, 1 on a platform
error, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from canary.errors import CanaryError
from canary.platforms.local.stack import LocalStack


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m canary.platforms.local", description=__doc__.split("\n")[0]
    )
    p.add_argument("--state-dir", default=".state/local", help="state directory [.state/local]")
    p.add_argument("--haproxy", default="/usr/sbin/haproxy", help="haproxy binary")
    p.add_argument("--prometheus", default="/usr/bin/prometheus", help="prometheus binary")
    p.add_argument("--stats-port", type=int, default=18404, help="HAProxy stats/metrics port")
    p.add_argument("--prometheus-port", type=int, default=19090, help="Prometheus port")
    p.add_argument("--scrape-interval", type=float, default=1.0, help="seconds [1.0]")
    sub = p.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start (or reload) HAProxy and Prometheus")
    start.add_argument(
        "--app",
        action="append",
        default=[],
        metavar="NAME[=PORT]",
        help="register an app behind HAProxy (repeatable)",
    )
    stop = sub.add_parser("stop", help="stop workloads, Prometheus and HAProxy")
    stop.add_argument("--keep-workloads", action="store_true", help="leave app processes running")
    sub.add_parser("status", help="what runs, where, with which weights")
    rec = sub.add_parser("reconcile", help="100%% primary, stop baseline/canary and orphans")
    rec.add_argument("app")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        stack = LocalStack(
            args.state_dir,
            haproxy_bin=args.haproxy,
            prometheus_bin=args.prometheus,
            haproxy_stats_port=args.stats_port,
            prometheus_port=args.prometheus_port,
            scrape_interval=args.scrape_interval,
        )
        if args.command == "start":
            for spec in args.app:
                name, _, port = spec.partition("=")
                stack.add_app(name, int(port) if port else None)
            out = stack.start()
        elif args.command == "stop":
            out = stack.stop(workloads=not args.keep_workloads)
        elif args.command == "status":
            out = stack.status()
        else:
            out = stack.workloads().reconcile(args.app)
    except (CanaryError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(out, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
