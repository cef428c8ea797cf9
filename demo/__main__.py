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

The parts: ``demo.config`` (settings, secret, records), ``demo.ports``, ``demo.repo`` (git),
``store.reader`` (the store's one reader of runs and events, shared with the benches),
``demo.progress``, ``demo.summary`` (outcomes and the table), ``demo.run`` (the scripted
releases) and ``demo.status`` (status and stop).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import httpx

from demo.chain import ChainError
from demo.config import DEFAULT_HOME, DEFAULTS, PORTS, DemoError
from demo.run import Demo
from demo.status import status, stop
from store.reader import ApiError

__all__ = ["main", "parse_args", "status", "stop"]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The demo's command line.

    Args:
        argv: The arguments (default: ``sys.argv[1:]``).

    Returns:
        The parsed arguments: the command, ``--home``, every port, ``--db``, ``--db-port``,
        ``--rate``, ``--load-duration`` and ``--release-timeout``.
    """
    p = argparse.ArgumentParser(
        prog="python -m demo",
        description="The whole canary chain on this machine: make demo / make demo-stop.",
    )
    p.add_argument("command", nargs="?", default="run", choices=("run", "stop", "status"),
                   help="run the demo (default), stop what it started, or show what runs")  # fmt: skip
    p.add_argument("--home", type=Path, default=DEFAULT_HOME,
                   help=f"state, logs and repositories (default {DEFAULT_HOME})")  # fmt: skip
    for attr, flag, what in PORTS:
        default = getattr(DEFAULTS, attr)
        p.add_argument(flag, dest=attr, type=_port, default=default,
                       help=f"{what} on 127.0.0.1 (default {default})")  # fmt: skip
    p.add_argument("--db", choices=("sqlite", "postgres"), default=DEFAULTS.db,
                   help="the Prefect server's database: embedded SQLite (default) or a "
                        "PostgreSQL cluster of the demo's own, under --home")  # fmt: skip
    p.add_argument("--db-port", dest="db_port", type=_port, default=DEFAULTS.db_port,
                   help=f"PostgreSQL on 127.0.0.1, with --db postgres (default {DEFAULTS.db_port})")  # fmt: skip
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command the command line names; its exit code."""
    args = parse_args(argv)
    if args.command == "stop":
        return stop(args)
    if args.command == "status":
        return status(args)
    demo = Demo(args)
    try:
        return demo.run()
    except (DemoError, ChainError, ApiError, httpx.HTTPError, subprocess.TimeoutExpired) as exc:
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
