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
    SAFE_RATE_PRIOR,
    SAFETY_PRIOR,
    SPLIT_PRIOR,
    Prior,
    log_e_above,
    log_e_below,
    log_e_plugin,
)
from canary.judge.preprocess import check_choice, check_real

__all__ = [
    "QUANTILES",
    "SAFE_RANGE",
    "TOLERANCE_ON",
    "CountsResult",
    "HistogramResult",
    "QuantileBand",
    "compare_counts",
    "compare_histograms",
    "format_value",
]

#: What a histogram tolerance bounds: every quantile, or the share of requests above every bound.
TOLERANCE_ON = ("quantile", "share")
#: The quantiles every histogram result reports, with confidence sequences.
QUANTILES = (0.5, 0.9, 0.99)
#: "Safe" (decided Pass) for a histogram covers the bucket bounds whose pooled share of
#: requests at or below them lies in this range: from the pooled p2 to p98.
SAFE_RANGE = (0.02, 0.98)
EVIDENCE_MARGIN = 4.0
_EPS = 1e-9
_RATIO_GRID = np.exp(np.linspace(np.log(1e-4), np.log(1e4), 41))


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


def _pct_of(share: float) -> str:
    """A share as a percentile's number: 0.904 -> "90"."""
    return f"{math.floor(100 * float(share) + 1e-9):d}"


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
    safe_rate: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """compare_counts' log e-values, for arrays of counts (any shape; simulations use it).

    Returns (regression, within, regression up, regression down): `regression` in the
    configured direction, `within` the tolerance; regression down is only computed when
    the direction asks for it (-inf for "increase"). Unchecked: compare_counts validates.
    Where a side has no requests, regression is -inf; where there are no events, within is.
    """
    ce, ct = np.asarray(control_events, dtype=float), np.asarray(control_total, dtype=float)
    ee, et = np.asarray(experiment_events, dtype=float), np.asarray(experiment_total, dtype=float)
    n = ce + ee
    up0 = float(_theta(1 + tolerance, split))
    reg_up, safe_up = log_e_above(ee, n, up0, RATIO_PRIOR), log_e_below(ee, n, up0, INTERVAL_PRIOR)
    if tolerance < 1 and direction != "increase":
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
    if safe_rate is not None:  # or the canary's own rate proven below safe_rate: average both
        below = log_e_below(ee, et, safe_rate, SAFE_RATE_PRIOR)
        safe = np.where(nodata, -np.inf, np.logaddexp(safe, below) - math.log(2))
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

    def lower(r0: np.ndarray) -> np.ndarray:
        return log_e_above(k, n, _theta(r0, split), INTERVAL_PRIOR) - threshold

    def upper(r0: np.ndarray) -> np.ndarray:
        return log_e_below(k, n, _theta(r0, split), INTERVAL_PRIOR) - threshold

    return _crossing(above, lower, low_side=True), _crossing(below, upper, low_side=False)


