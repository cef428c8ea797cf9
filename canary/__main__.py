"""``python -m canary <command>``: the library's own commands.

    python -m canary plan --spec deployments/releases/goldengoose.yaml \\
        --prometheus http://127.0.0.1:9090 [--window 10m] [--effect error-rate=0.5 ...] \\
        [--seed N] [--json]
    canary plan --spec ... --metrics-block prometheus-source/cluster ...

`--metrics-block` names a saved metric-source block instead of a URL; the library does not
import Prefect, so blocks are loaded by the `canary` command, which passes its loader in.

`plan` reads production's traffic and counts over the last --window and says, per count
metric, how long the canary must run to catch the smallest regression worth catching
(the metric's minEffect, or --effect) with 90 % probability (canary.analysis.planning).

Exit status 0 on success, 1 when Prometheus cannot answer, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import numpy as np

from canary.analysis.planning import (
    MAX_LOOKS,
    POWER,
    SIMULATIONS,
    LookSchedule,
    check_effects,
    count_metrics,
    describe,
    plan_config,
)
from canary.config import CanaryConfig, parse_duration
from canary.config.release import ReleaseSpec
from canary.errors import CanaryError, ConfigError
from canary.ports import MetricSource
from canary.values.counts import HistogramCounts, RatioCounts

PROG = "python -m canary"
#: Loads a saved metric-source block by name (cli.check.load_metrics_block).
BlockLoader = Callable[[str], MetricSource]
#: Production's counts per count metric (None: its counters matched no series).
Production = dict[str, RatioCounts | HistogramCounts | None]


class UsageError(Exception):
    """A bad argument: exit 2 with the message, which names the argument."""


def make_source(url: str) -> MetricSource:
    """The metric source `plan` reads production from (the seam tests replace).

    Args:
        url: The Prometheus base URL.

    Returns:
        A PrometheusMetricSource for it.
    """
    from canary.metrics.prometheus import PrometheusMetricSource

    return PrometheusMetricSource(url)


def _safe_url(url: str) -> str:
    from canary.metrics.prometheus import redact_url

    return redact_url(url)


def _window(text: str) -> float:
    try:
        seconds = parse_duration(text).total_seconds()
    except Exception as exc:  # pydantic's error type; its message says what is accepted
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is no time at all; give e.g. 10m or 1h")
    return seconds


def _effect(text: str) -> tuple[str, float]:
    name, sep, value = text.rpartition("=")
    try:
        effect = float(value)
    except ValueError:
        effect = math.nan
    if not sep or not name or not (math.isfinite(effect) and effect > 0):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not METRIC=EFFECT with a relative effect > 0 (error-rate=0.5 is +50 %)"
        )
    return name, effect


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a probability strictly between 0 and 1")
    return value


def _simulations(text: str) -> int:
    if not text.isdigit() or int(text) < 10:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 10")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    plan = sub.add_parser(
        "plan",
        help="how long the canary must run to catch a regression, from production's traffic",
        description="Per count metric of the release's canary config: the looks (and lifetime) "
        "the canary needs to catch its smallest regression worth catching with 90%% "
        "probability, from production's traffic over the last --window.",
    )
    plan.add_argument("--spec", required=True, help="release spec (deployments/releases/<app>.yaml)")
    where = plan.add_mutually_exclusive_group(required=True)
    where.add_argument("--prometheus", metavar="URL", help="Prometheus base URL")
    where.add_argument("--metrics-block", metavar="NAME",
                       help="a saved metric-source block (prometheus-source/NAME), via `canary plan`")  # fmt: skip
    plan.add_argument("--window", type=_window, default=600.0, metavar="DURATION",
                      help="production's recent traffic to plan from (10m, 1h, PT30M) [10m]")  # fmt: skip
    plan.add_argument("--effect", type=_effect, action="append", default=[], metavar="METRIC=EFFECT",
                      help="smallest regression worth catching, relative, instead of the "
                      "metric's minEffect (error-rate=0.5: +50%%; latency=0.1: 10%% slower); "
                      "repeatable")  # fmt: skip
    plan.add_argument("--seed", type=int, default=0, help="seed of the simulation [0]")
    plan.add_argument("--power", type=_fraction, default=POWER,
                      help=f"detection probability to reach [{POWER:g}]")  # fmt: skip
    plan.add_argument("--simulations", type=_simulations, default=SIMULATIONS,
                      help=f"simulated releases per metric [{SIMULATIONS}]")  # fmt: skip
    plan.add_argument("--max-looks", type=int, default=MAX_LOOKS,
                      help=f"horizon: looks to simulate past the lifetime at most [{MAX_LOOKS}]")  # fmt: skip
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.set_defaults(run=_plan)
    return parser


def _load(path: str) -> tuple[ReleaseSpec, CanaryConfig]:
    try:
        spec = ReleaseSpec.load(path)
        return spec, spec.load_canary_config()
    except ConfigError as exc:
        raise UsageError(f"--spec {path}: {exc}") from None


def _production(source: MetricSource, spec: ReleaseSpec, config: CanaryConfig, window: float) -> Production:
    """Production's counts per count metric over the last `window` seconds (None: no series)."""
    from canary.metrics.collect import production_counts

    now = datetime.now(UTC)
    return production_counts(source, config, spec.scopes.production_scope(now - timedelta(seconds=window), now))


