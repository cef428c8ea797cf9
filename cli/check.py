"""`canary validate` (a canary config or release spec, statically and against Prometheus) and
`canary backtest` (past releases judged again under a new config)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from canary.config import CanaryConfig
from canary.config.release import ReleaseSpec, read_yaml
from canary.errors import CanaryError


def _load(path: str) -> tuple[ReleaseSpec | None, CanaryConfig]:
    """A release spec (it names a canary config) or a canary config, validated."""
    file = Path(path)
    if file.suffix.lower() in (".yaml", ".yml"):
        data = read_yaml(file, "config")
        if isinstance(data, dict) and "canary_config" in data:
            spec = ReleaseSpec.from_data(data, file)
            return spec, spec.load_canary_config()
    return None, CanaryConfig.load(file)


def validate(path: str, prometheus: str | None = None, *, scope: str = "primary",
             minutes: float = 5.0) -> list[dict[str, Any]]:  # fmt: skip
    """Checks, one row each: what was checked and whether it held. Raises ConfigError on a
    file that does not load (its message names the file, metric and field)."""
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
    if prometheus is None:
        return rows
    from canary.metrics.prometheus import PrometheusMetricSource
    from canary.values.scope import MetricScope

    end = datetime.now(UTC)
    scopes = ({spec.scopes.control, spec.scopes.experiment, spec.scopes.production}
              if spec is not None else {scope})  # fmt: skip
    location = spec.scopes.location if spec is not None else None
    params = dict(spec.scopes.extended_scope_params) if spec is not None else {}
    with PrometheusMetricSource(prometheus) as source:
        for metric in config.metrics:
            for name in sorted(scopes):
                window = MetricScope(scope=name, location=location, start=end - timedelta(minutes=minutes),
                                     end=end, step=15, extended_scope_params=params)  # fmt: skip
                rows.append(_probe(source, config, metric, window))
    return rows


def _probe(source: Any, config: CanaryConfig, metric: Any, scope: Any) -> dict[str, Any]:
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


def backtest(api: Any, app: str, config_path: str, prometheus: str) -> list[dict[str, Any]]:
    """Every recorded release of `app`, judged again under another canary config.

    Each release's event says its window and scopes; the window is observed and assessed
    as one look (tasks.analysis.observe, canary.analysis.look.assess), as re-analysis does.

    Args:
        api: The Prefect API reader (its ``events(app, names)``).
        app: The app.
        config_path: The canary config (or a release spec naming one) to judge with.
        prometheus: The Prometheus URL to read the windows from.

    Returns:
        One row per release: when, the commit, the old outcome and the new one, and why.
    """
    from canary.analysis.look import LookPlan, assess
    from canary.analysis.windows import JudgementWindow
    from canary.config.release import Scopes
    from canary.metrics.prometheus import PrometheusMetricSource
    from canary.values.outcome import Outcome
    from tasks.analysis import observe

    _, config = _load(config_path)
    rows = []
    with PrometheusMetricSource(prometheus) as source:
        for event in api.events(app, (Outcome.PROMOTED.event, Outcome.ROLLED_BACK.event)):
            p = event.payload
            if not p.get("window_start") or not p.get("window_end"):
                continue
            start, end = datetime.fromisoformat(p["window_start"]), datetime.fromisoformat(p["window_end"])
            window = JudgementWindow(index=1, experiment_start=start, experiment_end=end,
                                     control_start=start, control_end=end, not_before=end,
                                     step=timedelta(seconds=1))  # fmt: skip
            scopes = Scopes(control=p.get("control_scope") or "baseline",
                            experiment=p.get("experiment_scope") or "canary")  # fmt: skip
            try:
                seen = observe.fn(source, config, scopes, window, requests=False)
                decision = assess(seen, LookPlan.single(config, window)).decision
                new = (Outcome.PROMOTED if decision.action.value == "promote" else Outcome.ROLLED_BACK).value
                why = decision.reason
            except CanaryError as exc:
                new, why = "error", str(exc)
            old = event.event.removeprefix("canary.release.")
            rows.append({"when": event.occurred.isoformat(timespec="seconds"),
                         "commit": str(p.get("commit", ""))[:12], "old": old, "new": new,
                         "changed": old != new, "why (new)": why})  # fmt: skip
    return rows
