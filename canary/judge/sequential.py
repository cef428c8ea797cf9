"""Request-level, anytime-valid comparisons of canary and baseline: the default judge.

Both functions take the counts Prometheus holds, cumulative since the analysis began, and
may be called after every window with the counts so far: the chance that a canary that is
no worse than the baseline (within `tolerance`) is *ever* classified High stays at most
`alpha` over the whole release, however many looks there are. Stateless and pure; the
derivation and the assumptions are in docs/judge.md.

The idea (Lindon & Malek's counting-process test, used by Netflix for canaries): baseline
and canary receive equal traffic weights, so each request of the pair goes to the canary
with probability `split` = 1/2. Given that an *event* happened (an error; a request slower
than a bucket bound), the chance that it was the canary's is split * r / (split * r + 1 -
split), where r is the ratio of the canary's event rate to the baseline's. The labels of
events are independent coin flips with that chance, whatever the traffic does over time,
so one e-process per question (canary-labelled events vs all events) answers it without
any assumption on the latency distribution or the error rate (canary.judge.evalues).

* `compare_counts`: is the canary's event rate more than (1 + tolerance) times the
  baseline's? (or less than (1 - tolerance) times, for `direction="decrease"`)
* `compare_histograms`: is the canary slower than (1 + tolerance) times the baseline
  anywhere in the distribution? At every bucket bound b, "slower" means that a larger share
  of canary requests exceeds b than of baseline requests exceeds b / (1 + tolerance); the
  baseline's bound is rounded *down* to a bucket bound, which only makes the comparison
  stricter for the baseline, so bucket resolution costs power, never validity. The
  e-processes of all bounds (each in an "exceedances" and a "fast requests" form) are
  averaged, an average of e-processes being one.

Each result says whether the question is *decided*: a regression proven (High/Low), or the
effect proven to lie inside the tolerance (Pass, decided), or neither yet (Pass). The
second claim is an intersection of one-sided claims, each at level alpha, so it needs no
correction for multiplicity either.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np

from canary.errors import ConfigError
from canary.judge.classify import DIRECTIONS, Classification
from canary.judge.evalues import (
    HISTOGRAM_PRIOR,
    INTERVAL_PRIOR,
    RATIO_PRIOR,
    SAFETY_PRIOR,
    SPLIT_PRIOR,
    log_e_above,
    log_e_below,
)
from canary.judge.preprocess import check_choice, check_real

__all__ = [
    "QUANTILES",
    "SAFE_RANGE",
    "CountsResult",
    "HistogramResult",
    "QuantileBand",
    "compare_counts",
    "compare_histograms",
    "format_value",
]

#: The quantiles every histogram result reports, with confidence sequences.
QUANTILES = (0.5, 0.9, 0.99)
#: "Safe" (decided Pass) for a histogram covers the bucket bounds whose pooled share of
#: requests at or below them lies in this range: from the pooled p2 to p98.
SAFE_RANGE = (0.02, 0.98)
_EPS = 1e-9
_RATIO_GRID = np.exp(np.linspace(np.log(1e-4), np.log(1e4), 81))


# -- input checks ------------------------------------------------------------------------


def _check_alpha(alpha: object) -> float:
    value = check_real(alpha, "alpha")
    if not 0.0 < value < 1.0:
        raise ConfigError(f"alpha must be strictly between 0 and 1, got {alpha!r}")
    return value


def _check_common(direction: object, alpha: object, tolerance: object, split: object) -> tuple[str, float, float, float]:
    d = check_choice(direction, "direction", DIRECTIONS)
    a = _check_alpha(alpha)
    t = check_real(tolerance, "tolerance", positive=True)
    if d != "increase" and t >= 1.0:
        raise ConfigError(
            f"tolerance {t:g} leaves nothing to detect for direction {d!r}: a decrease beyond "
            "(1 - tolerance) needs tolerance < 1"
        )
    s = check_real(split, "split")
    if not 0.0 < s < 1.0:
        raise ConfigError(f"split (the canary's share of the pair's traffic) must be in (0, 1), got {split!r}")
    return d, a, t, s


def _count(value: object, name: str) -> float:
    v = check_real(value, name, positive=True)
    return v


def format_value(value: float | None, unit: str) -> str:
    """A number for people: 3 significant digits, seconds shown as milliseconds."""
    if value is None or not math.isfinite(value):
        return "∞" if value == math.inf else "–"
    if unit in ("s", "seconds"):
        return f"{value * 1000:.3g} ms"
    if unit in ("ms", "milliseconds"):
        return f"{value:.3g} ms"
    return f"{value:.3g}{(' ' + unit) if unit else ''}"


def _pct(share: float) -> str:
    return f"{100 * share:.3g}%"


def _e(log_e: float) -> str:
    value = math.exp(min(log_e, 700.0))
    return f"{value:.3g}"


# -- ratio metrics -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CountsResult:
    """A ratio metric: canary vs baseline event rates, with the rate ratio's confidence
    sequence (each end at level alpha, so together a 1 - 2 alpha interval).

    `evidence` is the e-value for a regression in the configured direction, `safety` the
    e-value that the ratio lies inside the tolerance; either reaching 1/alpha decides.
    """

    classification: Classification
    decided: bool
    reason: str
    direction: str
    alpha: float
    tolerance: float
    control_events: float
    control_total: float
    experiment_events: float
    experiment_total: float
    ratio: float
    ratio_lower: float
    ratio_upper: float
    evidence: float
    safety: float
    kind: str = "ratio"

    @property
    def control_rate(self) -> float:
        return self.control_events / self.control_total if self.control_total else math.nan

    @property
    def experiment_rate(self) -> float:
        return self.experiment_events / self.experiment_total if self.experiment_total else math.nan


def _theta(ratio: np.ndarray | float, split: float) -> np.ndarray:
    r = np.asarray(ratio, dtype=float)
    return split * r / (split * r + 1.0 - split)


def ratio_log_evidence(
    control_events: np.ndarray | float, control_total: np.ndarray | float,
    experiment_events: np.ndarray | float, experiment_total: np.ndarray | float, *, direction: str, tolerance: float, split: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """compare_counts' log e-values, for arrays of counts (any shape; simulations use it).

    Returns (regression, within, regression up, regression down): `regression` in the
    configured direction, `within` the tolerance. Unchecked: compare_counts validates.
    Where a side has no requests, regression is -inf; where there are no events, within is.
    """
    ce, ct = np.asarray(control_events, dtype=float), np.asarray(control_total, dtype=float)
    ee, et = np.asarray(experiment_events, dtype=float), np.asarray(experiment_total, dtype=float)
    n = ce + ee
    up0 = float(_theta(1 + tolerance, split))
    reg_up, safe_up = log_e_above(ee, n, up0, RATIO_PRIOR), log_e_below(ee, n, up0, INTERVAL_PRIOR)
    if tolerance < 1:
        down0 = float(_theta(1 - tolerance, split))
        reg_down = log_e_below(ee, n, down0, RATIO_PRIOR)
        safe_down = log_e_above(ee, n, down0, INTERVAL_PRIOR)
    else:
        reg_down, safe_down = np.full_like(n, -np.inf), np.full_like(n, np.inf)
    if direction == "increase":
        reg, safe = reg_up, safe_up
    elif direction == "decrease":
        reg, safe = reg_down, safe_down
    else:
        reg, safe = np.logaddexp(reg_up, reg_down) - math.log(2), np.minimum(safe_up, safe_down)
    nodata = (ct == 0) | (et == 0)
    safe = np.where(nodata | (n == 0), -np.inf, safe)
    return np.where(nodata, -np.inf, reg), safe, reg_up, reg_down


def _ratio_bounds(k: float, n: float, split: float, threshold: float) -> tuple[float, float]:
    """The rate ratio's confidence sequence: the ratios r0 that neither one-sided e-process
    rejects. Bracketed on a coarse grid of log r0, then bisected (each e-process is
    monotone in r0)."""
    if n <= 0:
        return 0.0, math.inf
    theta = _theta(_RATIO_GRID, split)
    above = log_e_above(k, n, theta, INTERVAL_PRIOR) - threshold  # decreasing in r0
    below = log_e_below(k, n, theta, INTERVAL_PRIOR) - threshold  # increasing in r0

    def lower(r0: float) -> float:
        return float(log_e_above(k, n, float(_theta(r0, split)), INTERVAL_PRIOR)) - threshold

    def upper(r0: float) -> float:
        return float(log_e_below(k, n, float(_theta(r0, split)), INTERVAL_PRIOR)) - threshold

    return _crossing(above, lower, low_side=True), _crossing(below, upper, low_side=False)


def _crossing(values: np.ndarray, exact: Callable[[float], float], *, low_side: bool) -> float:
    """Where a monotone curve over _RATIO_GRID crosses 0 (log r to 1e-3)."""
    ok = values >= 0
    if low_side:  # rejected for small r0: the bound is the last rejected point
        if not ok[0]:
            return 0.0
        if ok[-1]:
            return math.inf
        i = int(np.argmin(ok)) - 1
    else:  # rejected for large r0: the bound is the first rejected point
        if not ok[-1]:
            return math.inf
        if ok[0]:
            return 0.0
        i = int(np.argmax(ok)) - 1
    lo, hi = math.log(_RATIO_GRID[i]), math.log(_RATIO_GRID[i + 1])
    for _ in range(6):
        mid = (lo + hi) / 2
        if (exact(math.exp(mid)) >= 0) == low_side:
            lo = mid
        else:
            hi = mid
    return math.exp((lo + hi) / 2)


def compare_counts(
    control_events: float,
    control_total: float,
    experiment_events: float,
    experiment_total: float,
    *,
    direction: str = "increase",
    alpha: float = 0.01,
    tolerance: float = 0.0,
    split: float = 0.5,
) -> CountsResult:
    """Compare the canary's event rate with the baseline's, anytime-valid.

    Counts are cumulative since the analysis began (events <= total on each side). `split`
    is the canary's share of the pair's traffic by design (equal weights: 1/2); the test's
    validity rests on it, and the sample-ratio guard checks it (canary.judge.guards).
    """
    d, a, tol, w = _check_common(direction, alpha, tolerance, split)
    ce, ct = _count(control_events, "control_events"), _count(control_total, "control_total")
    ee, et = _count(experiment_events, "experiment_events"), _count(experiment_total, "experiment_total")
    for side, ev, tot in (("control", ce, ct), ("experiment", ee, et)):
        if ev > tot * (1 + _EPS):
            raise ConfigError(
                f"{side}_events {ev:g} exceed {side}_total {tot:g}: the event counter must "
                "count a subset of the total's requests (are the two queries swapped?)"
            )
    threshold = math.log(1.0 / a)
    events = ce + ee
    lower, upper = _ratio_bounds(ee, events, w, threshold)
    ratio = _rate_ratio(ce, ct, ee, et)
    common: dict[str, Any] = {  # CountsResult's shared fields, checked by the dataclass
        "direction": d, "alpha": a, "tolerance": tol, "control_events": ce,
        "control_total": ct, "experiment_events": ee, "experiment_total": et,
        "ratio": ratio, "ratio_lower": lower, "ratio_upper": upper,
    }  # fmt: skip
    if ct == 0 or et == 0:
        missing = " and ".join(s for s, t in (("canary", et), ("baseline", ct)) if t == 0)
        return CountsResult(Classification.NODATA, False, f"no requests for the {missing} yet",
                            evidence=1.0, safety=1.0, **common)  # fmt: skip

    reg_, safe_, up_, down_ = ratio_log_evidence(ce, ct, ee, et, direction=d, tolerance=tol, split=w)
    reg, safe, reg_up, reg_down = float(reg_), float(safe_), float(up_), float(down_)

    rates = (f"canary {_pct(ee / et)} ({ee:.0f}/{et:.0f}) vs baseline {_pct(ce / ct)} "
             f"({ce:.0f}/{ct:.0f})")  # fmt: skip
    interval = f"rate ratio {_ratio_text(ratio)}, {100 * (1 - 2 * a):g}% CS [{_ratio_text(lower)}, {_ratio_text(upper)}]"
    need = f"1/alpha = {_e(threshold)}"
    band = _band_text(d, tol)
    if reg >= threshold:
        higher = d == "increase" or (d == "either" and reg_up >= reg_down)
        label = Classification.HIGH if higher else Classification.LOW
        word = "higher" if higher else "lower"
        reason = (f"canary rate is {word}, beyond {band}: {rates}; {interval}; "
                  f"e-value {_e(reg)} >= {need}")  # fmt: skip
        return CountsResult(label, True, reason, evidence=math.exp(min(reg, 700)),
                            safety=math.exp(min(safe, 700)), **common)  # fmt: skip
    if events == 0:
        reason = f"no events on either side yet ({rates}): nothing to compare, so no regression"
        decided = False
    elif safe >= threshold:
        reason = f"within {band} (decided): {rates}; {interval}; e-value {_e(safe)} >= {need}"
        decided = True
    else:
        reason = (f"no regression proven yet, nor that the ratio lies within {band}: {rates}; "
                  f"{interval}; e-values {_e(reg)} (regression) and {_e(safe)} (within) < {need}")
        decided = False
    return CountsResult(Classification.PASS, decided, reason, evidence=math.exp(min(reg, 700)),
                        safety=math.exp(min(safe, 700)), **common)  # fmt: skip


def _rate_ratio(ce: float, ct: float, ee: float, et: float) -> float:
    if ct == 0 or et == 0:
        return math.nan
    base, canary = ce / ct, ee / et
    if base == 0:
        return math.nan if canary == 0 else math.inf
    return canary / base


def _ratio_text(value: float) -> str:
    if math.isnan(value):
        return "undefined"
    if math.isinf(value):
        return "∞"
    return f"{value:.3g}"


def _band_text(direction: str, tol: float) -> str:
    if tol == 0:
        return {"increase": "the baseline (tolerance 0)", "decrease": "the baseline (tolerance 0)"}.get(
            direction, "equality with the baseline (tolerance 0)")
    up, down = f"x{1 + tol:.3g}", f"x{1 - tol:.3g}"
    return {"increase": f"the tolerance {up}", "decrease": f"the tolerance {down}"}.get(
        direction, f"the tolerance [{down}, {up}]"
    )


# -- histogram metrics -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuantileBand:
    """One quantile of one side: an interpolated estimate and a confidence sequence whose
    ends are bucket bounds (level 1 - alpha; None where the buckets cannot bound it)."""

    quantile: float
    estimate: float | None
    lower: float | None
    upper: float | None


@dataclass(frozen=True, slots=True)
class HistogramResult:
    """A histogram metric: is the canary slower (or faster) anywhere in the distribution?

    Values are in the unit of the bucket bounds. `worst_bound` is the canary-side bound
    with the strongest evidence of a regression, `worst_reference` the baseline-side bound
    it was compared with (the same bound when tolerance is 0), and the two shares are the
    fractions of requests above them.
    """

    classification: Classification
    decided: bool
    reason: str
    direction: str
    alpha: float
    tolerance: float
    unit: str
    control_total: float
    experiment_total: float
    control_quantiles: tuple[QuantileBand, ...]
    experiment_quantiles: tuple[QuantileBand, ...]
    evidence: float
    safety: float
    worst_bound: float | None = None
    worst_reference: float | None = None
    experiment_share_above: float | None = None
    control_share_above: float | None = None
    #: the cumulative counts judged (last bound +Inf), for pictures and re-judging
    upper_bounds: tuple[float, ...] = ()
    control_buckets: tuple[float, ...] = ()
    experiment_buckets: tuple[float, ...] = ()
    kind: str = "histogram"


@dataclass(frozen=True, slots=True)
class _Evidence:
    log_e: float
    bound: int  # index of the slower side's bound with the most evidence
    reference: int  # index of the reference side's bound it was compared with
    share_slow: float
    share_ref: float


def _partners(bounds: np.ndarray, factor: float, *, down: bool) -> np.ndarray:
    """For each bound b_j, the bucket bound nearest to b_j / factor: the largest one at or
    below it (down=True, for regression tests), or the smallest at or above (safety).
    -1 where there is none."""
    target = bounds / factor
    if down:
        idx = np.searchsorted(bounds, target * (1 + _EPS), side="right") - 1
        return np.where(idx >= 0, idx, -1)
    idx = np.searchsorted(bounds, target * (1 - _EPS), side="left")
    return np.where(idx < len(bounds), idx, -1)


def _slower_terms(slow: np.ndarray, ref: np.ndarray, bounds: np.ndarray, factor: float,
                  share: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Per bound pair (j, k): log e-values that `slow` is slower than factor x `ref`, in the
    exceedance and the fast-request form. Arrays are cumulative over le with the total
    last, any leading shape. Returns (j, k, exceed, fast)."""
    k = _partners(bounds, factor, down=True)
    j = np.nonzero(k >= 0)[0]
    k = k[j]
    above_slow = slow[..., -1:] - slow[..., j]
    above_ref = ref[..., -1:] - ref[..., k]
    fast_slow, fast_ref = slow[..., j], ref[..., k]
    exceed = log_e_above(above_slow, above_slow + above_ref, share, HISTOGRAM_PRIOR)
    fast = log_e_below(fast_slow, fast_slow + fast_ref, share, HISTOGRAM_PRIOR)
    return j, k, exceed, fast


