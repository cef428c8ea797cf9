"""`canary validate` (a canary config or release spec, statically and against Prometheus) and
`canary backtest` (past releases judged again under a new config)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from canary.config import CanaryConfig, MetricConfig, Thresholds
from canary.config.policy import policy_file
from canary.config.release import ReleaseSpec, read_yaml
from canary.errors import CanaryError, ConfigError
from canary.ports import MetricSource
from canary.values.scope import MetricScope

if TYPE_CHECKING:
    from cli.api import Api

#: One row of a command's table: column name -> value.
Row = dict[str, object]


def load_metrics_block(name: str) -> MetricSource:
    """The metric source of a saved metric-source block, e.g. ``prometheus-source/cluster``.

    Args:
        name: The block as ``<type-slug>/<document-name>`` (as the flows' ``metrics``).

    Returns:
        The block's ``source()``: a ready MetricSource.

    Raises:
        ConfigError: The block cannot be loaded, or it is no metric-source block.
    """
    from store.blocks import load_block

    block = load_block(name)
    make = getattr(block, "source", None)
    if not callable(make):
        raise ConfigError(f"block {name!r} is no metric-source block (it has no source())")
    source: MetricSource = make()
    return source


@contextmanager
def metric_source(prometheus: str | None, block: str | None) -> Iterator[MetricSource]:
    """The metric source a command reads from, closed when done.

    Args:
        prometheus: A Prometheus base URL (today's ``--prometheus``).
        block: A saved metric-source block (``--metrics-block``); wins over the URL.

    Yields:
        The source: the block's, else a PrometheusMetricSource for the URL.

    Raises:
        ConfigError: Neither is given, or the block or URL is invalid.
    """
    if block is not None:
        source = load_metrics_block(block)
    elif prometheus is not None:
        from canary.metrics.prometheus import PrometheusMetricSource

        source = PrometheusMetricSource(prometheus)
    else:
        raise ConfigError("give --prometheus URL or --metrics-block NAME")
    try:
        yield source
    finally:
        close = getattr(source, "close", None)
        if callable(close):
            close()


def _load(path: str) -> tuple[ReleaseSpec | None, CanaryConfig]:
    """A release spec (it names a canary config), a ReleasePolicy (it carries or references
    one) or a canary config, validated."""
    file = Path(path)
    if file.suffix.lower() in (".yaml", ".yml"):
        policy = policy_file(file)
        if policy is not None:
            return policy
        data = read_yaml(file, "config")
        if isinstance(data, dict) and "canary_config" in data:
            spec = ReleaseSpec.from_data(data, file)
            return spec, spec.load_canary_config()
    return None, CanaryConfig.load(file)


def validate(path: str, prometheus: str | None = None, *, scope: str = "primary",
             minutes: float = 5.0, metrics_block: str | None = None) -> list[Row]:  # fmt: skip
    """Checks, one row each: what was checked and whether it held.

    Args:
        path: A canary config, a release spec or a ReleasePolicy (with its ConfigMap, if it
            references one, in the same file).
        prometheus: A Prometheus URL to run every query at (optional).
        scope: The scope to query for a canary config alone.
        minutes: The window queried, ending now.
        metrics_block: A saved metric-source block to query instead of `prometheus`.

    Returns:
        The rows.

    Raises:
        ConfigError: The file does not load (its message names the file, metric and field).
    """
    spec, config = _load(path)
    kinds = [m.evidence for m in config.metrics]
    rows = [{"check": f"canary config {config.name!r}", "ok": True,
             "detail": f"judge {config.judge.name}; {len(kinds)} metrics: "
                       f"{kinds.count('ratio')} ratio, {kinds.count('histogram')} histogram, "
                       f"{kinds.count('series')} range-query"}]  # fmt: skip
    if spec is not None:
        plan = spec.analysis
        rows.append({"check": f"release spec for {spec.app!r}", "ok": True,
                     "detail": f"lifetime {plan.lifetime}, a look every {plan.interval}, "
                               f"traffic {list(spec.traffic.steps)} %"})  # fmt: skip
    if prometheus is None and metrics_block is None:
        return rows
    end = datetime.now(UTC)
    scopes = ({spec.scopes.control, spec.scopes.experiment, spec.scopes.production}
              if spec is not None else {scope})  # fmt: skip
    location = spec.scopes.location if spec is not None else None
    params = dict(spec.scopes.extended_scope_params) if spec is not None else {}
    with metric_source(prometheus, metrics_block) as source:
        for metric in config.metrics:
            for name in sorted(scopes):
                window = MetricScope(scope=name, location=location, start=end - timedelta(minutes=minutes),
                                     end=end, step=15, extended_scope_params=params)  # fmt: skip
                rows.append(_probe(source, config, metric, window))
    return rows


def _probe(source: MetricSource, config: CanaryConfig, metric: MetricConfig,
           scope: MetricScope) -> Row:  # fmt: skip
    what = f"{metric.name} @ {scope.scope}"
    try:
        if metric.evidence == "series":
            series = source.fetch(metric, config.templates, scope)
            found = [s for s in series if s.tags or len(s.values)]
            return {"check": what, "ok": bool(found),
                    "detail": f"{len(found)} series" if found else "the query returns no series"}  # fmt: skip
        got = source.fetch_counts(metric, config.templates, scope)
        if got.missing:
            return {"check": what, "ok": False, "detail": "the counters match no series"}
        total = got.counts.total
        return {"check": what, "ok": True, "detail": f"{total:.0f} requests in the window"}
    except CanaryError as exc:
        return {"check": what, "ok": False, "detail": str(exc)}


def backtest(api: Api, app: str, config_path: str, prometheus: str | None,
             metrics_block: str | None = None) -> list[Row]:  # fmt: skip
    """Every recorded release of `app`, judged again under another canary config.

    Each release's event says its window and scopes; the window is observed and assessed
    as one look (tasks.analysis.observe, canary.analysis.look.assess), as re-analysis does.

    Args:
        api: The Prefect API (cli.api.Api).
        app: The app whose releases to judge again.
        config_path: The canary config (or a release spec naming one) to judge with; the
            spec's thresholds decide, else the config's ``scoreThresholds``.
        prometheus: The Prometheus URL to read the windows from.
        metrics_block: A saved metric-source block to read them from instead.

    Returns:
        One row per release: when, the commit, the old outcome and the new one, and why.
    """
    from canary.analysis.look import LookPlan, assess
    from canary.analysis.windows import JudgementWindow
    from canary.config.release import Scopes
    from canary.values.events import ReleaseEnded
    from canary.values.outcome import Outcome
    from tasks.analysis import observe

    spec, config = _load(config_path)
    thresholds = _thresholds(spec, config)
    rows = []
    with metric_source(prometheus, metrics_block) as source:
        for stored in api.events(app, (Outcome.PROMOTED.event, Outcome.ROLLED_BACK.event)):
            p = stored.event
            if not isinstance(p, ReleaseEnded) or p.window_start is None or p.window_end is None:
                continue
            start, end = p.window_start, p.window_end
            window = JudgementWindow(index=1, experiment_start=start, experiment_end=end,
                                     control_start=start, control_end=end, not_before=end,
                                     step=timedelta(seconds=1))  # fmt: skip
            scopes = Scopes(control=p.control_scope or "baseline",
                            experiment=p.experiment_scope or "canary")  # fmt: skip
            try:
                seen = observe.fn(source, config, scopes, window, requests=False)
                decision = assess(seen, LookPlan.single(config, window, thresholds=thresholds)).decision
                new = (Outcome.PROMOTED if decision.action.value == "promote" else Outcome.ROLLED_BACK).value
                why = decision.reason
            except CanaryError as exc:
                new, why = "error", str(exc)
            old = p.outcome.value
            rows.append({"when": stored.occurred.isoformat(timespec="seconds"),
                         "commit": (p.commit or "")[:12], "old": old, "new": new,
                         "changed": old != new, "why_new": why})  # fmt: skip
    return rows


def _thresholds(spec: ReleaseSpec | None, config: CanaryConfig) -> Thresholds | None:
    """The thresholds a backtest decides with: the release spec's (as in the release);
    for a canary config alone, its ``classifier.scoreThresholds`` (there is no analysis
    request whose thresholds would rule); None when neither has them."""
    if spec is not None:
        return spec.analysis.thresholds
    own = config.classifier.score_thresholds
    return None if own is None else Thresholds(**{"pass": own.pass_, "marginal": own.marginal})
