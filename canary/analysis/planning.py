"""Plan a canary before it starts: how long must it run to catch the regression worth catching?

Given production's traffic and its counts over a recent window (error rate, or latency
histogram), the traffic plan and a metric's settings, simulate releases whose canary is
worse by `min_effect` and judge each one look by look, as the flow does: baseline and
canary each get requests/s x share x interval new requests per look (Poisson, or fixed),
counts are cumulative since the analysis began, and a look detects the regression when the
sequential judge proves it. The detection probability by each look tells how many looks (and
so what lifetime) catch it with 90 % probability.

The judge's own evidence functions (canary.judge.sequential.ratio_log_evidence and
histogram_log_evidence, the ones compare_counts and compare_histograms decide with) are
evaluated here on arrays of all simulated releases and looks at once, and a release ends at
its first decision. A histogram's evidence at a look depends on the looks before it (its
e-processes bet on each look's new requests with what the earlier looks taught them), so it
is always evaluated on the releases' whole paths from look 1, with the release's planned
number of looks (`schedule.looks`), as the flow judges them. The canary's latencies are the
baseline's scaled by (1 + min_effect), the baseline's distribution read from production's
buckets with linear interpolation inside each bucket (as histogram_quantile): that affects
the estimate, never the test's validity.

Pure: numbers in, a frozen plan out; randomness only from the caller's numpy Generator.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TypedDict

import numpy as np
from typing_extensions import TypeIs, Unpack

from canary.analysis.plan_text import _duration, _pct, describe
from canary.analysis.plans import (
    POWER,
    HistogramLike,
    LookSchedule,
    MetricPlan,
    ProductionCounts,
    ReleasePlan,
)
from canary.analysis.simulation import Model, histogram_model, ratio_model, run_looks
from canary.config import CanaryConfig, MetricConfig
from canary.errors import ConfigError
from canary.judge.count_metrics import DEFAULT_ALPHA, DEFAULT_TOLERANCE
from canary.judge.sequential import compare_counts

__all__ = [
    "DEFAULT_MIN_EFFECT",
    "MAX_LOOKS",
    "POWER",
    "SIMULATIONS",
    "LookSchedule",
    "MetricPlan",
    "PlanOptions",
    "ReleasePlan",
    "check_effects",
    "count_metrics",
    "describe",
    "plan_config",
    "plan_metric",
]

#: The smallest regression worth catching when a metric sets no minEffect (relative).
DEFAULT_MIN_EFFECT = {"ratio": 1.0, "histogram": 0.1}
MAX_LOOKS = 100
SIMULATIONS = 400


class PlanOptions(TypedDict, total=False):
    """plan_metric's simulation settings, as plan_config passes them on."""

    power: float
    max_looks: int
    simulations: int
    arrivals: str
    min_requests: int
    aa: bool


class _PlanFields(TypedDict):
    """MetricPlan's fields every outcome shares."""

    name: str
    kind: str
    schedule: LookSchedule
    direction: str
    alpha: float
    tolerance: float
    min_effect: float
    unit: str
    power: float
    request_rate: float
    tolerance_on: str
    safe_rate: float | None