def _slower(slow: np.ndarray, ref: np.ndarray, bounds: np.ndarray, factor: float, share: float) -> np.ndarray:
    """Evidence that `slow` is slower than factor x `ref` somewhere: the average of every
    bound's two e-values (an average of e-processes is one)."""
    j, _, exceed, fast = _slower_terms(slow, ref, bounds, factor, share)
    if j.size == 0:
        return np.zeros(slow.shape[:-1])
    both = np.concatenate([exceed, fast], axis=-1)
    top = both.max(axis=-1, keepdims=True)
    log_mean: np.ndarray = np.log(np.exp(both - top).sum(axis=-1)) + top[..., 0] - math.log(both.shape[-1])
    return log_mean


def _within_terms(slow: np.ndarray, ref: np.ndarray, bounds: np.ndarray, factor: float,
                  share: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Per bound: log e-value that `slow` is at most factor x `ref` there (both forms
    averaged), whether the bound is informative (pooled share between SAFE_RANGE), and its
    partner index (-1: the buckets cannot bound it)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled = (slow[..., :-1] + ref[..., :-1]) / (slow[..., -1:] + ref[..., -1:])
    informative = (pooled >= SAFE_RANGE[0]) & (pooled <= SAFE_RANGE[1])
    m = _partners(bounds, factor, down=False)
    mm = np.where(m >= 0, m, 0)
    above_slow, above_ref = slow[..., -1:] - slow[..., :-1], ref[..., -1:] - ref[..., mm]
    fast_slow, fast_ref = slow[..., :-1], ref[..., mm]
    per_bound = np.logaddexp(
        log_e_below(above_slow, above_slow + above_ref, share, SAFETY_PRIOR),
        log_e_above(fast_slow, fast_slow + fast_ref, share, SAFETY_PRIOR),
    ) - math.log(2)
    per_bound = np.where(m >= 0, per_bound, -np.inf)
    return per_bound, informative, m


def _within(slow: np.ndarray, ref: np.ndarray, bounds: np.ndarray, factor: float, share: float) -> np.ndarray:
    """Evidence that `slow` is at most factor x `ref` at every informative bound (the
    weakest bound's; -inf when no bound is informative)."""
    per_bound, informative, _ = _within_terms(slow, ref, bounds, factor, share)
    weakest = np.where(informative, per_bound, np.inf).min(axis=-1)
    return np.where(informative.any(axis=-1), weakest, -np.inf)


def histogram_log_evidence(
    control: np.ndarray, experiment: np.ndarray, bounds: np.ndarray, *, direction: str,
    tolerance: float, split: float = 0.5, safe: bool = True,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray | None]:
    """compare_histograms' log e-values, for arrays of cumulative buckets (last column the
    total, any leading shape; simulations use it). `bounds` are the finite bounds.

    Returns (regression, within, slower, faster): `regression` in the configured direction,
    `within` the tolerance (None when `safe` is False: it costs as much again), and the
    two directions' evidence. -inf where a side has no requests. Unchecked.
    """
    c, e = np.asarray(control, dtype=float), np.asarray(experiment, dtype=float)
    up, down = 1.0 + tolerance, (1.0 / (1.0 - tolerance) if tolerance < 1 else math.inf)
    nodata = (c[..., -1] == 0) | (e[..., -1] == 0)
    slower = _slower(e, c, bounds, up, split)
    faster = _slower(c, e, bounds, down, 1.0 - split) if tolerance < 1 else None
    tests = {"increase": [(e, c, up, split)], "decrease": [(c, e, down, 1.0 - split)]}.get(
        direction, [(e, c, up, split), (c, e, down, 1.0 - split)]
    )
    if direction == "increase":
        reg = slower
    elif direction == "decrease":
        assert faster is not None
        reg = faster
    else:
        assert faster is not None
        reg = np.logaddexp(slower, faster) - math.log(2)
    within = None
    if safe:
        within = np.minimum.reduce([_within(slow, ref, bounds, f, w) for slow, ref, f, w in tests])
        within = np.where(nodata, -np.inf, within)
    return np.where(nodata, -np.inf, reg), within, slower, faster


def _worst(slow: np.ndarray, ref: np.ndarray, bounds: np.ndarray, factor: float, share: float) -> _Evidence:
    """Where the evidence that `slow` is slower is strongest (one histogram, for reasons)."""
    j, k, exceed, fast = _slower_terms(slow, ref, bounds, factor, share)
    if j.size == 0:
        return _Evidence(0.0, -1, -1, math.nan, math.nan)
    best = int(np.argmax(np.logaddexp(exceed, fast)))
    jb, kb = int(j[best]), int(k[best])
    return _Evidence(float(np.logaddexp(exceed[best], fast[best])), jb, kb,
                     float((slow[-1] - slow[jb]) / slow[-1]), float((ref[-1] - ref[kb]) / ref[-1]))  # fmt: skip


def _weakest(slow: np.ndarray, ref: np.ndarray, bounds: np.ndarray, factor: float, share: float) -> tuple[float, int, int]:
    """(log e, index, number of informative bounds) of the bound hardest to prove within."""
    per_bound, informative, _ = _within_terms(slow, ref, bounds, factor, share)
    idx = np.nonzero(informative)[0]
    if idx.size == 0:
        return -math.inf, -1, 0
    weakest = int(idx[np.argmin(per_bound[idx])])
    return float(per_bound[weakest]), weakest, int(idx.size)


def _as_counts(values: object, name: str) -> np.ndarray:
    if isinstance(values, (str, bytes)):
        raise ConfigError(f"{name} must be a sequence of counts, got a string")
    try:
        arr = np.array(values, dtype=float, copy=True)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be a sequence of counts: {exc}") from None
    if arr.ndim != 1:
        raise ConfigError(f"{name} must be 1-D, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ConfigError(f"{name} must hold finite counts >= 0, got {arr.tolist()}")
    return arr


def _check_histogram(control: object, experiment: object, upper_bounds: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c = _as_counts(control, "control_buckets")
    e = _as_counts(experiment, "experiment_buckets")
    try:
        b = np.array(upper_bounds, dtype=float, copy=True)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"upper_bounds must be numbers: {exc}") from None
    if b.ndim != 1 or b.size < 2 or not (c.size == e.size == b.size):
        raise ConfigError(
            f"upper_bounds ({b.size}), control_buckets ({c.size}) and experiment_buckets "
            f"({e.size}) must have the same length, at least 2 (one finite bound and +Inf)"
        )
    if b[-1] != math.inf or not np.all(np.isfinite(b[:-1])) or np.any(np.diff(b) <= 0):
        raise ConfigError(
            f"upper_bounds must increase strictly and end with +Inf (Prometheus' le), got {b.tolist()}"
        )
    for name, arr in (("control_buckets", c), ("experiment_buckets", e)):
        drop = np.nonzero(np.diff(arr) < -_EPS * max(1.0, arr[-1]))[0]
        if drop.size:
            i = int(drop[0])
            raise ConfigError(
                f"{name} must be cumulative over le: the count at le={b[i + 1]:g} "
                f"({arr[i + 1]:g}) is below the count at le={b[i]:g} ({arr[i]:g})"
            )
    return c, e, b


def compare_histograms(
    control_buckets: Sequence[float] | np.ndarray,
    experiment_buckets: Sequence[float] | np.ndarray,
    upper_bounds: Sequence[float] | np.ndarray,
    *,
    direction: str = "increase",
    alpha: float = 0.01,
    tolerance: float = 0.0,
    split: float = 0.5,
    unit: str = "",
) -> HistogramResult:
    """Is the canary slower than (1 + tolerance) x the baseline anywhere in the distribution?

    Buckets are cumulative over `le` as Prometheus exposes them (the last bound +Inf, its
    count the total), counts cumulative since the analysis began; bounds in any unit
    (`unit` only labels the reason: "s" and "ms" are shown in milliseconds). With
    direction "decrease" the question is whether the canary is faster than (1 - tolerance)
    x the baseline; "either" asks both, at alpha/2 each.
    """
    d, a, tol, w = _check_common(direction, alpha, tolerance, split)
    c, e, b = _check_histogram(control_buckets, experiment_buckets, upper_bounds)
    if tol > 0 and b[0] <= 0:
        raise ConfigError(
            f"a relative tolerance needs positive bucket bounds (latencies), got le={b[0]:g}"
        )
    bounds = b[:-1]
    n_c, n_e = float(c[-1]), float(e[-1])
    threshold = math.log(1.0 / a)
    quantiles = {"control": _quantile_bands(c, bounds, a), "canary": _quantile_bands(e, bounds, a)}
    common: dict[str, Any] = {"direction": d, "alpha": a, "tolerance": tol, "unit": unit,
              "control_total": n_c, "experiment_total": n_e, "upper_bounds": tuple(b.tolist()),
              "control_buckets": tuple(c.tolist()), "experiment_buckets": tuple(e.tolist()),
              "control_quantiles": quantiles["control"],
              "experiment_quantiles": quantiles["canary"]}  # fmt: skip
    if n_c == 0 or n_e == 0:
        missing = " and ".join(s for s, t in (("canary", n_e), ("baseline", n_c)) if t == 0)
        return HistogramResult(Classification.NODATA, False, f"no requests for the {missing} yet",
                               evidence=1.0, safety=1.0, **common)  # fmt: skip

    reg_, _, slower_, faster_ = histogram_log_evidence(c, e, bounds, direction=d, tolerance=tol,
                                                       split=w, safe=False)  # fmt: skip
    reg = float(reg_)
    # "increase": the canary is the side that may be slower; "decrease": the baseline is
    # (the canary faster than (1 - tol) x baseline <=> baseline slower than canary / (1 - tol)).
    up_factor, down_factor = 1.0 + tol, (1.0 / (1.0 - tol) if tol < 1 else math.inf)
    if d == "either":
        assert faster_ is not None  # histogram_log_evidence computes both sides for "either"
        higher = float(slower_) >= float(faster_)
    else:
        higher = d == "increase"
    worst = (_worst(e, c, bounds, up_factor, w) if higher
             else _worst(c, e, bounds, down_factor, 1.0 - w))  # fmt: skip
    checks = [] if d == "decrease" else [_weakest(e, c, bounds, up_factor, w)]
    if d != "increase":
        checks.append(_weakest(c, e, bounds, down_factor, 1.0 - w))
    safe = min(checks, key=lambda item: item[0])

    detail: _WorstDetail = {"worst_bound": None, "worst_reference": None,
              "experiment_share_above": None, "control_share_above": None}  # fmt: skip
    if worst.bound >= 0 and float(reg_) >= math.log(1.0 / a):  # only a regression names a bound
        slow_b, ref_b = float(bounds[worst.bound]), float(bounds[worst.reference])
        canary_b, base_b = (slow_b, ref_b) if higher else (ref_b, slow_b)
        canary_share, base_share = ((worst.share_slow, worst.share_ref) if higher
                                    else (worst.share_ref, worst.share_slow))  # fmt: skip
        detail = {"worst_bound": canary_b, "worst_reference": base_b,
                  "experiment_share_above": canary_share, "control_share_above": base_share}
    summary = _quantile_summary(quantiles["control"], quantiles["canary"], unit)
    need = f"1/alpha = {_e(threshold)}"
    band = _band_text(d, tol)
    evidence, safety = math.exp(min(reg, 700)), math.exp(min(safe[0], 700))
    if reg >= threshold:
        where = _where(detail, unit, higher)
        label = Classification.HIGH if higher else Classification.LOW
        word = "slower" if higher else "faster"
        reason = f"canary is {word}, beyond {band}: {where}; e-value {_e(reg)} >= {need}; {summary}"
        return HistogramResult(label, True, reason, evidence=evidence, safety=safety, **detail, **common)
    log_safe, weakest, informative = safe
    range_text = f"the pooled p{100 * SAFE_RANGE[0]:g}..p{100 * SAFE_RANGE[1]:g}"
    if informative and log_safe >= threshold:
        reason = (f"within {band} (decided) at all {informative} bucket bounds between "
                  f"{range_text}: weakest e-value {_e(log_safe)} >= {need}; {summary}")
        return HistogramResult(Classification.PASS, True, reason, evidence=evidence, safety=safety, **detail, **common)
    if informative == 0:
        pending = f"no bucket bound lies between {range_text}, so the buckets cannot bound the effect"
    elif log_safe == -math.inf or (tol > 0 and _partners(bounds, up_factor, down=False)[weakest] == weakest):
        pending = (f"the buckets around {format_value(float(bounds[weakest]), unit)} are wider "
                   f"than the tolerance, so 'within tolerance' cannot be proven there")
    else:
        pending = (f"not yet proven within {band} at {format_value(float(bounds[weakest]), unit)} "
                   f"(e-value {_e(log_safe)} < {need})")
    reason = f"no regression proven (e-value {_e(reg)} < {need}); {pending}; {summary}"
    return HistogramResult(Classification.PASS, False, reason, evidence=evidence, safety=safety, **detail, **common)


class _WorstDetail(TypedDict):
    """Where a histogram regression is worst (HistogramResult's fields; None: no regression)."""

    worst_bound: float | None
    worst_reference: float | None
    experiment_share_above: float | None
    control_share_above: float | None


def _where(detail: _WorstDetail, unit: str, higher: bool) -> str:
    cb, bb = detail["worst_bound"], detail["worst_reference"]
    cs, bs = detail["experiment_share_above"], detail["control_share_above"]
    if cb is None or bb is None or cs is None or bs is None:
        return "no single bound stands out"
    return (f"{_pct(cs)} of canary requests took longer than {format_value(cb, unit)}, against "
            f"{_pct(bs)} of baseline requests longer than {format_value(bb, unit)}")


def _quantile_bands(side: np.ndarray, bounds: np.ndarray, alpha: float) -> tuple[QuantileBand, ...]:
    """Q(q) of one side for every reported q: proven <= b where F(b) > q is proven, and
    > b where F(b) < q is; each end at alpha/2, so a 1 - alpha confidence sequence."""
    n, counts = float(side[-1]), side[:-1]
    if n <= 0:
        return tuple(QuantileBand(q, None, None, None) for q in QUANTILES)
    threshold = math.log(2.0 / alpha)
    bands = []
    for q in QUANTILES:
        above = log_e_above(counts, n, q, SPLIT_PRIOR) >= threshold  # F(b) > q proven
        below = log_e_below(counts, n, q, SPLIT_PRIOR) >= threshold  # F(b) < q proven
        upper = float(bounds[np.argmax(above)]) if above.any() else None
        lower = float(bounds[len(bounds) - 1 - np.argmax(below[::-1])]) if below.any() else None
        bands.append(QuantileBand(q, _interpolate(side, bounds, q), lower, upper))
    return tuple(bands)


def _interpolate(side: np.ndarray, bounds: np.ndarray, q: float) -> float:
    """histogram_quantile's estimate: linear within the bucket holding rank q x total."""
    counts = side[:-1]
    rank = q * float(side[-1])
    i = int(np.searchsorted(counts, rank, side="left"))
    if i >= len(bounds):
        return float(bounds[-1])  # in the +Inf bucket: the highest finite bound, as Prometheus
    lo_bound = bounds[i - 1] if i > 0 else min(0.0, float(bounds[0]))
    lo_count = counts[i - 1] if i > 0 else 0.0
    width = counts[i] - lo_count
    frac = (rank - lo_count) / width if width > 0 else 1.0
    return float(lo_bound + frac * (bounds[i] - lo_bound))


def _quantile_summary(control: tuple[QuantileBand, ...], canary: tuple[QuantileBand, ...], unit: str) -> str:
    parts = []
    for base, can in zip(control, canary, strict=True):
        name = f"p{100 * base.quantile:g}"
        parts.append(f"{name} canary {format_value(can.estimate, unit)} vs baseline "
                     f"{format_value(base.estimate, unit)}")  # fmt: skip
    return ", ".join(parts)
