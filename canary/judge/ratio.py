"""The ratio (count) test: is the canary's event rate more than (1 + tolerance) times the
baseline's? (or less than (1 - tolerance) times, for direction "decrease"), anytime-valid.

Given that an event (an error) happened, the chance that it was the canary's is
split * r / (split * r + 1 - split), r the ratio of the canary's event rate to the
baseline's; canary.judge.evalues' e-processes test that share (canary.judge.sequential
has the whole idea).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypedDict

import numpy as np

from canary.errors import ConfigError
from canary.judge.classify import Classification
from canary.judge.common import _EPS, _band_text, _check_common, _count, _e, _pct, _theta
from canary.judge.evalues import (
    INTERVAL_PRIOR,
    RATIO_PRIOR,
    SAFE_RATE_PRIOR,
    log_e_above,
    log_e_below,
)
from canary.judge.preprocess import check_real
from canary.judge.result import (
    JudgedCounts,
    JudgeResult,
    NumberText,
    ResultRow,
    Sides,
    finite_or_none,
)

__all__ = ["CountsResult", "compare_counts", "ratio_log_evidence"]

_RATIO_GRID = np.exp(np.linspace(np.log(1e-4), np.log(1e4), 41))


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
    #: set by the interval judge: a failed result (High, Low, Nodata) of a critical metric
    critical: bool = False

    @property
    def control_rate(self) -> float:
        """The baseline's event rate (NaN without requests)."""
        return self.control_events / self.control_total if self.control_total else math.nan

    @property
    def experiment_rate(self) -> float:
        """The canary's event rate (NaN without requests)."""
        return self.experiment_events / self.experiment_total if self.experiment_total else math.nan

    @property
    def confidence(self) -> float:
        """The level of each claim: 1 - alpha."""
        return 1 - self.alpha

    @property
    def counts(self) -> JudgedCounts:
        """(events, total) per track, and the rate ratio."""
        return JudgedCounts(control=(self.control_events, self.control_total),
                            experiment=(self.experiment_events, self.experiment_total),
                            estimate=self.ratio)  # fmt: skip

    def row(self) -> ResultRow:
        """Rates, requests, the rate ratio and its confidence sequence for a report table."""
        return {
            "decided": self.decided,
            "baseline_mean": finite_or_none(self.control_rate),
            "canary_mean": finite_or_none(self.experiment_rate),
            "baseline_count": int(self.control_total),
            "canary_count": int(self.experiment_total),
            "ci_lower": finite_or_none(self.ratio_lower),
            "ci_upper": finite_or_none(self.ratio_upper),
            "estimate": finite_or_none(self.ratio),
            "effect_size": finite_or_none(self.evidence),
            "deviation": finite_or_none(self.ratio),
        }

    def sides(self, number: NumberText) -> Sides:
        """Each track's rate (events/requests) and the rate ratio with its interval."""

        def pct(rate: float) -> str:
            """A rate in percent, written by `number`."""
            return f"{number(100 * rate)}%"

        base = (f"{pct(self.control_rate)} ({self.control_events:.0f}/{self.control_total:.0f})"
                if self.control_total else "–")  # fmt: skip
        can = (f"{pct(self.experiment_rate)} ({self.experiment_events:.0f}/{self.experiment_total:.0f})"
               if self.experiment_total else "–")  # fmt: skip
        effect = "–" if not math.isfinite(self.ratio) else f"×{number(self.ratio)}"
        if math.isfinite(self.ratio_lower) or math.isfinite(self.ratio_upper):
            effect += f" [{number(self.ratio_lower)}, {number(self.ratio_upper)}]"
        return base, can, effect


_: type[JudgeResult] = CountsResult



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

    Returns:
        The classification (High/Low: a regression proven; Pass, decided or not yet;
        Nodata without requests on a side), with the rate ratio's confidence sequence and
        the reason.

    Raises:
        ConfigError: on arguments the test cannot take (the message names the argument).
    """
    d, a, tol, w = _check_common(direction, alpha, tolerance, split)
    safe_rate = _check_safe_rate(safe_rate, d)
    ce, ct, ee, et = _check_counts(control_events, control_total, experiment_events, experiment_total)
    threshold = math.log(1.0 / a)
    lower, upper = _ratio_bounds(ee, ce + ee, w, threshold)
    fields: _CountsFields = {
        "direction": d, "alpha": a, "tolerance": tol, "control_events": ce,
        "control_total": ct, "experiment_events": ee, "experiment_total": et,
        "ratio": _rate_ratio(ce, ct, ee, et), "ratio_lower": lower, "ratio_upper": upper,
    }  # fmt: skip
    if ct == 0 or et == 0:
        missing = " and ".join(s for s, t in (("canary", et), ("baseline", ct)) if t == 0)
        return CountsResult(Classification.NODATA, False, f"no requests for the {missing} yet",
                            evidence=1.0, safety=1.0, **fields)  # fmt: skip
    reg_, safe_, up_, down_ = ratio_log_evidence(ce, ct, ee, et, direction=d, tolerance=tol, split=w,
                                                 safe_rate=safe_rate)  # fmt: skip
    reg, safe = float(reg_), float(safe_)
    label, decided, reason = _verdict(fields, reg, safe, float(up_) >= float(down_), threshold, safe_rate)
    return CountsResult(label, decided, reason, evidence=math.exp(min(reg, 700)),
                        safety=math.exp(min(safe, 700)), **fields)  # fmt: skip


class _CountsFields(TypedDict):
    """CountsResult's fields every outcome shares, checked by the dataclass."""

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


