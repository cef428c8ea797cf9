"""From metric labels to Kayenta's weighted score, its Pass/Marginal/Fail and the final decision.

Spec section 6 (WeightedSumScorer) and 7 step 6 (the standalone module's final decision).
The rules look arbitrary in places (a "no data" group scores 0 but counts as 100 in the sum,
weights are never normalised) but they are what Kayenta users' thresholds were tuned on,
so they are reproduced exactly, including Java's BigDecimal HALF_UP rounding.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from numbers import Real
from types import MappingProxyType

from canary.errors import ConfigError
from canary.judge.classify import Classification

__all__ = [
    "NODATA_THRESHOLD_PERCENT",
    "ScoreResult",
    "ScoredMetric",
    "Verdict",
    "classify_score",
    "passes",
    "round_half_up",
    "score",
]

NODATA_THRESHOLD_PERCENT = 50.0
_COUNTED = (Classification.PASS, Classification.HIGH, Classification.LOW,
            Classification.NODATA_FAIL_METRIC)


class Verdict(StrEnum):
    """ThresholdScoreClassifier's three outcomes."""

    PASS = "Pass"
    MARGINAL = "Marginal"
    FAIL = "Fail"


def _as_classification(value: Classification | str) -> Classification:
    try:
        return Classification(value)
    except ValueError:
        allowed = ", ".join(repr(c.value) for c in Classification)
        raise ConfigError(f"classification must be one of {allowed}, got {value!r}") from None


@dataclass(frozen=True, slots=True, init=False)
class ScoredMetric:
    """What the scorer needs from one metric result: its label, groups and flags."""

    name: str
    classification: Classification
    groups: tuple[str, ...]
    critical: bool
    muted: bool

    def __init__(self, name: str, classification: Classification | str, groups: Iterable[str],
                 critical: bool = False, muted: bool = False) -> None:
        if isinstance(groups, str):  # a bare string would otherwise become one group per letter
            raise ConfigError(f"groups of metric {name!r} must be a list of group names, got {groups!r}")
        group_tuple = tuple(groups)
        for g in group_tuple:
            if not isinstance(g, str):
                raise ConfigError(f"groups of metric {name!r} must be strings, got {g!r}")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "classification", _as_classification(classification))
        object.__setattr__(self, "groups", group_tuple)
        object.__setattr__(self, "critical", bool(critical))
        object.__setattr__(self, "muted", bool(muted))


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """Summary score (rounded half-up to 2 decimals), per-group scores, and why it is 0 if forced.

    `group_scores` holds the reported group scores (a "no data" group reports 0);
    `no_data_groups` names those groups, which count as 100 in the summary.
    """

    summary_score: float
    group_scores: Mapping[str, float]
    reason: str | None = None
    no_data_groups: tuple[str, ...] = field(default=())
    counted_results: int = 0


def round_half_up(value: float, places: int = 2) -> float:
    """commons-math Precision.round: BigDecimal(Double.toString(x)).setScale(places, HALF_UP)."""
    if not math.isfinite(value):
        return value
    quantum = Decimal(1).scaleb(-places)
    return float(Decimal(repr(value)).quantize(quantum, rounding=ROUND_HALF_UP))


def _group_scores(results: Sequence[ScoredMetric]) -> tuple[dict[str, float], list[str]]:
    """100 x Pass / (Pass + High + Low + NodataFailMetric) per group, in order of appearance."""
    counts: dict[str, dict[Classification, int]] = {}
    for r in results:
        for g in dict.fromkeys(r.groups):  # a metric listing a group twice counts once there
            per = counts.setdefault(g, {})
            per[r.classification] = per.get(r.classification, 0) + 1
    scores: dict[str, float] = {}
    no_data: list[str] = []
    for g, per in counts.items():
        total = sum(per.get(label, 0) for label in _COUNTED)
        if total == 0:
            scores[g] = 0.0
            no_data.append(g)
        else:
            scores[g] = per.get(Classification.PASS, 0) / total * 100
    return scores, no_data


