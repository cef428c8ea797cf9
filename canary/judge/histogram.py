"""The histogram test: is the canary slower than (1 + tolerance) times the baseline
anywhere in the distribution? (faster than (1 - tolerance) times for "decrease").

At every bucket bound b, "slower" means that a larger share of canary requests exceeds b
than of baseline requests exceeds b / (1 + tolerance); the baseline's bound is rounded
*down* to a bucket bound, which only makes the comparison stricter for the baseline, so
bucket resolution costs power, never validity. The e-processes (canary.judge.
histogram_evidence) decide; this module checks the arguments and says why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict

import numpy as np

from canary.errors import ConfigError
from canary.judge.classify import Classification
from canary.judge.common import _band_text, _check_common, _e, _pct, _pct_of, format_value
from canary.judge.histogram_evidence import (
    _Evidence,
    _partners,
    _weakest,
    _within_path,
    _worst,
    histogram_log_evidence,
)
from canary.judge.histogram_input import check_histogram, looks_path
from canary.judge.preprocess import check_choice
from canary.judge.quantiles import QuantileBand, quantile_bands, quantile_summary
from canary.judge.result import (
    JudgedCounts,
    JudgeResult,
    NumberText,
    ResultRow,
    Sides,
    finite_or_none,
)

__all__ = ["TOLERANCE_ON", "HistogramResult", "compare_histograms"]

#: What a histogram tolerance bounds: every quantile, or the share of requests above every bound.
TOLERANCE_ON = ("quantile", "share")


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

    #: set by the interval judge: a failed result (High, Low, Nodata) of a critical metric
    critical: bool = False

    @property
    def confidence(self) -> float:
        """The level of each claim: 1 - alpha."""
        return 1 - self.alpha

    @property
    def counts(self) -> JudgedCounts:
        """The cumulative buckets judged per track, their bounds and unit."""
        return JudgedCounts(control=self.control_buckets, experiment=self.experiment_buckets,
                            upper_bounds=self.upper_bounds, unit=self.unit)  # fmt: skip

    def row(self) -> ResultRow:
        """Both tracks' p99 (the canary's with its confidence sequence) for a report table."""
        base, can = self.control_quantiles[-1], self.experiment_quantiles[-1]
        return {
            "decided": self.decided,
            "baseline_mean": finite_or_none(base.estimate),
            "canary_mean": finite_or_none(can.estimate),
            "baseline_count": int(self.control_total),
            "canary_count": int(self.experiment_total),
            "ci_lower": finite_or_none(can.lower),
            "ci_upper": finite_or_none(can.upper),
            "estimate": finite_or_none(can.estimate),
            "effect_size": finite_or_none(self.evidence),
            "deviation": None,
        }

    def sides(self, number: NumberText) -> Sides:
        """The reported quantile that moved the most (relatively) on each track, and by how much."""
        worst = self._worst_quantile()
        if worst is None:
            return "–", "–", "–"
        name, b, c = worst
        change = f"{'+' if c >= b else ''}{number(100 * (c / b - 1))}% at {name}"
        return f"{name} {format_value(b, self.unit)}", f"{name} {format_value(c, self.unit)}", change

    def _worst_quantile(self) -> tuple[str, float, float] | None:
        """(name, baseline, canary) of the reported quantile that moved the most, relatively."""
        best = None
        for base, can in zip(self.control_quantiles, self.experiment_quantiles, strict=True):
            if base.estimate and can.estimate is not None and base.estimate > 0:
                change = abs(can.estimate / base.estimate - 1)
                if best is None or change > best[0]:
                    best = (change, f"p{100 * base.quantile:g}", base.estimate, can.estimate)
        return None if best is None else best[1:]


_: type[JudgeResult] = HistogramResult


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

    Raises:
        ConfigError: on arguments the test cannot take (the message names the argument).
    """
    d, a, tol, w = _check_common(direction, alpha, tolerance, split)
    mode = check_choice(tolerance_on, "tolerance_on", TOLERANCE_ON)
    c, e, b = check_histogram(control_buckets, experiment_buckets, upper_bounds)
    _check_options(tol, b, planned_looks)
    bounds = b[:-1]
    n_c, n_e = float(c[-1]), float(e[-1])
    fields: _HistogramFields = {
        "direction": d, "alpha": a, "tolerance": tol, "unit": unit, "tolerance_on": mode,
        "look": len(history) + 1, "control_total": n_c, "experiment_total": n_e,
        "upper_bounds": tuple(b.tolist()), "control_buckets": tuple(c.tolist()),
        "experiment_buckets": tuple(e.tolist()), "control_quantiles": quantile_bands(c, bounds, a),
        "experiment_quantiles": quantile_bands(e, bounds, a),
    }  # fmt: skip
    pc, pe = looks_path(c, history, 0, b, "histogram"), looks_path(e, history, 1, b, "histogram")
    if n_c == 0 or n_e == 0:
        missing = " and ".join(s for s, t in (("canary", n_e), ("baseline", n_c)) if t == 0)
        return HistogramResult(Classification.NODATA, False, f"no requests for the {missing} yet",
                               evidence=1.0, safety=1.0, **fields)  # fmt: skip
    judged = _judge(pc, pe, bounds, fields, w, planned_looks)
    label, decided, reason = _verdict(judged, c, e, bounds, fields)
    return HistogramResult(label, decided, reason, evidence=math.exp(min(judged.reg, 700)),
                           safety=math.exp(min(judged.safe[0], 700)), **judged.detail, **fields)  # fmt: skip


