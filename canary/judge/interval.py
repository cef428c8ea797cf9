"""Judge one analysis interval: every metric of a canary config, scored and given a verdict.

A table of classifiers, chosen by each metric's config, with one result shape for reports:

* series metrics (Kayenta's range-query points): NetflixACAJudge's `judge` step, classify
  each control/experiment pair with the metric's own settings (confidence 0.98 and
  tolerance 0.25 are hard-coded in Kayenta);
* count metrics (ratio, histogram; the sequential judge, `judge.name: sequential-v1`):
  canary.judge.sequential on the counts since the analysis began, with the metric's
  direction, alpha and tolerance (and toleranceOn, safeRate); histogram metrics also get
  the earlier looks' counts of the release, on which their e-processes learn to bet.

Then score the labels by group and map the score to Pass / Marginal / Fail with the
*request's* thresholds (the config's `classifier.scoreThresholds` are never read, as in
Kayenta).

A metric with a `thresholdRange` (our Flagger-style extension) is checked against its
absolute bounds instead (canary.judge.bounds).

A metric of the config that has no pair at all is judged on empty data, so it becomes
`Nodata` (or `NodataFailMetric`) instead of silently disappearing: missing data can only
lower the score, never raise it (fail closed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

import numpy as np

from canary.config import CanaryConfig, MetricConfig, Thresholds
from canary.errors import ConfigError
from canary.judge.classify import Classification
from canary.judge.count_metrics import (
    DEFAULT_ALPHA,
    DEFAULT_TOLERANCE,
    CountsLike,
    compare_metric,
    group_counts,
)
from canary.judge.guards import GuardResult
from canary.judge.result import JudgeResult, ResultRow
from canary.judge.score import ScoredMetric, ScoreResult, Verdict, classify_score, score
from canary.judge.series_metrics import (
    KAYENTA_CONFIDENCE,
    KAYENTA_TOLERANCE,
    PairLike,
    SeriesPair,
    Values,
    classify_series,
    group_pairs,
)

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_TOLERANCE",
    "KAYENTA_CONFIDENCE",
    "KAYENTA_TOLERANCE",
    "CountsLike",
    "IntervalJudgement",
    "MetricJudgement",
    "MetricRow",
    "PairLike",
    "SeriesPair",
    "judge",
]


class MetricRow(ResultRow):
    """One judged pair in a report table: the metric, its flags, the result's numbers
    (ResultRow) and the reason."""

    metric: str
    tags: str
    groups: str
    kind: str
    classification: str
    critical: bool
    muted: bool
    reason: str


@dataclass(frozen=True, kw_only=True)
class MetricJudgement:
    """One classified pair and the config it was judged with.

    `result` is any test's result (canary.judge.result.JudgeResult: a MetricResult for
    series metrics, a CountsResult for ratio ones, a HistogramResult for histograms).
    """

    metric: MetricConfig
    tags: Mapping[str, str]
    result: JudgeResult
    #: series metrics: the judged points (control, experiment) and their time grid
    points: tuple[np.ndarray, np.ndarray] | None = None
    start: datetime | None = None
    step: int | None = None

    @property
    def name(self) -> str:
        """The metric's name."""
        return self.metric.name

    @property
    def classification(self) -> Classification:
        """The result's label."""
        return self.result.classification

    @property
    def critical(self) -> bool:
        """True when this result trips the metric's critical rule (never for a muted one)."""
        return not self.metric.canary.muted and self.result.critical

    @property
    def decided(self) -> bool:
        """Sequential results only: regression proven, or proven within tolerance."""
        return bool(self.result.decided)

    def row(self) -> MetricRow:
        """A flat, JSON-friendly row for a report table."""
        r = self.result
        return {
            "metric": self.metric.name,
            "tags": ",".join(f"{k}={v}" for k, v in sorted(self.tags.items())),
            "groups": ",".join(self.metric.groups),
            "kind": self.metric.evidence,
            "classification": str(r.classification.value),
            "critical": self.critical,
            "muted": bool(self.metric.canary.muted),
            **r.row(),
            "reason": r.reason,
        }


@dataclass(frozen=True, kw_only=True)
class IntervalJudgement:
    """The judge's answer for one interval: per-metric results, scores and the verdict."""

    metrics: tuple[MetricJudgement, ...]
    scores: ScoreResult
    verdict: Verdict
    thresholds: Thresholds | None
    #: True when the sequential judge ran (count metrics, anytime-valid)
    sequential: bool = False
    #: what the guards said at this look (traffic, split, readiness)
    guards: tuple[GuardResult, ...] = ()

    @property
    def failed_guards(self) -> tuple[GuardResult, ...]:
        """The guards that failed at this look."""
        return tuple(g for g in self.guards if not g.ok)

    @property
    def summary_score(self) -> float:
        """Kayenta's weighted score of the interval (0-100)."""
        return self.scores.summary_score

    @property
    def group_scores(self) -> Mapping[str, float]:
        """Each group's score (0-100)."""
        return self.scores.group_scores

    def rows(self) -> list[MetricRow]:
        """One row per judged pair, in config order: what a report table shows."""
        return [m.row() for m in self.metrics]

    def counts(self) -> Mapping[str, int]:
        """How many pairs got each classification (all labels present, zeros included)."""
        out = {c.value: 0 for c in Classification}
        for m in self.metrics:
            out[m.result.classification.value] += 1
        return MappingProxyType(out)



