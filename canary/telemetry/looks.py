"""A look of a release as its ``canary.release.look`` event: what a dashboard plots.

Per judged metric the estimate, its interval ends and the decision threshold, in the
estimate's unit, side by side (flagger#1304), whichever test judged it:

- a ratio metric: the rate ratio canary/baseline with its confidence sequence; the
  threshold is 1 + tolerance (1 - tolerance for ``direction: decrease``);
- a histogram metric: the canary's p99 with its confidence sequence; the threshold is the
  baseline's p99 times (1 + tolerance) (times (1 - tolerance) for a decrease);
- a series metric (Kayenta's rank test): the shift canary - baseline with its interval;
  the threshold is the margin the interval must clear (tolerance x |shift|; negative for
  a decrease);
- a metric with a ``thresholdRange``: the canary's mean; the threshold is the bound it must
  stay under (``max``, else ``min``).
"""

from __future__ import annotations

import math

from canary.analysis.decision import Decision
from canary.judge.classify import MetricResult
from canary.judge.histogram import HistogramResult
from canary.judge.interval import IntervalJudgement, MetricJudgement
from canary.judge.ratio import CountsResult
from canary.judge.result import finite_or_none
from canary.values.events import LookMetric, ReleaseLook
from canary.values.weights import Weights

__all__ = ["look_event", "look_metric"]


def _scaled(value: float | None, tolerance: float, direction: str) -> float | None:
    """`value` times (1 + tolerance), or (1 - tolerance) for a decrease; None stays None."""
    if value is None:
        return None
    return value * (1 - tolerance if direction == "decrease" else 1 + tolerance)


def _threshold(m: MetricJudgement) -> float | None:
    """The decision threshold of one judged metric, in its estimate's unit (None: none)."""
    result, bounds = m.result, m.metric.canary.threshold_range
    if isinstance(result, CountsResult):
        return _scaled(1.0, result.tolerance, result.direction)
    if isinstance(result, HistogramResult):
        base = result.control_quantiles[-1].estimate if result.control_quantiles else None
        return _scaled(finite_or_none(base), result.tolerance, result.direction)
    if bounds is not None:
        limit = bounds.max if bounds.max is not None else bounds.min
        return None if limit is None else float(limit)
    if isinstance(result, MetricResult) and math.isfinite(result.margin):
        sign = -1.0 if m.metric.canary.direction == "decrease" else 1.0
        return sign * result.margin
    return None


def look_metric(m: MetricJudgement) -> LookMetric:
    """One judged metric's numbers for the look event.

    Args:
        m: The metric as the interval judge judged it.

    Returns:
        Its classification, estimate, interval ends and threshold.
    """
    row = m.result.row()
    estimate = row["estimate"]
    if estimate is None and isinstance(m.result, MetricResult) and m.result.experiment.count:
        estimate = finite_or_none(m.result.experiment.mean)  # bounds: the canary's mean
    return LookMetric(metric=m.name, classification=str(m.classification.value),
                      estimate=estimate, lower=row["ci_lower"], upper=row["ci_upper"],
                      threshold=finite_or_none(_threshold(m)))  # fmt: skip


def look_event(app: str, *, look: int, looks: int, judgement: IntervalJudgement,
               weights: Weights, decision: Decision | None) -> ReleaseLook:  # fmt: skip
    """The ``canary.release.look`` event of one look.

    Args:
        app: The app released.
        look: The look's number (1 = first).
        looks: The planned number of looks.
        judgement: What the judge said at this look.
        weights: The shares the router carried, read back.
        decision: The decision after this look (None: none yet).

    Returns:
        The event.
    """
    return ReleaseLook(app=app, look=look, looks=looks, primary=weights.primary,
                       baseline=weights.baseline, canary=weights.canary,
                       score=finite_or_none(judgement.summary_score),
                       action=decision.action.value if decision is not None else "",
                       metrics=tuple(look_metric(m) for m in judgement.metrics))  # fmt: skip