class _HistogramFields(TypedDict):
    """HistogramResult's fields every outcome shares, checked by the dataclass."""

    direction: str
    alpha: float
    tolerance: float
    unit: str
    tolerance_on: str
    look: int
    control_total: float
    experiment_total: float
    upper_bounds: tuple[float, ...]
    control_buckets: tuple[float, ...]
    experiment_buckets: tuple[float, ...]
    control_quantiles: tuple[QuantileBand, ...]
    experiment_quantiles: tuple[QuantileBand, ...]


class _WorstDetail(TypedDict):
    """Where a histogram regression is worst (HistogramResult's fields; None: no regression)."""

    worst_bound: float | None
    worst_reference: float | None
    experiment_share_above: float | None
    control_share_above: float | None


@dataclass(frozen=True, slots=True)
class _Judged:
    """The e-values of one look: regression (log), its side, "within" at the weakest
    required bound (log e, index, number required), the bounds covered, the worst place."""

    reg: float
    higher: bool
    safe: tuple[float, int, int]
    covered: np.ndarray
    detail: _WorstDetail


def _check_options(tol: float, b: np.ndarray, planned_looks: object) -> None:
    """A relative tolerance needs positive bounds; planned_looks is a whole number >= 1."""
    if tol > 0 and b[0] <= 0:
        raise ConfigError(
            f"a relative tolerance needs positive bucket bounds (latencies), got le={b[0]:g}"
        )
    if planned_looks is not None and (isinstance(planned_looks, bool) or not isinstance(planned_looks, int)
                                      or planned_looks < 1):  # fmt: skip
        raise ConfigError(f"planned_looks must be a whole number >= 1, got {planned_looks!r}")


def _judge(pc: np.ndarray, pe: np.ndarray, bounds: np.ndarray, f: _HistogramFields, w: float,
           planned_looks: int | None) -> _Judged:  # fmt: skip
    """The last look's e-values for both questions, from the looks' paths `pc`, `pe`."""
    d, a, tol, mode = f["direction"], f["alpha"], f["tolerance"], f["tolerance_on"]
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
    within = [_within_path(slow, ref, bounds, factor, s, mode, a, tol, planned_looks, last=True)
              for slow, ref, factor, s in sides]  # fmt: skip
    safe = min((_weakest(*pair) for pair in within), key=lambda item: item[0])
    covered = np.nonzero(np.logical_or.reduce([req[-1] for _, req in within]))[0]
    detail: _WorstDetail = {"worst_bound": None, "worst_reference": None,
                            "experiment_share_above": None, "control_share_above": None}  # fmt: skip
    worst = _Evidence(0.0, -1, -1, math.nan, math.nan)
    if reg >= math.log(1.0 / a):  # only a regression names a bound: where it is worst
        c, e = pc[-1], pe[-1]
        worst = (_worst(e, c, bounds, up_factor, w, mode) if higher
                 else _worst(c, e, bounds, down_factor, 1.0 - w, mode))  # fmt: skip
    if worst.bound >= 0:
        slow_b, ref_b = float(bounds[worst.bound]), float(bounds[worst.reference])
        canary_b, base_b = (slow_b, ref_b) if higher else (ref_b, slow_b)
        canary_share, base_share = ((worst.share_slow, worst.share_ref) if higher
                                    else (worst.share_ref, worst.share_slow))  # fmt: skip
        detail = {"worst_bound": canary_b, "worst_reference": base_b,
                  "experiment_share_above": canary_share, "control_share_above": base_share}
    return _Judged(reg, higher, safe, covered, detail)