def _crossing(values: np.ndarray, exact: Callable[[np.ndarray], np.ndarray], *, low_side: bool) -> float:
    """Where a monotone curve over _RATIO_GRID crosses 0 (log r to ~1e-2): bracketed on
    the grid, then located on 48 points inside the bracket in one evaluation."""
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
    fine = np.linspace(math.log(_RATIO_GRID[i]), math.log(_RATIO_GRID[i + 1]), 50)
    inside = exact(np.exp(fine)) >= 0
    if low_side:  # last point still rejected, then halfway to the next
        j = min(int(np.argmin(inside)) - 1, fine.size - 2) if not inside.all() else fine.size - 2
    else:
        j = int(np.argmax(inside)) - 1 if inside.any() else fine.size - 2
    j = max(j, 0)
    return math.exp((fine[j] + fine[j + 1]) / 2)


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
    safe_rate: float | None = None,
) -> CountsResult:
    """Compare the canary's event rate with the baseline's, anytime-valid.

    Counts are cumulative since the analysis began (events <= total on each side). `split`
    is the canary's share of the pair's traffic by design (equal weights: 1/2); the test's
    validity rests on it, and the sample-ratio guard checks it (canary.judge.guards).

    `safe_rate` (direction "increase" only; e.g. 0.01 for 1 %) is a rate the canary may
    always have: a Pass is also decided when the canary's own rate is proven below it, so
    a metric whose baseline has no events (an error rate at 0 %) can be decided too.
    Regressions are still judged against the baseline.
    """
    d, a, tol, w = _check_common(direction, alpha, tolerance, split)
    if safe_rate is not None:
        safe_rate = check_real(safe_rate, "safe_rate")
        if not 0.0 < safe_rate < 1.0:
            raise ConfigError(f"safe_rate must be a rate strictly between 0 and 1 (0.01 = 1 %), got {safe_rate!r}")
        if d != "increase":
            raise ConfigError(f"safe_rate bounds the canary's rate from above: it needs direction "
                              f"'increase', not {d!r}")  # fmt: skip
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

    reg_, safe_, up_, down_ = ratio_log_evidence(ce, ct, ee, et, direction=d, tolerance=tol, split=w,
                                                 safe_rate=safe_rate)  # fmt: skip
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
    below = f" or below the safe rate {_pct(safe_rate)}" if safe_rate is not None else ""
    if safe >= threshold:
        reason = f"within {band}{below} (decided): {rates}; {interval}; e-value {_e(safe)} >= {need}"
        decided = True
    elif events == 0:
        reason = (f"no events on either side yet ({rates}): nothing to compare, so no regression"
                  + (f"; not yet proven below the safe rate {_pct(safe_rate)} "
                     f"(e-value {_e(safe)} < {need})" if safe_rate is not None else ""))
        decided = False
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
    #: what the tolerance bounds ("quantile" or "share") and the look judged (1 = first)
    tolerance_on: str = "quantile"
    look: int = 1
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
                  share: float, tolerance_on: str = "quantile") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Per bound pair (j, k): log e-values that `slow` is slower than factor x `ref`, in the
    exceedance and the fast-request form. Arrays are cumulative over le with the total
    last, any leading shape. Returns (j, k, exceed, fast). With `share` tolerances the
    pair is (j, j), the exceedance form tests the shares above b_j against factor, and
    there is no fast-request form (fast is empty)."""
    if tolerance_on == "share":
        j = k = np.arange(bounds.size)
        exceed = _share_terms(slow, ref, factor, share, HISTOGRAM_PRIOR, above=True)
        return j, k, exceed, exceed[..., :0]
    k = _partners(bounds, factor, down=True)
    j = np.nonzero(k >= 0)[0]
    k = k[j]
    above_slow = slow[..., -1:] - slow[..., j]
    above_ref = ref[..., -1:] - ref[..., k]
    fast_slow, fast_ref = slow[..., j], ref[..., k]
    exceed = log_e_above(above_slow, above_slow + above_ref, share, HISTOGRAM_PRIOR)
    fast = log_e_below(fast_slow, fast_slow + fast_ref, share, HISTOGRAM_PRIOR)
    return j, k, exceed, fast


def _slower(slow: np.ndarray, ref: np.ndarray, bounds: np.ndarray, factor: float, share: float,
            tolerance_on: str = "quantile") -> np.ndarray:
    """Evidence that `slow` is slower than factor x `ref` at some single bound: the average
    of every bound's e-values (an average of e-processes is one)."""
    j, _, exceed, fast = _slower_terms(slow, ref, bounds, factor, share, tolerance_on)
    if j.size == 0:
        return np.zeros(slow.shape[:-1])
    both = np.concatenate([exceed, fast], axis=-1)
    top = both.max(axis=-1, keepdims=True)
    log_mean: np.ndarray = np.log(np.exp(both - top).sum(axis=-1)) + top[..., 0] - math.log(both.shape[-1])
    return log_mean


def _within_terms(slow: np.ndarray, ref: np.ndarray, bounds: np.ndarray, factor: float,
                  share: float, last: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
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
        _learning(above_slow, above_slow + above_ref, share, SAFETY_PRIOR, above=False, last=last),
        _learning(fast_slow, fast_slow + fast_ref, share, SAFETY_PRIOR, above=True, last=last),
    ) - math.log(2)
    per_bound = np.where(m >= 0, per_bound, -np.inf)
    return per_bound, informative, m