def _open_source(args: argparse.Namespace, load_block: BlockLoader | None) -> MetricSource:
    """The source named on the command line: --metrics-block's, else --prometheus's."""
    if args.metrics_block is None:
        try:
            return make_source(args.prometheus)
        except ConfigError as exc:
            raise UsageError(f"--prometheus: {exc}") from None
    if load_block is None:
        raise UsageError(
            "--metrics-block: saved blocks are loaded by the `canary` command (the library "
            f"does not import Prefect): run `canary plan --metrics-block {args.metrics_block} ...`"
        )
    try:
        return load_block(args.metrics_block)
    except ConfigError as exc:
        raise UsageError(f"--metrics-block: {exc}") from None


def _read_production(args: argparse.Namespace, spec: ReleaseSpec, config: CanaryConfig,
                     load_block: BlockLoader | None) -> Production | None:  # fmt: skip
    """Production's counts from the named source; None (after saying why) if it fails."""
    source = _open_source(args, load_block)
    where = "Prometheus" if args.metrics_block is None else f"block {args.metrics_block!r}"
    try:
        return _production(source, spec, config, args.window)
    except CanaryError as exc:
        print(f"{PROG} plan: cannot read production's counts (scope "
              f"{spec.scopes.production!r}) from {where}: {exc}", file=sys.stderr)  # fmt: skip
        return None
    finally:
        close = getattr(source, "close", None)
        if callable(close):
            close()


def _plan(args: argparse.Namespace, load_block: BlockLoader | None) -> int:
    spec, config = _load(args.spec)
    effects = dict(args.effect)
    try:
        schedule = LookSchedule.from_plan(spec.analysis, spec.traffic.steps)
    except ConfigError as exc:
        raise UsageError(f"--spec {args.spec}: {exc}") from None
    try:
        check_effects(config, effects)
    except ConfigError as exc:
        raise UsageError(f"--effect: {exc}") from None
    if args.max_looks < 1:
        raise UsageError(f"--max-looks: {args.max_looks} is below 1")
    production: Production = {}
    if count_metrics(config):
        got = _read_production(args, spec, config, load_block)
        if got is None:
            return 1
        production = got
    plan = plan_config(config, schedule, production, window=args.window,
                       rng=np.random.default_rng(args.seed), effects=effects, power=args.power,
                       simulations=args.simulations, max_looks=args.max_looks)  # fmt: skip
    lines = describe(plan)
    if args.json:
        where = ({"prometheus": _safe_url(args.prometheus)} if args.metrics_block is None
                 else {"metrics_block": args.metrics_block})  # fmt: skip
        print(json.dumps({"spec": args.spec, **where, "seed": args.seed, "lines": lines,
                          **plan.to_dict()}, indent=2))  # fmt: skip
    else:
        print("\n".join(lines))
    return 0


def main(argv: Sequence[str] | None = None, *, load_metrics_block: BlockLoader | None = None) -> int:
    """Run one command of ``python -m canary``.

    Args:
        argv: The arguments (``sys.argv[1:]`` when None).
        load_metrics_block: Loads a saved metric-source block for ``--metrics-block``
            (the `canary` command passes cli.check.load_metrics_block).

    Returns:
        The exit status: 0 done, 1 the metric source cannot answer, 2 bad arguments.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    run: Callable[[argparse.Namespace, BlockLoader | None], int] = args.run
    try:
        return run(args, load_metrics_block)
    except UsageError as exc:
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return 2

if __name__ == "__main__":
    sys.exit(main())