def _verdict(j: _Judged, c: np.ndarray, e: np.ndarray, bounds: np.ndarray,
             f: _HistogramFields) -> tuple[Classification, bool, str]:  # fmt: skip
    """(label, decided, reason): a regression, a decided Pass, or why neither yet."""
    d, tol, mode, unit, look = f["direction"], f["tolerance"], f["tolerance_on"], f["unit"], f["look"]
    threshold = math.log(1.0 / f["alpha"])
    summary = quantile_summary(f["control_quantiles"], f["experiment_quantiles"], unit)
    need = f"1/alpha = {_e(threshold)}"
    band = _band_text(d, tol) + (" in the share of slower requests" if mode == "share" and tol > 0 else "")
    if j.reg >= threshold:
        word = "slower" if j.higher else "faster"
        reason = (f"canary is {word}, beyond {band}, decided at look {look}: "
                  f"{_where(j.detail, unit, j.higher)}; e-value {_e(j.reg)} >= {need}; {summary}")  # fmt: skip
        return (Classification.HIGH if j.higher else Classification.LOW), True, reason
    log_safe, weakest, required = j.safe
    if required and log_safe >= threshold:
        pooled = (c[:-1] + e[:-1]) / (float(c[-1]) + float(e[-1]))
        first, last = j.covered[0], j.covered[-1]
        span = (f"{format_value(float(bounds[first]), unit)} to "
                f"{format_value(float(bounds[last]), unit)}, the pooled "
                f"p{_pct_of(pooled[first])} to p{_pct_of(pooled[last])}; above it "
                "only the regression test watches")  # fmt: skip
        reason = (f"within {band} (decided at look {look}) at every one of the {required} bucket "
                  f"bounds with enough requests ({span}): weakest e-value {_e(log_safe)} >= "
                  f"{need}; {summary}")  # fmt: skip
        return Classification.PASS, True, reason
    pending = _pending(look, required, log_safe, weakest, bounds, f, band, need)
    return Classification.PASS, False, f"no regression proven (e-value {_e(j.reg)} < {need}); {pending}; {summary}"


def _pending(look: int, required: int, log_safe: float, weakest: int, bounds: np.ndarray,
             f: _HistogramFields, band: str, need: str) -> str:  # fmt: skip
    """Why "within tolerance" is not decided yet."""
    mode, tol, unit = f["tolerance_on"], f["tolerance"], f["unit"]
    if look == 1:
        return ("the first look only sets which bounds a decision must cover: "
                "'within tolerance' can be decided from look 2")
    if required == 0:
        return "no bucket bound has enough requests on both tracks to prove 'within tolerance' there"
    if log_safe == -math.inf or (mode == "quantile" and tol > 0
                                 and _partners(bounds, 1.0 + tol, down=False)[weakest] == weakest):
        return (f"the buckets around {format_value(float(bounds[weakest]), unit)} are wider "
                f"than the tolerance, so 'within tolerance' cannot be proven there"
                + ("; tolerance_on: share can prove it" if mode == "quantile" else ""))
    return (f"not yet proven within {band} at {format_value(float(bounds[weakest]), unit)} "
            f"(e-value {_e(log_safe)} < {need})")


def _where(detail: _WorstDetail, unit: str, higher: bool) -> str:
    cb, bb = detail["worst_bound"], detail["worst_reference"]
    cs, bs = detail["experiment_share_above"], detail["control_share_above"]
    if cb is None or bb is None or cs is None or bs is None:
        return "no single bound stands out"
    return (f"{_pct(cs)} of canary requests took longer than {format_value(cb, unit)}, against "
            f"{_pct(bs)} of baseline requests longer than {format_value(bb, unit)}")