def _required(slow: np.ndarray, ref: np.ndarray, bounds: np.ndarray, factor: float, share: float,
              tolerance_on: str, alpha: float, tolerance: float, planned_looks: int | None) -> np.ndarray:
    """Per look and bound: must "within tolerance" be proven there for a decided Pass?

    Chosen from the looks *before* each look only, and from the two tracks' requests pooled
    (no canary/baseline labels), so the bounds a decision speaks for are fixed before the
    look's data arrive; at look 1 nothing is required yet, so nothing is decided. A bound is
    required where an unchanged canary would, on average, have gathered at least twice the
    evidence the threshold asks (2 log(1/alpha)) by the planned end: the pooled requests
    on the bound's events, projected to the end, times the information per event if both
    tracks behaved like the pool. That is where the data can speak; elsewhere only the
    regression test watches. Bounds the buckets cannot bound are never required. With
    tolerance 0 (nothing to prove for an unchanged canary) the bounds between the pooled
    SAFE_RANGE are required."""
    looks = slow.shape[0]
    req = np.zeros((*slow.shape[:-1], bounds.size), dtype=bool)
    if looks < 2:
        return req
    past = slow[:-1] + ref[:-1]
    total = past[..., -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        cdf = past[..., :-1] / total
    if tolerance <= 0:
        req[1:] = (cdf >= SAFE_RANGE[0]) & (cdf <= SAFE_RANGE[1])
        return req
    done = np.arange(1, looks).reshape((looks - 1,) + (1,) * (slow.ndim - 1))
    scale = np.maximum((planned_looks / done) if planned_looks else (done + 1) / done, 1.0)
    surv = 1.0 - cdf
    if tolerance_on == "share":
        theta0 = float(_theta(factor, share))
        info = _kl(np.full_like(surv, share), theta0) * surv * total * scale
        # where factor x the pooled share above b reaches 100 %, "within" cannot fail:
        # an empty claim, not required (nor below the pooled p2)
        usable = (surv * factor < 1.0) & (cdf >= SAFE_RANGE[0])
    else:
        m = _partners(bounds, factor, down=False)
        usable = m >= 0
        mm = np.where(usable, m, 0)
        # exceedance form: slow above b_j vs ref above b_m; fast form: at or below them
        exc_events = share * surv + (1 - share) * surv[..., mm]
        fast_events = share * cdf + (1 - share) * cdf[..., mm]
        with np.errstate(invalid="ignore", divide="ignore"):
            exc = _kl(share * surv / exc_events, share) * exc_events
            fast = _kl(share * cdf / fast_events, share) * fast_events
        info = np.fmax(np.nan_to_num(exc), np.nan_to_num(fast)) * total * scale
        # where the reference side has (next to) no requests at or below the partner bound,
        # "within" there is all but empty (the slow side's share above b_j <= ~100 %) and a
        # slow side with a floor (nothing faster than x) sits exactly on it: not required
        usable = usable & (cdf[..., mm] >= SAFE_RANGE[0])
    req[1:] = (info >= EVIDENCE_MARGIN * math.log(1 / alpha)) & usable & (total > 0) & (cdf <= SAFE_RANGE[1])
    return req


def _kl(p: np.ndarray, q: float | np.ndarray) -> np.ndarray:
    """KL divergence of Bernoulli(p) from Bernoulli(q), per event (0 log 0 = 0)."""
    p = np.clip(p, 0.0, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        a = np.where(p > 0, p * np.log(p / q), 0.0)
        b = np.where(p < 1, (1 - p) * np.log((1 - p) / (1 - q)), 0.0)
    result: np.ndarray = a + b
    return result


def _share_terms(slow: np.ndarray, ref: np.ndarray, factor: float, share: float,
                 prior: Prior, above: bool, last: bool = False) -> np.ndarray:  # fmt: skip
    """Per bound: log e-value on the requests slower than it, against "the slow side's
    share above the bound is at most (above=True) / at least (False) factor x the
    reference's" (the `share` tolerance: the same bound on both sides, no rounding)."""
    above_slow, above_ref = slow[..., -1:] - slow[..., :-1], ref[..., -1:] - ref[..., :-1]
    theta0 = float(_theta(factor, share))
    if not above:  # proving "within": learn the margin over the looks (axis 0)
        return _learning(above_slow, above_slow + above_ref, theta0, prior, above=False, last=last)
    return log_e_above(above_slow, above_slow + above_ref, theta0, prior)


def _learning(k: np.ndarray, n: np.ndarray, p0: float, prior: Prior, *, above: bool, last: bool = False) -> np.ndarray:
    """One bound's e-process over the looks (axis 0): the average of the fixed mixture
    (strong from the first look on large effects) and the plug-in bet (learns the effect's
    size). `last`: the last look only (the fixed mixture needs no path)."""
    test = log_e_above if above else log_e_below
    fixed = test(k[-1:], n[-1:], p0, prior) if last else test(k, n, p0, prior)
    plugin = log_e_plugin(k, n, p0, above=above)
    result: np.ndarray = np.logaddexp(fixed, plugin[-1:] if last else plugin) - math.log(2)
    return result


def _rank_path(slow: np.ndarray, ref: np.ndarray, bounds: np.ndarray, factor: float, share: float,
               tolerance_on: str) -> np.ndarray:
    """log of the betting e-process that `slow` is slower than factor x `ref`, per look.

    `slow`, `ref`: cumulative buckets (last: the total) per look, looks on axis 0. Each
    request gets a score from the bucket it fell in: g(x) = sum_j w_j [x > b_j] for the
    slow side and kappa * sum_j w_j [x > b_k(j)] for the reference (b_k(j) its bound rounded
    down, kappa 1; or with `share` tolerances b_k(j) = b_j and kappa = factor). Under the
    null (at every bound, slow's share above b_j <= factor x ref's share above b_k(j)),
    Y = (1 - share) (g - c) for a slow request and -share (kappa g' - c) for a reference one
    has mean <= 0 for any weights w >= 0 and centre c, so prod (1 + lambda Y) over the
    requests is a test supermartingale for every lambda in [0, 1/max(-Y)). Weights (the
    pooled mass around each bound: rank scores), centre and lambda (Kelly's mean/second
    moment, capped at half the range) come from the looks before the batch only; the
    first look's batch is not bet on."""
    looks = slow.shape[0]
    out = np.zeros(slow.shape[:-1])
    if looks < 2:
        return out
    n_bounds = bounds.size
    if tolerance_on == "share":
        k, kappa = np.arange(n_bounds), factor
    else:
        k, kappa = _partners(bounds, factor, down=True), 1.0
    usable = (k >= 0).astype(float)
    cells = np.arange(n_bounds + 1)
    ms = (cells[None, :] > np.arange(n_bounds)[:, None]) * usable[:, None]
    mr = (cells[None, :] > k[:, None]) * usable[:, None]
    ps = np.diff(slow, axis=-1, prepend=0.0)
    pr = np.diff(ref, axis=-1, prepend=0.0)
    # every look t >= 2 at once: its bet uses look t-1's counts (the past), its step look t's
    past_s, past_r = ps[:-1], pr[:-1]
    pooled = past_s + past_r
    w = (pooled[..., :-1] + pooled[..., 1:]) * usable
    mass = w.sum(axis=-1, keepdims=True)
    w = w / np.where(mass > 0, mass, 1.0)
    gs, gr = w @ ms, kappa * (w @ mr)
    n = past_s.sum(axis=-1, keepdims=True) + past_r.sum(axis=-1, keepdims=True)
    safe_n = np.where(n > 0, n, 1.0)
    c = ((past_s * gs).sum(axis=-1, keepdims=True) + (past_r * gr).sum(axis=-1, keepdims=True)) / safe_n
    ys, yr = (1.0 - share) * (gs - c), -share * (gr - c)
    mu = ((past_s * ys).sum(axis=-1) + (past_r * yr).sum(axis=-1)) / safe_n[..., 0]
    m2 = ((past_s * ys**2).sum(axis=-1) + (past_r * yr**2).sum(axis=-1)) / safe_n[..., 0]
    low = -np.minimum(ys.min(axis=-1), yr.min(axis=-1))
    cap = 0.5 / np.maximum(low, _EPS)
    lam = np.clip(mu / np.maximum(m2, _EPS), 0.0, cap)
    lam = np.where((n[..., 0] > 0) & (mass[..., 0] > 0), lam, 0.0)
    ds, dr = ps[1:] - past_s, pr[1:] - past_r
    step = ((ds * np.log1p(lam[..., None] * ys)).sum(axis=-1)
            + (dr * np.log1p(lam[..., None] * yr)).sum(axis=-1))  # fmt: skip
    out[1:] = np.cumsum(step, axis=0)
    return out


def _slower_path(slow: np.ndarray, ref: np.ndarray, bounds: np.ndarray, factor: float, share: float,
                 tolerance_on: str, last: bool = False) -> np.ndarray:
    """Evidence that `slow` is slower than factor x `ref` somewhere, per look: the average
    of the betting e-process (_rank_path: every bound at once, strong on shifts of the
    whole distribution) and the fixed mixture over single bounds (strong where a few
    bounds move: a slow tail)."""
    if last:  # the fixed mixture needs no path
        bounds_e = _slower(slow[-1:], ref[-1:], bounds, factor, share, tolerance_on)
        rank = _rank_path(slow, ref, bounds, factor, share, tolerance_on)[-1:]
    else:
        bounds_e = _slower(slow, ref, bounds, factor, share, tolerance_on)
        rank = _rank_path(slow, ref, bounds, factor, share, tolerance_on)
    result: np.ndarray = np.logaddexp(rank, bounds_e) - math.log(2)
    return result


def _within_path(slow: np.ndarray, ref: np.ndarray, bounds: np.ndarray, factor: float, share: float,
                 tolerance_on: str, alpha: float, tolerance: float, planned_looks: int | None,
                 last: bool = False) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Per look and bound: log e-value that `slow` is within factor x `ref` there, and
    whether the bound is required (_required); -inf where the buckets cannot bound it."""
    if tolerance_on == "share":
        per_bound = _share_terms(slow, ref, factor, share, SAFETY_PRIOR, above=False, last=last)
    else:
        per_bound, _, _ = _within_terms(slow, ref, bounds, factor, share, last)
    required = _required(slow, ref, bounds, factor, share, tolerance_on, alpha, tolerance, planned_looks)
    return per_bound, (required[-1:] if last else required)


def _within(slow: np.ndarray, ref: np.ndarray, bounds: np.ndarray, factor: float, share: float,
            tolerance_on: str, alpha: float, tolerance: float, planned_looks: int | None,
            last: bool = False) -> np.ndarray:  # fmt: skip
    """Evidence that `slow` is within factor x `ref` at every required bound, per look (the
    weakest required bound's; -inf when none is required)."""
    per_bound, required = _within_path(slow, ref, bounds, factor, share, tolerance_on, alpha, tolerance,
                                       planned_looks, last)  # fmt: skip
    weakest = np.where(required, per_bound, np.inf).min(axis=-1)
    return np.where(required.any(axis=-1), weakest, -np.inf)


def histogram_log_evidence(
    control: np.ndarray, experiment: np.ndarray, bounds: np.ndarray, *, direction: str,
    tolerance: float, split: float = 0.5, safe: bool = True, tolerance_on: str = "quantile",
    alpha: float = 0.01, planned_looks: int | None = None, last: bool = False,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """compare_histograms' log e-values at every look of a release, for arrays of
    cumulative buckets (last column the total): axis 0 is the looks in order (the counts
    cumulative since the analysis began at each), any leading shape after it
    (simulations use it). `bounds` are the finite bounds.

    Returns (regression, within, slower, faster), each per look: `regression` in the
    configured direction, `within` the tolerance at every required bound (None when `safe`
    is False: it costs as much again), and the two directions' evidence (slower: None for
    direction "decrease"; faster: None for "increase" or a tolerance >= 1). -inf where a
    side has no requests. `last`: only the last look's values (a looks axis of length 1),
    much cheaper. Unchecked.
    """
    c, e = np.asarray(control, dtype=float), np.asarray(experiment, dtype=float)
    up, down = 1.0 + tolerance, (1.0 / (1.0 - tolerance) if tolerance < 1 else math.inf)
    ends = (c[-1:], e[-1:]) if last else (c, e)
    nodata = (ends[0][..., -1] == 0) | (ends[1][..., -1] == 0)
    slower = _slower_path(e, c, bounds, up, split, tolerance_on, last) if direction != "decrease" else None
    faster = (_slower_path(c, e, bounds, down, 1.0 - split, tolerance_on, last)
              if tolerance < 1 and direction != "increase" else None)  # fmt: skip
    tests = {"increase": [(e, c, up, split)], "decrease": [(c, e, down, 1.0 - split)]}.get(
        direction, [(e, c, up, split), (c, e, down, 1.0 - split)]
    )
    if direction == "increase":
        assert slower is not None
        reg = slower
    elif direction == "decrease":
        assert faster is not None
        reg = faster
    else:
        assert faster is not None and slower is not None
        reg = np.logaddexp(slower, faster) - math.log(2)
    within = None
    if safe:
        within = np.minimum.reduce([
            _within(slow, ref, bounds, f, w, tolerance_on, alpha, tolerance, planned_looks, last)
            for slow, ref, f, w in tests
        ])  # fmt: skip
        within = np.where(nodata, -np.inf, within)
    return np.where(nodata, -np.inf, reg), within, slower, faster


def _worst(slow: np.ndarray, ref: np.ndarray, bounds: np.ndarray, factor: float, share: float,
           tolerance_on: str) -> _Evidence:
    """Where the evidence that `slow` is slower is strongest (one histogram, for reasons)."""
    j, k, exceed, fast = _slower_terms(slow, ref, bounds, factor, share, tolerance_on)
    if j.size == 0:
        return _Evidence(0.0, -1, -1, math.nan, math.nan)
    best = int(np.argmax(np.logaddexp(exceed, fast) if fast.size else exceed))
    jb, kb = int(j[best]), int(k[best])
    log_e = float(np.logaddexp(exceed[best], fast[best])) if fast.size else float(exceed[best])
    return _Evidence(log_e, jb, kb,
                     float((slow[-1] - slow[jb]) / slow[-1]), float((ref[-1] - ref[kb]) / ref[-1]))  # fmt: skip


def _weakest(per_bound: np.ndarray, required: np.ndarray) -> tuple[float, int, int]:
    """(log e, index, number of required bounds) of the required bound hardest to prove
    within, at the last look."""
    idx = np.nonzero(required[-1])[0]
    if idx.size == 0:
        return -math.inf, -1, 0
    weakest = int(idx[np.argmin(per_bound[-1][idx])])
    return float(per_bound[-1][weakest]), weakest, int(idx.size)


def _path(current: np.ndarray, history: Sequence[tuple[object, object]], index: int, bounds: np.ndarray,
          name: str) -> np.ndarray:  # fmt: skip
    """The looks' cumulative buckets of one side, oldest first, the current look last;
    each earlier look checked like the current one and no count may drop between looks."""
    side = "control_buckets" if index == 0 else "experiment_buckets"
    try:  # the usual case, checked in bulk: well-formed earlier looks of the same buckets
        earlier = np.array([look[index] for look in history], dtype=float).reshape(len(history), -1)
        if earlier.shape[1] == bounds.size and np.all(np.isfinite(earlier)) and np.all(earlier >= 0):
            path = np.vstack([earlier, current[None, :]])
            if not (np.diff(path, axis=-1) < -_EPS * np.maximum(1.0, path[:, -1:])).any():
                return _monotone_looks(path, side, name)
    except (TypeError, ValueError, IndexError, KeyError):
        pass  # checked one by one below, for the message
    looks = []
    for n, look in enumerate(history, start=1):
        try:
            values = look[index]
        except (TypeError, IndexError, KeyError):
            raise ConfigError(f"history[{n - 1}] must be a (control_buckets, experiment_buckets) "
                              f"pair, got {look!r}") from None  # fmt: skip
        arr = _as_counts(values, f"history[{n - 1}] {side}")
        if arr.size != bounds.size:
            raise ConfigError(f"history[{n - 1}] {side} has {arr.size} buckets, the current look "
                              f"{bounds.size}: every look must use the same buckets")  # fmt: skip
        looks.append(arr)
    looks.append(current)
    return _monotone_looks(np.vstack(looks), side, name)


def _monotone_looks(path: np.ndarray, side: str, name: str) -> np.ndarray:
    """`path` (looks x buckets) itself, once no count drops from one look to the next."""
    drop = np.nonzero((np.diff(path, axis=0) < -_EPS * np.maximum(1.0, path[1:])).any(axis=1))[0]
    if drop.size:
        i = int(drop[0])
        raise ConfigError(
            f"{name} counts must be cumulative since the analysis began: the {side} at look "
            f"{i + 2} are below those of look {i + 1} (a counter reset must be handled before "
            "judging)"
        )
    return path


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
    tolerance_on: str = "quantile",
    history: Sequence[tuple[Sequence[float] | np.ndarray, Sequence[float] | np.ndarray]] = (),
    planned_looks: int | None = None,
) -> HistogramResult:
    """Is the canary slower than (1 + tolerance) x the baseline anywhere in the distribution?

    Buckets are cumulative over `le` as Prometheus exposes them (the last bound +Inf, its
    count the total), counts cumulative since the analysis began; bounds in any unit
    (`unit` only labels the reason: "s" and "ms" are shown in milliseconds). With
    direction "decrease" the question is whether the canary is faster than (1 - tolerance)
    x the baseline; "either" asks both, at alpha/2 each.

    `tolerance_on` says what the tolerance bounds: "quantile" (every quantile of the canary
    at most (1 + tolerance) x the baseline's) or "share" (at every bucket bound, the share
    of canary requests slower than it at most (1 + tolerance) x the baseline's share).
    `history` holds the earlier looks' (control_buckets, experiment_buckets), oldest first:
    the e-processes bet on each look's new requests with what the looks before taught them,
    so a release judged with its history decides sooner; without it this is the release's
    first look. `planned_looks` (the release's number of looks) sets which bounds a decided
    Pass must cover: those that will have enough requests by the planned end.
    """
    d, a, tol, w = _check_common(direction, alpha, tolerance, split)
    mode = check_choice(tolerance_on, "tolerance_on", TOLERANCE_ON)
    c, e, b = _check_histogram(control_buckets, experiment_buckets, upper_bounds)
    if tol > 0 and b[0] <= 0:
        raise ConfigError(
            f"a relative tolerance needs positive bucket bounds (latencies), got le={b[0]:g}"
        )
    if planned_looks is not None and (isinstance(planned_looks, bool) or not isinstance(planned_looks, int)
                                      or planned_looks < 1):  # fmt: skip
        raise ConfigError(f"planned_looks must be a whole number >= 1, got {planned_looks!r}")
    bounds = b[:-1]
    n_c, n_e = float(c[-1]), float(e[-1])
    threshold = math.log(1.0 / a)
    quantiles = {"control": _quantile_bands(c, bounds, a), "canary": _quantile_bands(e, bounds, a)}
    common: dict[str, Any] = {"direction": d, "alpha": a, "tolerance": tol, "unit": unit,
              "tolerance_on": mode, "look": len(history) + 1,
              "control_total": n_c, "experiment_total": n_e, "upper_bounds": tuple(b.tolist()),
              "control_buckets": tuple(c.tolist()), "experiment_buckets": tuple(e.tolist()),
              "control_quantiles": quantiles["control"],
              "experiment_quantiles": quantiles["canary"]}  # fmt: skip
    pc, pe = _path(c, history, 0, b, "histogram"), _path(e, history, 1, b, "histogram")
    if n_c == 0 or n_e == 0:
        missing = " and ".join(s for s, t in (("canary", n_e), ("baseline", n_c)) if t == 0)
        return HistogramResult(Classification.NODATA, False, f"no requests for the {missing} yet",
                               evidence=1.0, safety=1.0, **common)  # fmt: skip

    reg_, _, slower_, faster_ = histogram_log_evidence(pc, pe, bounds, direction=d, tolerance=tol,
                                                       split=w, safe=False, tolerance_on=mode, last=True)  # fmt: skip
    reg = float(reg_[-1])
    # "increase": the canary is the side that may be slower; "decrease": the baseline is
    # (the canary faster than (1 - tol) x baseline <=> baseline slower than canary / (1 - tol)).
    up_factor, down_factor = 1.0 + tol, (1.0 / (1.0 - tol) if tol < 1 else math.inf)
    if d == "either":
        assert faster_ is not None and slower_ is not None  # both sides for "either"
        higher = float(slower_[-1]) >= float(faster_[-1])
    else:
        higher = d == "increase"
    sides = [] if d == "decrease" else [(pe, pc, up_factor, w)]
    if d != "increase":
        sides.append((pc, pe, down_factor, 1.0 - w))
    within = [_within_path(slow, ref, bounds, f, s, mode, a, tol, planned_looks, last=True)
              for slow, ref, f, s in sides]  # fmt: skip
    safe = min((_weakest(*pair) for pair in within), key=lambda item: item[0])
    covered = np.nonzero(np.logical_or.reduce([req[-1] for _, req in within]))[0]

    detail: _WorstDetail = {"worst_bound": None, "worst_reference": None,
              "experiment_share_above": None, "control_share_above": None}  # fmt: skip
    worst = _Evidence(0.0, -1, -1, math.nan, math.nan)
    if reg >= threshold:  # only a regression names a bound: where it is worst
        worst = (_worst(e, c, bounds, up_factor, w, mode) if higher
                 else _worst(c, e, bounds, down_factor, 1.0 - w, mode))  # fmt: skip
    if worst.bound >= 0:
        slow_b, ref_b = float(bounds[worst.bound]), float(bounds[worst.reference])
        canary_b, base_b = (slow_b, ref_b) if higher else (ref_b, slow_b)
        canary_share, base_share = ((worst.share_slow, worst.share_ref) if higher
                                    else (worst.share_ref, worst.share_slow))  # fmt: skip
        detail = {"worst_bound": canary_b, "worst_reference": base_b,
                  "experiment_share_above": canary_share, "control_share_above": base_share}
    summary = _quantile_summary(quantiles["control"], quantiles["canary"], unit)
    need = f"1/alpha = {_e(threshold)}"
    band = _band_text(d, tol) + (" in the share of slower requests" if mode == "share" and tol > 0 else "")
    evidence, safety = math.exp(min(reg, 700)), math.exp(min(safe[0], 700))
    look = len(history) + 1
    if reg >= threshold:
        where = _where(detail, unit, higher)
        label = Classification.HIGH if higher else Classification.LOW
        word = "slower" if higher else "faster"
        reason = (f"canary is {word}, beyond {band}, decided at look {look}: {where}; "
                  f"e-value {_e(reg)} >= {need}; {summary}")  # fmt: skip
        return HistogramResult(label, True, reason, evidence=evidence, safety=safety, **detail, **common)
    log_safe, weakest, required = safe
    if required and log_safe >= threshold:
        pooled = (c[:-1] + e[:-1]) / (n_c + n_e)
        span = (f"{format_value(float(bounds[covered[0]]), unit)} to "
                f"{format_value(float(bounds[covered[-1]]), unit)}, the pooled "
                f"p{_pct_of(pooled[covered[0]])} to p{_pct_of(pooled[covered[-1]])}; above it "
                "only the regression test watches")  # fmt: skip
        reason = (f"within {band} (decided at look {look}) at every one of the {required} bucket "
                  f"bounds with enough requests ({span}): weakest e-value {_e(log_safe)} >= "
                  f"{need}; {summary}")  # fmt: skip
        return HistogramResult(Classification.PASS, True, reason, evidence=evidence, safety=safety, **detail, **common)
    if look == 1:
        pending = ("the first look only sets which bounds a decision must cover: "
                   "'within tolerance' can be decided from look 2")
    elif required == 0:
        pending = "no bucket bound has enough requests on both tracks to prove 'within tolerance' there"
    elif log_safe == -math.inf or (mode == "quantile" and tol > 0
                                   and _partners(bounds, up_factor, down=False)[weakest] == weakest):
        pending = (f"the buckets around {format_value(float(bounds[weakest]), unit)} are wider "
                   f"than the tolerance, so 'within tolerance' cannot be proven there"
                   + ("; tolerance_on: share can prove it" if mode == "quantile" else ""))
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
    share = counts / n
    qs = np.array(QUANTILES)
    # no mixture exceeds the best likelihood ratio, exp(n KL(share, q)): only bounds that
    # reach the threshold with it can be proven, and proof is monotone in the bound. So
    # the upper end is the first candidate above q that is proven, the lower end the last
    # one below; the nearest candidates usually decide, so they are tried first, together.
    reach = n * _kl(share[None, :], qs[:, None]) >= threshold
    ups = [np.nonzero(r & (share > q))[0] for r, q in zip(reach, qs, strict=True)]
    downs = [np.nonzero(r & (share < q))[0][::-1] for r, q in zip(reach, qs, strict=True)]
    upper = _first_proven(ups, counts, n, qs, threshold, above=True)
    lower = _first_proven(downs, counts, n, qs, threshold, above=False)
    return tuple(QuantileBand(float(q), _interpolate(side, bounds, float(q)),
                              None if lo is None else float(bounds[lo]),
                              None if up is None else float(bounds[up]))
                 for q, lo, up in zip(qs, lower, upper, strict=True))  # fmt: skip


def _first_proven(candidates: list[np.ndarray], counts: np.ndarray, n: float, qs: np.ndarray,
                  threshold: float, *, above: bool) -> list[int | None]:  # fmt: skip
    """Per quantile, the first of its candidate bounds (in order) whose e-value that F(b)
    lies above (below) q reaches the threshold; the first two of every quantile in one
    evaluation, the rest a few at a time."""
    test = log_e_above if above else log_e_below
    found: list[int | None] = [None] * len(qs)
    head = [(i, int(j)) for i, cand in enumerate(candidates) for j in cand[:2]]
    if head:
        idx = np.array([j for _, j in head])
        proven = test(counts[idx], n, qs[[i for i, _ in head]], SPLIT_PRIOR) >= threshold
        for (i, j), ok in zip(head, proven, strict=True):
            if ok and found[i] is None:
                found[i] = j
    for i, cand in enumerate(candidates):
        start = 2
        while found[i] is None and start < cand.size:
            chunk = cand[start:start + 4]
            hit = np.nonzero(test(counts[chunk], n, float(qs[i]), SPLIT_PRIOR) >= threshold)[0]
            if hit.size:
                found[i] = int(chunk[hit[0]])
            start += 4
    return found


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