def judge(
    config: CanaryConfig,
    pairs: Iterable[PairLike] | Mapping[str, tuple[Values, Values]],
    *,
    thresholds: Thresholds | Mapping[str, float | None] | None,
    counts: Iterable[CountsLike] = (),
    guards: Iterable[GuardResult] = (),
    split: float | None = 0.5,
    rng: np.random.Generator | None = None,
    history: Sequence[Iterable[CountsLike]] = (),
    planned_looks: int | None = None,
) -> IntervalJudgement:
    """Classify every metric of `config`, score them and give the verdict.

    `pairs` holds one entry per returned series (several per metric with groupByFields);
    a mapping `name -> (control, experiment)` is accepted for the one-series case.
    `counts` holds the count metrics' counts since the analysis began; a count metric
    without counts is judged Nodata. `guards` are attached to the result as they are.
    `split` is the canary's share of the pair's traffic (equal weights: 1/2); None takes
    each count metric's observed share of requests, which is valid for one look only
    (two windows judged once, as re-analysis does; docs/judge.md).

    `history` holds the release's earlier looks' `counts`, oldest first (empty: this is
    the first look, or a single look judged on its own, as re-analysis does); each
    histogram metric is judged with its own counts at those looks, matched by name (a look
    where the metric had no series or no requests is left out). `planned_looks` is the
    release's number of looks: it sets which bucket bounds a decided Pass must cover.

    Raises:
        ConfigError: on arguments that do not fit the config (unknown metrics, bad
            thresholds, split=None with a history).
    """
    if not isinstance(config, CanaryConfig):
        raise ConfigError(f"judge: config must be a CanaryConfig, got {type(config).__name__}")
    if split is None and history:
        raise ConfigError("judge: split=None (the observed share of requests) is valid for one "
                          "look only; judge a release's looks with its traffic split")  # fmt: skip
    limits = _thresholds(thresholds)
    judged = _judge_metrics(config, pairs, counts, split, rng, history, planned_looks)
    scored = [ScoredMetric(m.metric.name, m.result.classification, m.metric.groups, critical=m.critical,
                           muted=m.metric.canary.muted) for m in judged]  # fmt: skip
    scores = score(scored, config.classifier.group_weights)
    verdict = classify_score(
        scores.summary_score,
        pass_threshold=limits.pass_ if limits else None,
        marginal_threshold=limits.marginal if limits else None,
    )
    return IntervalJudgement(
        metrics=tuple(judged), scores=scores, verdict=verdict, thresholds=limits,
        sequential=config.sequential, guards=tuple(guards),
    )  # fmt: skip


def _judge_metrics(config: CanaryConfig, pairs: Iterable[PairLike] | Mapping[str, tuple[Values, Values]],
                   counts: Iterable[CountsLike], split: float | None, rng: np.random.Generator | None,
                   history: Sequence[Iterable[CountsLike]],
                   planned_looks: int | None) -> list[MetricJudgement]:  # fmt: skip
    """Every metric of the config judged, in config order (a series metric once per pair)."""
    by_name = group_pairs(config, pairs)
    by_counts = group_counts(config, counts)
    earlier = [group_counts(config, look) for look in history]
    generator = rng if rng is not None else np.random.default_rng(0)
    judged: list[MetricJudgement] = []
    for metric in config.metrics:
        if metric.evidence != "series":
            past = [look[metric.name] for look in earlier if metric.name in look]
            result = compare_metric(metric, by_counts.get(metric.name), split, past, planned_looks)
            judged.append(MetricJudgement(metric=metric, tags=MappingProxyType({}), result=result))
            continue
        for tags, control, experiment, grid in by_name.get(metric.name) or [({}, [], [], None)]:
            start, step = grid if grid is not None else (None, None)
            judged.append(MetricJudgement(
                metric=metric, tags=MappingProxyType(dict(tags)),
                result=classify_series(metric, control, experiment, generator),
                points=(np.asarray(control, dtype=float), np.asarray(experiment, dtype=float)),
                start=start, step=step))  # fmt: skip
    return judged


def _thresholds(value: Thresholds | Mapping[str, float | None] | None) -> Thresholds | None:
    if value is None or isinstance(value, Thresholds):
        return value
    if isinstance(value, Mapping):
        try:
            return Thresholds.model_validate(dict(value))
        except ConfigError as exc:
            raise ConfigError(f"judge: thresholds: {exc}") from exc
    raise ConfigError(
        "judge: thresholds must be a Thresholds, a mapping {'pass': .., 'marginal': ..} or None, "
        f"got {type(value).__name__}"
    )