def _check_safe_rate(safe_rate: float | None, direction: str) -> float | None:
    """`safe_rate` checked: a rate in (0, 1), for direction "increase" only."""
    if safe_rate is None:
        return None
    value = check_real(safe_rate, "safe_rate")
    if not 0.0 < value < 1.0:
        raise ConfigError(f"safe_rate must be a rate strictly between 0 and 1 (0.01 = 1 %), got {value!r}")
    if direction != "increase":
        raise ConfigError(f"safe_rate bounds the canary's rate from above: it needs direction "
                          f"'increase', not {direction!r}")  # fmt: skip
    return value


def _check_counts(control_events: object, control_total: object, experiment_events: object,
                  experiment_total: object) -> tuple[float, float, float, float]:  # fmt: skip
    """The four counts checked: numbers >= 0, events at most the total on each side."""
    ce, ct = _count(control_events, "control_events"), _count(control_total, "control_total")
    ee, et = _count(experiment_events, "experiment_events"), _count(experiment_total, "experiment_total")
    for side, ev, tot in (("control", ce, ct), ("experiment", ee, et)):
        if ev > tot * (1 + _EPS):
            raise ConfigError(
                f"{side}_events {ev:g} exceed {side}_total {tot:g}: the event counter must "
                "count a subset of the total's requests (are the two queries swapped?)"
            )
    return ce, ct, ee, et


def _verdict(f: _CountsFields, reg: float, safe: float, up_wins: bool, threshold: float,
             safe_rate: float | None) -> tuple[Classification, bool, str]:  # fmt: skip
    """(label, decided, reason) from the log e-values for a regression and for "within";
    `up_wins`: the upward regression has at least the downward's evidence."""
    ce, ct, ee, et = f["control_events"], f["control_total"], f["experiment_events"], f["experiment_total"]
    d, a, tol = f["direction"], f["alpha"], f["tolerance"]
    rates = (f"canary {_pct(ee / et)} ({ee:.0f}/{et:.0f}) vs baseline {_pct(ce / ct)} "
             f"({ce:.0f}/{ct:.0f})")  # fmt: skip
    interval = (f"rate ratio {_ratio_text(f['ratio'])}, {100 * (1 - 2 * a):g}% CS "
                f"[{_ratio_text(f['ratio_lower'])}, {_ratio_text(f['ratio_upper'])}]")  # fmt: skip
    need = f"1/alpha = {_e(threshold)}"
    band = _band_text(d, tol)
    if reg >= threshold:
        higher = d == "increase" or (d == "either" and up_wins)
        word = "higher" if higher else "lower"
        reason = (f"canary rate is {word}, beyond {band}: {rates}; {interval}; "
                  f"e-value {_e(reg)} >= {need}")  # fmt: skip
        return (Classification.HIGH if higher else Classification.LOW), True, reason
    below = f" or below the safe rate {_pct(safe_rate)}" if safe_rate is not None else ""
    if safe >= threshold:
        return Classification.PASS, True, (f"within {band}{below} (decided): {rates}; {interval}; "
                                           f"e-value {_e(safe)} >= {need}")  # fmt: skip
    if ce + ee == 0:
        reason = (f"no events on either side yet ({rates}): nothing to compare, so no regression"
                  + (f"; not yet proven below the safe rate {_pct(safe_rate)} "
                     f"(e-value {_e(safe)} < {need})" if safe_rate is not None else ""))
        return Classification.PASS, False, reason
    return Classification.PASS, False, (
        f"no regression proven yet, nor that the ratio lies within {band}: {rates}; "
        f"{interval}; e-values {_e(reg)} (regression) and {_e(safe)} (within) < {need}")  # fmt: skip


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

