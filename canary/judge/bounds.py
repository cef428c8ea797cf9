"""Flagger-style absolute checks: the canary's mean must stay inside fixed bounds.

Kayenta has no such check; Flagger's built-in ones are exactly this (request success rate
>= 99 %, request duration p99 <= 500 ms). The result uses the same labels and result type as
the rank test so it scores like any other metric: above `maximum` is High, below `minimum`
is Low, no canary data is Nodata (NodataFailMetric when the metric must have data).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from canary.judge.classify import Classification, MetricResult
from canary.judge.preprocess import as_sample, handle_nans, summarize


def check_bounds(
    control: Iterable[float] | np.ndarray,
    experiment: Iterable[float] | np.ndarray,
    *,
    minimum: float | None,
    maximum: float | None,
    critical: bool = False,
    must_have_data: bool = False,
    nan_strategy: str = "remove",
) -> MetricResult:
    """Judge the canary's mean against [minimum, maximum]; the baseline is reported only."""
    ctl = handle_nans(as_sample(control, "control"), nan_strategy)
    exp = handle_nans(as_sample(experiment, "experiment"), nan_strategy)
    stats = (summarize(ctl), summarize(exp))
    deviation = _ratio(exp, ctl)

    def result(label: Classification, reason: str, *, failed: bool) -> MetricResult:
        return MetricResult(
            classification=label,
            critical=bool(critical and failed),
            deviation=deviation,
            reason=reason,
            interval=None,
            effect_size=math.nan,
            control=stats[0],
            experiment=stats[1],
        )

    bounds = _describe(minimum, maximum)
    if exp.size == 0:
        if must_have_data and not critical:
            return result(
                Classification.NODATA_FAIL_METRIC,
                f"no canary data to check against {bounds}",
                failed=True,
            )
        return result(
            Classification.NODATA, f"no canary data to check against {bounds}", failed=True
        )
    mean = float(np.mean(exp))
    if maximum is not None and not mean <= maximum:
        return result(
            Classification.HIGH,
            f"canary mean {mean:.4g} is above the maximum {maximum:.4g} ({bounds})",
            failed=True,
        )
    if minimum is not None and not mean >= minimum:
        return result(
            Classification.LOW,
            f"canary mean {mean:.4g} is below the minimum {minimum:.4g} ({bounds})",
            failed=True,
        )
    return result(Classification.PASS, f"canary mean {mean:.4g} is within {bounds}", failed=False)


def _describe(minimum: float | None, maximum: float | None) -> str:
    lo = "-inf" if minimum is None else f"{minimum:.4g}"
    hi = "+inf" if maximum is None else f"{maximum:.4g}"
    return f"the bounds [{lo}, {hi}]"


def _ratio(exp: np.ndarray, ctl: np.ndarray) -> float:
    if exp.size == 0 or ctl.size == 0:
        return math.nan
    num, den = float(np.mean(exp)), float(np.mean(ctl))
    return num / den if den != 0 and num != 0 else math.nan
