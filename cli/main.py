"""`canary`: the operator's command line for prefect-canary releases.

    canary status [APP]                     running releases (look, split, judgement, time left), builds
    canary history APP                      past releases and failed builds: outcome, score, report
    canary promote APP | abort APP          promote now (manual) / abort: not released
    canary rollback APP [--to COMMIT]       the last good release (or COMMIT's) back in production
    canary retry APP COMMIT                 release a commit again
    canary approve APP | reject APP         answer a paused manual gate, judgement or hold
    canary validate CONFIG [--prometheus URL | --metrics-block NAME]   a config or spec, checked
    canary plan --spec SPEC (--prometheus URL | --metrics-block NAME)   how long a canary must run
    canary backtest APP --config NEW (--prometheus URL | --metrics-block NAME) [--csv FILE]

--metrics-block names a saved metric-source block, e.g. prometheus-source/cluster.

Every command takes --json (for scripts; before or after the command; its keys are
snake_case) and talks to PREFECT_API_URL (or --api). Exit status 0 on success, 1 when the
server cannot answer, the app is unknown or the command cannot be carried out (the message
says why), 2 on bad arguments or an invalid config.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Mapping, Sequence

PROG = "canary"

#: What a command returns: rows (or one row) of named values, printed as a table or JSON.
Row = Mapping[str, object]


#: Table headers that say their unit (the JSON keys are snake_case identifiers).
HEADERS = {"time_left_seconds": "time left (s)", "duration_seconds": "duration (s)",
           "why_new": "why (new)"}  # fmt: skip


def _header(key: str) -> str:
    """A JSON key as a human table header: ``canary_share`` -> ``canary share``."""
    return HEADERS.get(key, key.replace("_", " "))


def _table(rows: Sequence[Row]) -> str:
    if not rows:
        return "(none)"
    columns = list(dict.fromkeys(k for row in rows for k in row))
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    headers = [_header(c) for c in columns]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(headers, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]  # fmt: skip
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}"
    text = str(value)
    return text if len(text) <= 100 else text[:99] + "…"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.split("\n")[2:14]))  # fmt: skip
    parser.add_argument("--api", help="the Prefect API URL [PREFECT_API_URL]")
    parser.add_argument("--json", action="store_true", help="print JSON (for scripts)")
    # Every command takes both after its name too (SUPPRESS: not given keeps the value
    # given before the command).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api", default=argparse.SUPPRESS, help="the Prefect API URL [PREFECT_API_URL]")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    sub = _Commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"), common)
    p = sub.add_parser("status", help="running releases")
    p.add_argument("app", nargs="?")
    p = sub.add_parser("history", help="past releases of an app")
    p.add_argument("app")
    p.add_argument("--limit", type=int, default=20)
    for name, what in (("promote", "promote now, skipping the rest of the analysis"),
                       ("abort", "stop now: traffic back to production, not released (aborted)")):  # fmt: skip
        p = sub.add_parser(name, help=what)
        p.add_argument("app")
        p.add_argument("--wait", type=float, default=120.0, help="seconds to wait for the end [120]")
    p = sub.add_parser("rollback", help="put the last good release back in production, no analysis")
    p.add_argument("app")
    p.add_argument("--to", metavar="COMMIT", help="this release of `canary history APP` instead")
    p.add_argument("--wait", type=float, default=180.0, help="seconds to wait for it [180]")
    p = sub.add_parser("retry", help="release a commit again")
    p.add_argument("app")
    p.add_argument("commit")
    for name in ("approve", "reject"):
        p = sub.add_parser(name, help=f"{name} a paused release's manual gate, judgement or hold")
        p.add_argument("app")
        p.add_argument("--comment", default="")
    p = sub.add_parser("validate", help="check a canary config or a release spec")
    p.add_argument("path")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--prometheus", metavar="URL", help="also run every query there")
    where.add_argument("--metrics-block", metavar="NAME",
                       help="also run every query at this saved block (prometheus-source/NAME)")  # fmt: skip
    p.add_argument("--scope", default="primary", help="scope to query for a canary config alone")
    sub.add_parser("plan", help="how long a canary must run (python -m canary plan --help)",
                   add_help=False)  # fmt: skip
    p = sub.add_parser("backtest", help="judge recorded releases again under a new config")
    p.add_argument("app")
    p.add_argument("--config", required=True, help="the new canary config or release spec")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--prometheus", metavar="URL")
    where.add_argument("--metrics-block", metavar="NAME", help="a saved block (prometheus-source/NAME)")
    p.add_argument("--csv", metavar="FILE", help="also write the table as CSV (pandas)")
    return parser


class _Commands:
    """The subcommands' parsers, each with the common options (--json, --api)."""

    def __init__(self, sub: argparse._SubParsersAction[argparse.ArgumentParser],
                 common: argparse.ArgumentParser) -> None:  # fmt: skip
        self._sub, self._common = sub, common

    def add_parser(self, name: str, **kwargs: object) -> argparse.ArgumentParser:
        """A subcommand's parser that also takes the common options."""
        made: argparse.ArgumentParser = self._sub.add_parser(name, parents=[self._common], **kwargs)  # type: ignore[arg-type]
        return made