def plan_metric(name: str, counts: ProductionCounts | None, *, request_rate: float, schedule: LookSchedule,
                rng: np.random.Generator, kind: str | None = None, direction: str = "increase",
                alpha: float | None = None, tolerance: float | None = None, min_effect: float | None = None,
                unit: str = "", power: float = POWER, max_looks: int = MAX_LOOKS,
                simulations: int = SIMULATIONS, arrivals: str = "poisson", min_requests: int = 0,
                aa: bool = True, tolerance_on: str = "quantile",
                safe_rate: float | None = None) -> MetricPlan:  # fmt: skip
    """Plan one count metric from production's `counts` over a recent window.

    `counts` has `events` and `total` (a ratio metric) or `upper_bounds` and cumulative
    `buckets` (a histogram), or is None when production has no series for the metric;
    `kind` ("ratio" or "histogram") is taken from `counts` unless given.
    `request_rate` is production's requests per second; each track gets rate x share per
    look. `min_effect` is relative (None: DEFAULT_MIN_EFFECT): the canary's error rate is
    production's x (1 + min_effect), its latencies production's x (1 + min_effect) (x (1 -
    min_effect) for direction "decrease"; "either" is simulated as an increase).
    `tolerance_on` (histograms) and `safe_rate` (ratios) are the metric's settings, as the
    judge takes them; the looks are judged as the flow judges them, each with the looks
    before it, `schedule.looks` the release's planned number of looks.

    Returns:
        The plan ("planned"), or why there is none (status "missing", "no-traffic",
        "no-events").

    Raises:
        ConfigError: on settings the judge or the simulation cannot take.
    """
    _check_options(name, request_rate, rng, arrivals, power, max_looks, simulations)
    kind = _kind(name, counts, kind)
    a = DEFAULT_ALPHA if alpha is None else float(alpha)
    tol = DEFAULT_TOLERANCE if tolerance is None else float(tolerance)
    effect = DEFAULT_MIN_EFFECT[kind] if min_effect is None else float(min_effect)
    _check_settings(name, kind, direction, effect, tolerance_on, safe_rate)
    fields: _PlanFields = {"name": name, "kind": kind, "schedule": schedule, "direction": direction,
                           "alpha": a, "tolerance": tol, "min_effect": effect, "unit": unit, "power": power,
                           "request_rate": float(request_rate), "tolerance_on": tolerance_on,
                           "safe_rate": safe_rate}  # fmt: skip
    compare_counts(0, 1, 0, 1, direction=direction, alpha=a, tolerance=tol,
                   safe_rate=safe_rate)  # the judge's checks
    unplanned = _unplannable(counts, kind, request_rate, fields)
    if unplanned is not None:
        return unplanned
    assert counts is not None  # without counts a metric has no plan (_unplannable)
    warnings: list[str] = []
    model = _model(counts, fields, rng, warnings)
    plan = _simulate(model, fields, rng, max_looks=max_looks, simulations=simulations, arrivals=arrivals,
                     aa=aa)  # fmt: skip
    guard = _guard_warning(schedule, request_rate, min_requests)
    if guard:
        warnings.append(guard)
    return MetricPlan(status="planned", reason="", simulations=simulations, warnings=tuple(warnings),
                      **plan, **model[3], **fields)  # fmt: skip


class _Simulated(TypedDict):
    """What the simulated releases tell a MetricPlan."""

    detection: tuple[float, ...]
    requests: tuple[float, ...]
    looks_needed: int | None
    aa_safe: tuple[float, ...]
    aa_false_alarm: float | None


def _simulate(model: Model, f: _PlanFields, rng: np.random.Generator, *, max_looks: int, simulations: int,
              arrivals: str, aa: bool) -> _Simulated:  # fmt: skip
    """Releases worse by min_effect until the detection chance reaches the power (or
    max_looks), and (`aa`) releases no worse than production over the lifetime."""
    draw, aa_draw, judge, _ = model
    schedule, power = f["schedule"], f["power"]
    horizon = max(max_looks, schedule.looks)
    lam = np.array([f["request_rate"] * schedule.share(k) / 100 * schedule.interval
                    for k in range(1, horizon + 1)])  # fmt: skip
    threshold = math.log(1.0 / f["alpha"])
    curve, _ = run_looks(draw, judge, lam, looks=horizon, stop=power, min_looks=schedule.looks,
                         sims=simulations, how=arrivals, threshold=threshold, rng=rng)  # fmt: skip
    aa_safe: list[float] = []
    false_alarm = None
    if aa:
        false_curve, aa_safe = run_looks(aa_draw, judge, lam, looks=schedule.looks, stop=None,
                                         min_looks=schedule.looks, sims=simulations, how=arrivals,
                                         threshold=threshold, rng=rng)  # fmt: skip
        false_alarm = false_curve[-1]
    return {"detection": tuple(curve), "requests": tuple(np.cumsum(lam[:len(curve)]).tolist()),
            "looks_needed": next((k + 1 for k, p in enumerate(curve) if p >= power), None),
            "aa_safe": tuple(aa_safe), "aa_false_alarm": false_alarm}  # fmt: skip