def score(results: Iterable[ScoredMetric], group_weights: Mapping[str, float] | None) -> ScoreResult:
    """Kayenta's WeightedSumScorer over the non-muted results.

    Order of rules: critical override, then >= 50% Nodata, then the weighted sum. Groups
    without a configured weight share (100 - sum of configured weights) equally. With no
    results at all the score is 0 (Kayenta also yields 0 there, silently); the reason says so.
    """
    weights: dict[str, float] = {}
    for g, w in (group_weights or {}).items():
        if isinstance(w, bool) or not isinstance(w, Real) or not math.isfinite(float(w)):
            raise ConfigError(f"group weight for {g!r} must be a finite number, got {w!r}")
        weights[g] = float(w)
    items = list(results)
    for r in items:
        if not isinstance(r, ScoredMetric):
            raise ConfigError(f"score() takes ScoredMetric objects, got {type(r).__name__}")
    active = [r for r in items if not r.muted]
    scores, no_data = _group_scores(active)
    frozen_scores = MappingProxyType(dict(scores))

    def forced_zero(reason: str) -> ScoreResult:
        return ScoreResult(summary_score=0.0, group_scores=frozen_scores, reason=reason,
                           no_data_groups=tuple(no_data), counted_results=len(active))

    if not active:
        what = "every metric result is muted" if items else "there are no metric results"
        return forced_zero(f"canary failed: {what}, so there is nothing to score")
    failing = [r for r in active if r.critical and r.classification is not Classification.PASS]
    if failing:
        first = failing[0]
        return forced_zero(f"canary failed: critical metric {first.name!r} was classified "
                           f"{first.classification.value}")
    nodata = sum(1 for r in active if r.classification is Classification.NODATA)
    if nodata / len(active) * 100 >= NODATA_THRESHOLD_PERCENT:
        return forced_zero(f"canary failed: {nodata} of {len(active)} metrics returned no data "
                           f"({NODATA_THRESHOLD_PERCENT:g}% or more)")

    unweighted = [g for g in scores if g not in weights]
    shared = (100.0 - sum(weights.values())) / len(unweighted) if unweighted else 0.0
    total = 0.0
    for g, group_score in scores.items():
        effective = 100.0 if g in no_data else group_score
        total += effective * (weights.get(g, shared) / 100)
    return ScoreResult(summary_score=round_half_up(total, 2), group_scores=frozen_scores,
                       no_data_groups=tuple(no_data), counted_results=len(active))


def classify_score(score: float, *, pass_threshold: float | None,
                   marginal_threshold: float | None) -> Verdict:
    """ThresholdScoreClassifier: score >= pass -> Pass; else score >= marginal -> Marginal; else Fail.

    Kayenta always has both thresholds. A missing one is read the way `passes` reads it:
    no thresholds -> Pass; no pass threshold -> Pass at or above marginal, else Fail; no
    marginal threshold -> no Marginal band. Every comparison is made by `passes`, the one
    place where a score meets a threshold (canary.analysis.decision builds on both).
    """
    for name, value in (("score", score), ("pass_threshold", pass_threshold),
                        ("marginal_threshold", marginal_threshold)):
        if value is None and name != "score":
            continue
        if isinstance(value, bool) or not isinstance(value, Real):
            raise ConfigError(f"{name} must be a number, got {value!r}")

    def at_least(bound: float) -> bool:
        return passes(score, pass_threshold=bound, marginal_threshold=None)

    if pass_threshold is None:
        return Verdict.PASS if marginal_threshold is None or at_least(marginal_threshold) else Verdict.FAIL
    if at_least(pass_threshold):
        return Verdict.PASS
    if marginal_threshold is not None and at_least(marginal_threshold):
        return Verdict.MARGINAL
    return Verdict.FAIL


def passes(final_score: float | None, *, pass_threshold: float | None,
           marginal_threshold: float | None) -> bool:
    """The standalone module's final decision on the last score (spec 7 step 6).

    Note the asymmetry: a score *equal* to the marginal threshold fails, one equal to the
    pass threshold passes. No score at all is a failure ("no successful canary judgements").
    """
    if final_score is None:
        return False
    if pass_threshold is None and marginal_threshold is None:
        return True
    if marginal_threshold is not None and final_score <= marginal_threshold:
        return False
    if pass_threshold is None:
        return True
    return not final_score < pass_threshold
