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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from canary.analysis.windows import effective_interval
from canary.config import AnalysisPlan, CanaryConfig, MetricConfig, PrometheusQuery
from canary.errors import ConfigError
from canary.judge.interval import DEFAULT_ALPHA, DEFAULT_TOLERANCE
from canary.judge.sequential import (
    compare_counts,
    compare_histograms,
    format_value,
    histogram_log_evidence,
    ratio_log_evidence,
)

__all__ = [
    "DEFAULT_MIN_EFFECT",
    "MAX_LOOKS",
    "POWER",
    "SIMULATIONS",
    "LookSchedule",
    "MetricPlan",
    "ReleasePlan",
    "check_effects",
    "count_metrics",
    "describe",
    "plan_config",
    "plan_metric",
]

#: The smallest regression worth catching when a metric sets no minEffect (relative).
DEFAULT_MIN_EFFECT = {"ratio": 1.0, "histogram": 0.1}
POWER = 0.9
MAX_LOOKS = 100
SIMULATIONS = 400
_BLOCK = 10  # looks simulated at once at first; the plan stops once it has its answer
_CHUNK = 40_000  # looks x releases x bounds judged per call (work arrays that fit in cache)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class LookSchedule:
    """When the judge looks and at which share: look i judges the counts of i intervals,
    the i-th served at `shares[i - 1]` percent per track (the last share holds after)."""

    shares: tuple[float, ...]
    interval: float  # seconds between looks
    looks: int  # looks within the lifetime
    lifetime: float  # seconds, after the warm-up
    begin_after: float = 0.0

    def __post_init__(self) -> None:
        if not self.shares or any(not 0 < s <= 50 for s in self.shares):
            raise ConfigError(f"traffic shares must be 1..50 percent per track, got {self.shares}")
        if not self.interval > 0 or self.looks < 1 or not self.lifetime > 0 or self.begin_after < 0:
            raise ConfigError(
                f"a schedule needs interval > 0, looks >= 1, lifetime > 0 and begin_after >= 0, "
                f"got interval {self.interval}, looks {self.looks}, lifetime {self.lifetime}, "
                f"begin_after {self.begin_after}"
            )

    @classmethod
    def from_plan(cls, analysis: AnalysisPlan, steps: Sequence[int]) -> LookSchedule:
        """A release's schedule: `spec.analysis` and `spec.traffic.steps`."""
        if analysis.lifetime is None or analysis.end_time is not None:
            raise ConfigError("planning needs analysis.lifetime (a live release), not an end_time")
        interval = effective_interval(analysis, start=_EPOCH)
        return cls(tuple(float(s) for s in steps), interval.total_seconds(),
                   int(analysis.lifetime // interval), analysis.lifetime.total_seconds(),
                   analysis.begin_after.total_seconds())  # fmt: skip

    def share(self, look: int) -> float:
        return self.shares[min(look, len(self.shares)) - 1]

    def at(self, looks: int) -> float:
        """Seconds from the release's start to look `looks`."""
        return self.begin_after + looks * self.interval


@dataclass(frozen=True, slots=True)
class MetricPlan:
    """One count metric's plan. `status` is "planned", or why there is none ("missing",
    "no-traffic", "no-events"; `reason` says it in words).

    `detection[k]` is the chance that the judge has proven the regression by look k + 1,
    `requests[k]` the expected requests per track by then; both run past the lifetime until
    the chance reaches `power` or `max_looks`. `aa_safe[k]` is the chance that a canary no
    worse than production is decided within tolerance by look k + 1 (within the lifetime),
    `aa_false_alarm` that it is wrongly caught within the lifetime.
    """

    name: str
    kind: str
    status: str
    reason: str
    schedule: LookSchedule
    direction: str = "increase"
    alpha: float = DEFAULT_ALPHA
    tolerance: float = DEFAULT_TOLERANCE
    min_effect: float = 0.0
    unit: str = ""
    request_rate: float = 0.0
    baseline: float | None = None  # error rate, or production's p90
    canary: float | None = None  # the same for a canary worse by min_effect
    quantiles: tuple[tuple[float, float], ...] = ()  # (q, production's value), histograms
    power: float = POWER
    detection: tuple[float, ...] = ()
    requests: tuple[float, ...] = ()
    looks_needed: int | None = None
    aa_safe: tuple[float, ...] = ()
    aa_false_alarm: float | None = None
    simulations: int = 0
    warnings: tuple[str, ...] = ()
    #: histograms: what the tolerance bounds ("quantile" or "share"); ratios: the safe rate
    tolerance_on: str = "quantile"
    safe_rate: float | None = None

    @property
    def safe_looks_needed(self) -> int | None:
        """The first look by which a canary no worse than production is decided within
        tolerance (promoted early) with probability `power`; None: not within the lifetime."""
        return next((k + 1 for k, p in enumerate(self.aa_safe) if p >= self.power), None)

    @property
    def planned(self) -> bool:
        return self.status == "planned"

    @property
    def lifetime_detection(self) -> float | None:
        looks = self.schedule.looks
        return self.detection[looks - 1] if len(self.detection) >= looks else None

    @property
    def lifetime_suffices(self) -> bool | None:
        if not self.planned:
            return None
        return self.looks_needed is not None and self.looks_needed <= self.schedule.looks

    @property
    def seconds_needed(self) -> float | None:
        return None if self.looks_needed is None else self.schedule.at(self.looks_needed)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(planned=self.planned, lifetime_detection=self.lifetime_detection,
                   lifetime_suffices=self.lifetime_suffices, seconds_needed=self.seconds_needed,
                   safe_looks_needed=self.safe_looks_needed,
                   lifetime_needed=None if self.looks_needed is None
                   else self.looks_needed * self.schedule.interval)  # fmt: skip
        finite: dict[str, Any] = _finite(out)
        return finite


@dataclass(frozen=True, slots=True)
class ReleasePlan:
    """The plans of a config's count metrics, and notes on what was not planned."""

    config: str
    window: float  # seconds of production data the plans rest on
    schedule: LookSchedule
    metrics: tuple[MetricPlan, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        finite: dict[str, Any] = _finite({"config": self.config, "window": self.window,
                        "schedule": asdict(self.schedule), "notes": list(self.notes),
                        "metrics": [m.to_dict() for m in self.metrics]})  # fmt: skip
        return finite


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: None instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


# -- simulation --------------------------------------------------------------------------


Draw = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
#: judge(control path, experiment path, safe, first): the evidence at looks first + 1 ..
#: of the paths given (axis 0: every look from look 1, counts cumulative since the start)
Judge = Callable[[np.ndarray, np.ndarray, bool, int], tuple[np.ndarray, np.ndarray | None]]


def _arrivals(lam: np.ndarray, sims: int, how: str, rng: np.random.Generator) -> np.ndarray:
    if how == "fixed":
        return np.broadcast_to(np.round(lam)[:, None], (lam.size, sims)).astype(np.int64)
    return rng.poisson(lam[:, None], size=(lam.size, sims))


def _run(draw: Draw, judge: Judge, lam: np.ndarray, *, looks: int, stop: float | None,
         min_looks: int, sims: int, how: str, threshold: float,
         rng: np.random.Generator) -> tuple[list[float], list[float]]:  # fmt: skip
    """(P(regression proven by look k), P(decided within tolerance first by look k)).

    Simulates blocks of looks until `looks`, or earlier once `min_looks` are done and the
    detection chance reached `stop` (then "within tolerance" is not evaluated). Each side's
    counts are cumulative (`draw` adds a block's new requests to the state it returns). The
    evidence at a look depends on the looks before it (the e-processes bet on each look's
    new requests with what the earlier ones taught them), so every block is judged on the
    releases' whole paths from look 1; blocks double in length, so re-judging the earlier
    looks costs at most about as much again."""
    detected, safe = np.zeros(sims, bool), np.zeros(sims, bool)
    paths: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
    curve, safe_curve = [], []
    look = 0
    while look < looks:
        end = min(looks, max(look + _BLOCK, 2 * look, min_looks))
        block = lam[look:end]
        n_c, n_e = _arrivals(block, sims, how, rng), _arrivals(block, sims, how, rng)
        c, e = draw(n_c, n_e)
        if paths[0]:
            c, e = c + paths[0][-1][-1], e + paths[1][-1][-1]
        paths[0].append(c)
        paths[1].append(e)
        # a release ends at its first decision: judge only those still undecided
        live = np.nonzero(~(detected | safe))[0]
        if live.size:
            whole_c, whole_e = np.concatenate(paths[0])[:, live], np.concatenate(paths[1])[:, live]
            reg, within = judge(whole_c, whole_e, stop is None, look)
        for r in range(block.size):
            if live.size:
                open_ = ~(detected[live] | safe[live])
                if within is not None:
                    safe[live] |= (within[r] >= threshold) & (reg[r] < threshold) & open_
                detected[live] |= (reg[r] >= threshold) & open_
            curve.append(float(detected.mean()))
            safe_curve.append(float(safe.mean()))
        look = end
        if stop is not None and look >= min_looks and curve[-1] >= stop:
            break
    return curve, safe_curve


def _ratio_draw(p_base: float, p_canary: float, rng: np.random.Generator) -> Draw:
    def draw(n_c: np.ndarray, n_e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ev_c, ev_e = rng.binomial(n_c, p_base), rng.binomial(n_e, p_canary)
        def stack(ev: np.ndarray, n: np.ndarray) -> np.ndarray:
            return np.stack([ev, n], axis=-1).cumsum(axis=0).astype(float)

        return stack(ev_c, n_c), stack(ev_e, n_e)

    return draw


def _histogram_draw(p_base: np.ndarray, p_canary: np.ndarray, rng: np.random.Generator) -> Draw:
    def draw(n_c: np.ndarray, n_e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        def side(n: np.ndarray, p: np.ndarray) -> np.ndarray:
            return rng.multinomial(n, p).cumsum(axis=-1).cumsum(axis=0).astype(float)

        return side(n_c, p_base), side(n_e, p_canary)

    return draw


def _cdf(bounds: np.ndarray, cumulative: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Production's CDF as points for linear interpolation (0 below the first bucket's
    lower end, which is 0 for positive bounds, as in histogram_quantile)."""
    finite, shares = bounds[:-1], cumulative[:-1] / cumulative[-1]
    if finite[0] > 0:
        return np.concatenate([[0.0], finite]), np.concatenate([[0.0], shares])
    return finite, shares


def _scaled_probs(bounds: np.ndarray, cumulative: np.ndarray, factor: float) -> np.ndarray:
    """Bucket probabilities of latencies factor x production's (beyond the last finite
    bound nothing moves: the +Inf bucket keeps its share)."""
    xs, fs = _cdf(bounds, cumulative)
    scaled = np.interp(bounds[:-1] / factor, xs, fs, left=0.0, right=fs[-1])
    return np.diff(np.concatenate([[0.0], scaled, [1.0]])).clip(min=0.0)


def _quantile(bounds: np.ndarray, cumulative: np.ndarray, q: float) -> float:
    """histogram_quantile's estimate (the highest finite bound when in the +Inf bucket)."""
    xs, fs = _cdf(bounds, cumulative)
    i = int(np.searchsorted(fs, q, side="left"))
    if i >= fs.size:
        return float(xs[-1])
    if i == 0:
        return float(xs[0])
    width = fs[i] - fs[i - 1]
    frac = (q - fs[i - 1]) / width if width > 0 else 1.0
    return float(xs[i - 1] + frac * (xs[i] - xs[i - 1]))


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


def _ratio_model(p_base: float, factor: float, direction: str, tol: float, safe_rate: float | None,
                 rng: np.random.Generator, warnings: list[str]) -> tuple[Draw, Draw, Judge, dict[str, Any]]:  # fmt: skip
    """(draw with the regression, draw without, the rule, what the plan shows)."""
    p_canary = p_base * factor
    if p_canary > 1:
        warnings.append(f"the canary's rate {_rate(p_base)} x {factor:g} exceeds 100%; simulated at 100%")
        p_canary = 1.0

    def judge(c: np.ndarray, e: np.ndarray, _safe: bool, first: int) -> tuple[np.ndarray, np.ndarray]:
        # a rate's evidence rests on the cumulative counts of the look alone: no path needed
        c, e = c[first:], e[first:]
        reg, within, _, _ = ratio_log_evidence(c[..., 0], c[..., 1], e[..., 0], e[..., 1],
                                               direction=direction, tolerance=tol,
                                               safe_rate=safe_rate)  # fmt: skip
        return reg, within

    return (_ratio_draw(p_base, p_canary, rng), _ratio_draw(p_base, p_base, rng), judge,
            {"baseline": p_base, "canary": p_canary})  # fmt: skip


def _histogram_model(counts: Any, factor: float, direction: str, alpha: float, tol: float, unit: str,
                     tolerance_on: str, planned_looks: int, rng: np.random.Generator,
                     warnings: list[str]) -> tuple[Draw, Draw, Judge, dict[str, Any]]:  # fmt: skip
    bounds = np.asarray(counts.upper_bounds, dtype=float)
    cumulative = np.asarray(counts.buckets, dtype=float)
    compare_histograms(cumulative, cumulative, bounds, direction=direction, alpha=alpha,
                       tolerance=tol, unit=unit, tolerance_on=tolerance_on,
                       planned_looks=planned_looks)  # the judge's checks of the buckets
    p_base = np.diff(np.concatenate([[0.0], cumulative])) / cumulative[-1]
    if np.count_nonzero(p_base) < 2:
        warnings.append("production's requests all fall into one bucket: the buckets cannot "
                        "show a latency change; add bucket bounds around it")  # fmt: skip
    finite = bounds[:-1]

    def judge(c: np.ndarray, e: np.ndarray, safe: bool, first: int) -> tuple[np.ndarray, np.ndarray | None]:
        # The whole path from look 1: each look's evidence rests on the looks before it.
        # A few releases at a time: the evidence's work arrays then stay in the CPU's
        # caches, several times faster than all releases at once.
        step = max(1, _CHUNK // max(1, c.shape[0] * finite.size))
        regs, withins = [], []
        for i in range(0, c.shape[1], step):
            reg, within, _, _ = histogram_log_evidence(
                c[:, i:i + step], e[:, i:i + step], finite, direction=direction, tolerance=tol,
                safe=safe, tolerance_on=tolerance_on, alpha=alpha, planned_looks=planned_looks)  # fmt: skip
            regs.append(reg[first:])
            if within is not None:
                withins.append(within[first:])
        return np.concatenate(regs, axis=1), np.concatenate(withins, axis=1) if withins else None

    quantiles = tuple((q, _quantile(bounds, cumulative, q)) for q in (0.5, 0.9, 0.99))
    p90 = quantiles[1][1]
    return (_histogram_draw(p_base, _scaled_probs(bounds, cumulative, factor), rng),
            _histogram_draw(p_base, p_base, rng), judge,
            {"baseline": p90, "canary": p90 * factor, "quantiles": quantiles})  # fmt: skip


def plan_metric(
    name: str,
    counts: Any,
    *,
    request_rate: float,
    schedule: LookSchedule,
    rng: np.random.Generator,
    kind: str | None = None,
    direction: str = "increase",
    alpha: float | None = None,
    tolerance: float | None = None,
    min_effect: float | None = None,
    unit: str = "",
    power: float = POWER,
    max_looks: int = MAX_LOOKS,
    simulations: int = SIMULATIONS,
    arrivals: str = "poisson",
    min_requests: int = 0,
    aa: bool = True,
    tolerance_on: str = "quantile",
    safe_rate: float | None = None,
) -> MetricPlan:
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
    """
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(f"rng must be a numpy Generator (np.random.default_rng(seed)), got {rng!r}")
    if arrivals not in ("poisson", "fixed"):
        raise ConfigError(f"arrivals must be 'poisson' or 'fixed', got {arrivals!r}")
    if not 0 < power < 1 or max_looks < 1 or simulations < 10:
        raise ConfigError(f"need 0 < power < 1, max_looks >= 1 and simulations >= 10, got "
                          f"{power}, {max_looks}, {simulations}")  # fmt: skip
    if not (isinstance(request_rate, int | float) and math.isfinite(request_rate) and request_rate >= 0):
        raise ConfigError(f"metric {name!r}: request_rate must be a finite number >= 0 (requests/s), got {request_rate!r}")
    found = None if counts is None else "histogram" if hasattr(counts, "buckets") else "ratio"
    kind = kind or found or "ratio"
    if kind not in DEFAULT_MIN_EFFECT or (found is not None and found != kind):
        raise ConfigError(f"metric {name!r}: kind {kind!r} does not fit its counts ({found}); "
                          "give ratio counts (events, total) or histogram counts (upper_bounds, buckets)")  # fmt: skip
    a = DEFAULT_ALPHA if alpha is None else float(alpha)
    tol = DEFAULT_TOLERANCE if tolerance is None else float(tolerance)
    effect = DEFAULT_MIN_EFFECT[kind] if min_effect is None else float(min_effect)
    if not effect > 0 or (direction == "decrease" and effect >= 1):
        raise ConfigError(f"metric {name!r}: min_effect {effect:g} must be > 0 (and < 1 for "
                          "direction 'decrease': a rate or latency cannot fall by 100 % or more)")  # fmt: skip
    if kind == "histogram" and safe_rate is not None:
        raise ConfigError(f"metric {name!r}: safe_rate applies to ratio metrics, not histograms")
    if kind == "ratio" and tolerance_on != "quantile":
        raise ConfigError(f"metric {name!r}: tolerance_on applies to histogram metrics, not ratios")
    common: dict[str, Any] = {"name": name, "kind": kind, "schedule": schedule, "direction": direction, "alpha": a,
              "tolerance": tol, "min_effect": effect, "unit": unit, "power": power,
              "request_rate": float(request_rate), "tolerance_on": tolerance_on,
              "safe_rate": safe_rate}  # fmt: skip
    compare_counts(0, 1, 0, 1, direction=direction, alpha=a, tolerance=tol,
                   safe_rate=safe_rate)  # the judge's checks
    if counts is None or (kind == "histogram" and not counts.buckets):
        return MetricPlan(status="missing", reason="production has no series for it: the query "
                          "matches nothing (does the app export it, and does the scope label match?)",
                          **common)  # fmt: skip
    total = _total(counts)
    if total <= 0 or request_rate <= 0:
        return MetricPlan(status="no-traffic", reason="production served no requests in the "
                          "window: there is no traffic to plan with (is the app serving, and "
                          "is the production scope right?)", **common)  # fmt: skip
    if kind == "ratio" and counts.events <= 0:
        return MetricPlan(status="no-events", reason=f"production had no events in the window "
                          f"(0 of {total:.0f} requests), and a relative change of a zero rate "
                          "is still zero: plan over a longer window that has some", **common)  # fmt: skip

    factor = 1.0 - effect if direction == "decrease" else 1.0 + effect
    warnings = []
    if effect <= tol:
        warnings.append(f"min_effect {effect:g} is within the tolerance {tol:g}: the judge "
                        "treats such a change as no regression, so it is not caught")  # fmt: skip
    if kind == "ratio":
        model = _ratio_model(float(counts.events) / total, factor, direction, tol, safe_rate, rng,
                             warnings)  # fmt: skip
    else:
        model = _histogram_model(counts, factor, direction, a, tol, unit, tolerance_on,
                                 schedule.looks, rng, warnings)  # fmt: skip
    draw, aa_draw, judge, extra = model

    horizon = max(max_looks, schedule.looks)
    lam = np.array([request_rate * schedule.share(k) / 100 * schedule.interval
                    for k in range(1, horizon + 1)])  # fmt: skip
    threshold = math.log(1.0 / a)
    run: dict[str, Any] = {"sims": simulations, "how": arrivals, "threshold": threshold, "rng": rng}
    curve, _ = _run(draw, judge, lam, looks=horizon, stop=power, min_looks=schedule.looks, **run)
    aa_safe: list[float] = []
    false_alarm = None
    if aa:
        false_curve, aa_safe = _run(aa_draw, judge, lam, looks=schedule.looks, stop=None,
                                    min_looks=schedule.looks, **run)  # fmt: skip
        false_alarm = false_curve[-1]
    needed = next((k + 1 for k, p in enumerate(curve) if p >= power), None)
    guard = _guard_warning(schedule, request_rate, min_requests)
    if guard:
        warnings.append(guard)
    return MetricPlan(status="planned", reason="", detection=tuple(curve),
                      requests=tuple(np.cumsum(lam[:len(curve)]).tolist()), looks_needed=needed,
                      aa_safe=tuple(aa_safe), aa_false_alarm=false_alarm, simulations=simulations,
                      warnings=tuple(warnings), **extra, **common)  # fmt: skip


def _total(counts: Any) -> float:
    """Requests behind production's counts (0 without counts)."""
    if counts is None:
        return 0.0
    if hasattr(counts, "buckets"):
        return float(counts.buckets[-1]) if counts.buckets else 0.0
    return float(counts.total)


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
    production: Mapping[str, Any],
    *,
    window: float,
    rng: np.random.Generator,
    effects: Mapping[str, float] | None = None,
    **options: Any,
) -> ReleasePlan:
    """Plan every count metric of `config` from production's counts over the last `window`
    seconds (`production[name]` as for plan_metric; absent or None = no series). `effects`
    overrides metrics' minEffect; `options` go to plan_metric (power, simulations, ...)."""
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
        query, hist = metric.query, None  # evidence "histogram": a PrometheusQuery's histogram
        if isinstance(query, PrometheusQuery) and metric.evidence == "histogram":
            hist = query.histogram
        cfg = metric.canary
        plans.append(plan_metric(
            metric.name, counts, request_rate=total / window, schedule=schedule, rng=rng,
            kind=metric.evidence, direction=cfg.direction, alpha=cfg.alpha, tolerance=cfg.tolerance,
            min_effect=effects.get(metric.name, cfg.min_effect),
            unit=hist.unit if hist is not None else "", tolerance_on=cfg.tolerance_on or "quantile",
            safe_rate=cfg.safe_rate, **options,
        ))  # fmt: skip
    return ReleasePlan(config.name or "", float(window), schedule, tuple(plans), tuple(notes))


# -- words ------------------------------------------------------------------------------


def _pct(share: float) -> str:
    value = 100 * share
    return f"{value:.2g}%" if value < 10 else f"{value:.0f}%"


def _rate(share: float) -> str:
    return f"{100 * share:.3g}%"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.3g}s"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s"


def _about(n: float) -> str:
    return f"{float(f'{n:.2g}'):,.0f}" if n >= 10 else f"{n:.2g}"


def _shares(schedule: LookSchedule, looks: int) -> str:
    used = [schedule.share(k) for k in range(1, looks + 1)]
    lo, hi = min(used), max(used)
    return f"{lo:g}%" if lo == hi else f"{lo:g}-{hi:g}%"


def _describe_metric(p: MetricPlan) -> list[str]:
    if not p.planned:
        return [f"{p.name}: no plan: {p.reason}"]
    s = p.schedule
    effect = f"-{100 * p.min_effect:.3g}%" if p.direction == "decrease" else f"+{100 * p.min_effect:.3g}%"
    if p.kind == "ratio":
        seen = f"production serves {p.request_rate:.3g} req/s at {_rate(p.baseline or 0)} errors"
        what = f"{effect} ({_rate(p.baseline or 0)} -> {_rate(p.canary or 0)})"
    else:
        qs = ", ".join(f"p{100 * q:g} {format_value(v, p.unit)}" for q, v in p.quantiles)
        seen = f"production serves {p.request_rate:.3g} req/s, {qs}"
        word = "faster" if p.direction == "decrease" else "slower"
        what = (f"{100 * p.min_effect:.3g}% {word} (p90 {format_value(p.baseline, p.unit)} -> "
                f"{format_value(p.canary, p.unit)})")  # fmt: skip
    if p.direction == "either":
        what += ", either direction tested"
    chance = f"{100 * p.power:.0f}% probability"
    lifetime = f"the lifetime {_duration(s.lifetime)} ({s.looks} look{'s' if s.looks > 1 else ''})"
    at_life = p.lifetime_detection or 0.0
    if p.looks_needed is not None:
        k = p.looks_needed
        need = (f"the canary needs {k} look{'s' if k > 1 else ''} ({_duration(s.at(k))} at "
                f"{_shares(s, k)} share, ~{_about(p.requests[k - 1])} requests per track)")  # fmt: skip
        if k <= s.looks:
            verdict = f"{lifetime} suffices: {_pct(at_life)}"
        else:
            verdict = (f"{lifetime} gives {_pct(at_life)}: set lifetime to at least "
                       f"{_duration(k * s.interval)}")  # fmt: skip
    else:
        k = len(p.detection)
        need = (f"the canary needs more than {k} looks ({_duration(s.at(k))} at {_shares(s, k)} "
                f"share, ~{_about(p.requests[-1])} requests per track), by which it reaches "
                f"{_pct(p.detection[-1])}")  # fmt: skip
        verdict = f"{lifetime} gives {_pct(at_life)}"
    lines = [f"{p.name}: {seen}; to catch {what} with {chance} {need}; {verdict}"]
    if p.aa_false_alarm is not None and p.aa_safe:
        by = ""
        if p.safe_looks_needed is not None:
            k = p.safe_looks_needed
            by = f" ({_pct(p.power)} by look {k}, {_duration(s.at(k))})"
        else:
            half = next((k + 1 for k, x in enumerate(p.aa_safe) if x >= 0.5), None)
            if half is not None:
                by = f" (half by look {half}, {_duration(s.at(half))})"
        within = "within tolerance"
        if p.safe_rate is not None:
            within += f" or below the safe rate {_rate(p.safe_rate)}"
        elif p.tolerance_on == "share":
            within += " (on the share of slower requests)"
        line = (f"  if the canary is no worse: decided {within} (early promotion) in "
                f"{_pct(p.aa_safe[-1])} of releases within the lifetime{by}"
                + (", never at look 1" if p.kind == "histogram" else "")
                + f"; false alarms {_pct(p.aa_false_alarm)} (at most alpha {_pct(p.alpha)})")  # fmt: skip
        if p.tolerance == 0 and p.safe_rate is None:
            line += ("; tolerance 0 asks to prove the canary no worse at all, which an equal "
                     "canary rarely shows: a tolerance (e.g. 0.1) lets it promote early")  # fmt: skip
            if p.kind == "ratio" and p.direction == "increase":
                line += ", and so does a safeRate (a rate the canary may always have)"
        lines.append(line)
    lines.extend(f"  warning: {w}" for w in p.warnings)
    return lines


def describe(plan: ReleasePlan | MetricPlan) -> list[str]:
    """The plan in lines a person reads (for the release report and `python -m canary plan`)."""
    if isinstance(plan, MetricPlan):
        return _describe_metric(plan)
    s = plan.schedule
    lines = [f"plan for {plan.config!r} from production's last {_duration(plan.window)}: looks "
             f"every {_duration(s.interval)} after a {_duration(s.begin_after)} warm-up, "
             f"shares {', '.join(f'{x:g}%' for x in s.shares)} per track"]  # fmt: skip
    for metric in plan.metrics:
        lines.extend(_describe_metric(metric))
    lines.extend(plan.notes)
    return lines