def _check_options(name: str, request_rate: float, rng: object, arrivals: str, power: float, max_looks: int,
                   simulations: int) -> None:  # fmt: skip
    """The simulation's settings and production's request rate, checked."""
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(f"rng must be a numpy Generator (np.random.default_rng(seed)), got {rng!r}")
    if arrivals not in ("poisson", "fixed"):
        raise ConfigError(f"arrivals must be 'poisson' or 'fixed', got {arrivals!r}")
    if not 0 < power < 1 or max_looks < 1 or simulations < 10:
        raise ConfigError(f"need 0 < power < 1, max_looks >= 1 and simulations >= 10, got "
                          f"{power}, {max_looks}, {simulations}")  # fmt: skip
    if not (isinstance(request_rate, int | float) and math.isfinite(request_rate) and request_rate >= 0):
        raise ConfigError(f"metric {name!r}: request_rate must be a finite number >= 0 (requests/s), got {request_rate!r}")


def _is_histogram(counts: ProductionCounts) -> TypeIs[HistogramLike]:
    """Histogram counts have buckets; ratio counts have events and a total."""
    return hasattr(counts, "buckets")


def _kind(name: str, counts: ProductionCounts | None, kind: str | None) -> str:
    """The metric's kind: as given, else from its counts ("ratio" without either)."""
    found = None if counts is None else "histogram" if _is_histogram(counts) else "ratio"
    kind = kind or found or "ratio"
    if kind not in DEFAULT_MIN_EFFECT or (found is not None and found != kind):
        raise ConfigError(f"metric {name!r}: kind {kind!r} does not fit its counts ({found}); "
                          "give ratio counts (events, total) or histogram counts (upper_bounds, buckets)")  # fmt: skip
    return kind


def _check_settings(name: str, kind: str, direction: str, effect: float, tolerance_on: str,
                    safe_rate: float | None) -> None:  # fmt: skip
    """The metric's settings fit its kind, and its min_effect can happen."""
    if not effect > 0 or (direction == "decrease" and effect >= 1):
        raise ConfigError(f"metric {name!r}: min_effect {effect:g} must be > 0 (and < 1 for "
                          "direction 'decrease': a rate or latency cannot fall by 100 % or more)")  # fmt: skip
    if kind == "histogram" and safe_rate is not None:
        raise ConfigError(f"metric {name!r}: safe_rate applies to ratio metrics, not histograms")
    if kind == "ratio" and tolerance_on != "quantile":
        raise ConfigError(f"metric {name!r}: tolerance_on applies to histogram metrics, not ratios")


def _unplannable(counts: ProductionCounts | None, kind: str, request_rate: float,
                 fields: _PlanFields) -> MetricPlan | None:  # fmt: skip
    """The plan when production's counts cannot carry one (no series, traffic or events)."""
    if counts is None or (_is_histogram(counts) and not counts.buckets):
        return MetricPlan(status="missing", reason="production has no series for it: the query "
                          "matches nothing (does the app export it, and does the scope label match?)",
                          **fields)  # fmt: skip
    total = _total(counts)
    if total <= 0 or request_rate <= 0:
        return MetricPlan(status="no-traffic", reason="production served no requests in the "
                          "window: there is no traffic to plan with (is the app serving, and "
                          "is the production scope right?)", **fields)  # fmt: skip
    if not _is_histogram(counts) and counts.events <= 0:
        return MetricPlan(status="no-events", reason=f"production had no events in the window "
                          f"(0 of {total:.0f} requests), and a relative change of a zero rate "
                          "is still zero: plan over a longer window that has some", **fields)  # fmt: skip
    return None


def _model(counts: ProductionCounts, f: _PlanFields, rng: np.random.Generator, warnings: list[str]) -> Model:
    """The simulation's model: production's counts and a canary worse by min_effect
    (`warnings` gets what the plan should say about it)."""
    if f["min_effect"] <= f["tolerance"]:
        warnings.append(f"min_effect {f['min_effect']:g} is within the tolerance {f['tolerance']:g}: the judge "
                        "treats such a change as no regression, so it is not caught")  # fmt: skip
    factor = 1.0 - f["min_effect"] if f["direction"] == "decrease" else 1.0 + f["min_effect"]
    if _is_histogram(counts):
        return histogram_model(counts, factor, f["direction"], f["alpha"], f["tolerance"], f["unit"],
                               f["tolerance_on"], f["schedule"].looks, rng, warnings)  # fmt: skip
    return ratio_model(float(counts.events) / _total(counts), factor, f["direction"], f["tolerance"],
                       f["safe_rate"], rng, warnings)  # fmt: skip