def _run(args: argparse.Namespace) -> Sequence[Row] | Row:
    from cli import check, operate
    from cli.api import Api

    if args.command == "validate":
        return check.validate(args.path, args.prometheus, scope=args.scope,
                              metrics_block=args.metrics_block)  # fmt: skip
    api = Api(args.api)
    by = f"{getpass.getuser()} via canary {args.command}"
    if args.command == "status":
        return operate.status(api, args.app)
    if args.command == "history":
        return operate.history(api, args.app, args.limit)
    if args.command in ("promote", "abort"):
        return operate.command(api, args.app, args.command, by=by, wait=args.wait)
    if args.command == "retry":
        return operate.retry(api, args.app, args.commit)
    if args.command == "rollback":
        from cli.rollback import rollback

        return rollback(api, args.app, to=args.to, by=by, wait=args.wait)
    if args.command in ("approve", "reject"):
        return operate.answer(api, args.app, approve=args.command == "approve",
                              comment=args.comment, by=by)  # fmt: skip
    if args.command == "backtest":
        rows = check.backtest(api, args.app, args.config, args.prometheus, args.metrics_block)
        if args.csv:
            import pandas as pd

            pd.DataFrame(rows).to_csv(args.csv, index=False)
        return rows
    raise AssertionError(args.command)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    lead = _leading_options(argv)
    if argv[lead:lead + 1] == ["plan"]:  # one implementation: python -m canary plan
        from canary.__main__ import main as canary_main
        from cli.check import load_metrics_block

        wants_json = "--json" in argv[:lead]  # `canary --json plan ...` (no server is asked)
        plan_argv = argv[lead:] + (["--json"] if wants_json and "--json" not in argv[lead:] else [])
        return canary_main(plan_argv, load_metrics_block=load_metrics_block)
    args = _parser().parse_args(argv)
    from prefect.exceptions import PrefectHTTPStatusError

    from canary.errors import CanaryError, ConfigError
    from cli.api import ApiUnreachable
    from cli.operate import CommandError

    try:
        result = _run(args)
    except ConfigError as exc:
        print(f"{PROG} {args.command}: {exc}", file=sys.stderr)
        return 2
    except (ApiUnreachable, CommandError, CanaryError) as exc:
        print(f"{PROG} {args.command}: {exc}", file=sys.stderr)
        return 1
    except PrefectHTTPStatusError as exc:
        print(f"{PROG} {args.command}: the Prefect API refused the request: {exc}", file=sys.stderr)
        return 1
    rows = result if isinstance(result, list) else [result]
    try:
        print(json.dumps(result, indent=2, default=str) if args.json else _table(rows), flush=True)
    except BrokenPipeError:  # `canary history APP | head`: the reader left; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if args.command == "validate" and not all(r.get("ok", True) for r in rows):
        return 1
    return 0


def _leading_options(argv: Sequence[str]) -> int:
    """How many arguments before the command are the global options (--json, --api URL)."""
    i = 0
    while i < len(argv) and argv[i].startswith("--"):
        i += 2 if argv[i] == "--api" else 1
    return i


if __name__ == "__main__":
    sys.exit(main())