def _total(counts: ProductionCounts | None) -> float:
    """Requests behind production's counts (0 without counts)."""
    if counts is None:
        return 0.0
    if _is_histogram(counts):
        return float(counts.buckets[-1]) if counts.buckets else 0.0
    return float(counts.total)


def _guard_warning(schedule: LookSchedule, rate: float, min_requests: int) -> str | None:
    """The traffic guard stops a release when a track gets < min_requests in one look."""
    if min_requests <= 0:
        return None
    ok = 1.0
    for look in range(1, schedule.looks + 1):
        lam = rate * schedule.share(look) / 100 * schedule.interval
        below = sum(math.exp(k * math.log(lam) - lam - math.lgamma(k + 1)) for k in range(min_requests)) if lam > 0 else 1.0
        ok *= (1.0 - min(below, 1.0)) ** 2
    if ok >= 0.99:
        return None
    first = rate * schedule.share(1) / 100 * schedule.interval
    return (f"the traffic guard (guards.minRequests {min_requests}) would stop about "
            f"{_pct(1 - ok)} of releases: at {schedule.share(1):g}% share each track gets "
            f"~{first:.3g} requests per {_duration(schedule.interval)} look; raise the share or "
            "the interval")  # fmt: skip



def count_metrics(config: CanaryConfig) -> tuple[MetricConfig, ...]:
    """The metrics planning applies to: ratio and histogram metrics (the sequential judge)."""
    return tuple(m for m in config.metrics if m.evidence in ("ratio", "histogram"))


def check_effects(config: CanaryConfig, effects: Mapping[str, float]) -> None:
    """Every overridden min_effect names a count metric of the config and is > 0."""
    names = {m.name for m in count_metrics(config)}
    for name, value in effects.items():
        if name not in names:
            known = ", ".join(sorted(names)) or "none"
            raise ConfigError(f"effect for {name!r}: canary config {config.name!r} has no count "
                              f"metric of that name (count metrics: {known})")  # fmt: skip
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise ConfigError(f"effect for {name!r} must be a number > 0 (0.5 = +50 %), got {value!r}")


def plan_config(
    config: CanaryConfig,
    schedule: LookSchedule,
    production: Mapping[str, ProductionCounts | None],
    *,
    window: float,
    rng: np.random.Generator,
    effects: Mapping[str, float] | None = None,
    **options: Unpack[PlanOptions],
) -> ReleasePlan:
    """Plan every count metric of `config` from production's counts over the last `window`
    seconds (`production[name]` as for plan_metric; absent or None = no series). `effects`
    overrides metrics' minEffect; `options` go to plan_metric (power, simulations, ...).

    Raises:
        ConfigError: a window of 0 seconds, or an effect for a metric the config lacks.
    """
    if not window > 0:
        raise ConfigError(f"window must be longer than 0 seconds, got {window!r}")
    effects = dict(effects or {})
    check_effects(config, effects)
    metrics = count_metrics(config)
    series = [m.name for m in config.metrics if m not in metrics]
    notes = []
    if not metrics:
        notes.append(f"canary config {config.name!r} has no count metrics: planning applies "
                     "to ratio and histogram metrics, which the sequential judge decides on "
                     "as traffic arrives; its series metrics are judged on the lifetime given")  # fmt: skip
    elif series:
        notes.append(f"not planned (series metrics, judged on range-query points): {', '.join(series)}")
    options.setdefault("min_requests", config.guards.min_requests)
    plans = []
    for metric in metrics:
        counts = production.get(metric.name)
        total = _total(counts)
        hist = metric.histogram_counters
        cfg = metric.canary
        plans.append(plan_metric(
            metric.name, counts, request_rate=total / window, schedule=schedule, rng=rng,
            kind=metric.evidence, direction=cfg.direction, alpha=cfg.alpha, tolerance=cfg.tolerance,
            min_effect=effects.get(metric.name, cfg.min_effect),
            unit=hist.unit if hist is not None else "", tolerance_on=cfg.tolerance_on or "quantile",
            safe_rate=cfg.safe_rate, **options,
        ))  # fmt: skip
    return ReleasePlan(config.name or "", float(window), schedule, tuple(plans), tuple(notes))

