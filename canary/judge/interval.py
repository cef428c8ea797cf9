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

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Protocol, TypedDict

import numpy as np

from canary.config import CanaryConfig, MetricConfig, PrometheusQuery, Thresholds
from canary.errors import ConfigError
from canary.judge.bounds import check_bounds
from canary.judge.classify import Classification, MetricResult, classify_metric
from canary.judge.guards import GuardResult
from canary.judge.score import ScoredMetric, ScoreResult, Verdict, classify_score, score
from canary.judge.sequential import (
    CountsResult,
    HistogramResult,
    compare_counts,
    compare_histograms,
    format_value,
)

#: Defaults of the sequential judge's per-metric settings (our extension of Kayenta's format).
DEFAULT_ALPHA = 0.01
DEFAULT_TOLERANCE = 0.0

#: Kayenta's NetflixACAJudge ignores configured values and uses these (judge spec, section 3).
KAYENTA_CONFIDENCE = 0.98
KAYENTA_TOLERANCE = 0.25


class PairLike(Protocol):
    """What the judge needs of one metric pair (canary.values.series.MetricPair fits).

    Read-only members (properties), so that frozen dataclasses fit."""

    @property
    def name(self) -> str: ...

    @property
    def tags(self) -> Mapping[str, str]: ...

    @property
    def control_values(self) -> Any: ...

    @property
    def experiment_values(self) -> Any: ...


class CountsLike(Protocol):
    """What the judge needs of one count metric (canary.values.counts.CountsPair fits):
    `control`/`experiment` have `events`/`total` (ratio) or `upper_bounds`/`buckets`.
    Read-only members (properties), so that frozen dataclasses fit."""

    @property
    def name(self) -> str: ...

    @property
    def control(self) -> Any: ...

    @property
    def experiment(self) -> Any: ...

    @property
    def missing(self) -> tuple[str, ...]: ...


AnyResult = MetricResult | CountsResult | HistogramResult


class _SequentialSettings(TypedDict):
    """The keyword arguments compare_counts and compare_histograms share."""

    direction: str
    alpha: float
    tolerance: float
    split: float


@dataclass(frozen=True, kw_only=True)
class SeriesPair:
    """A plain pair of value arrays, for callers that do not go through a metric source."""

    name: str
    control_values: Any
    experiment_values: Any
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class MetricJudgement:
    """One classified pair and the config it was judged with.

    `result` is a MetricResult (series metrics), a CountsResult (ratio) or a
    HistogramResult; `critical` says whether it tripped the metric's critical rule.
    """

    metric: MetricConfig
    tags: Mapping[str, str]
    result: AnyResult
    #: series metrics: the judged points (control, experiment) and their time grid
    points: tuple[Any, Any] | None = None
    start: Any = None
    step: int | None = None

    @property
    def name(self) -> str:
        return self.metric.name

    @property
    def classification(self) -> Classification:
        return self.result.classification

    @property
    def critical(self) -> bool:
        """True when this result trips the metric's critical rule (never for a muted one)."""
        r = self.result
        if self.metric.canary.muted:
            return False
        if isinstance(r, MetricResult):
            return bool(r.critical)
        failed = r.classification in (Classification.HIGH, Classification.LOW, Classification.NODATA)
        return bool(self.metric.canary.critical and failed)

    @property
    def decided(self) -> bool:
        """Sequential results only: regression proven, or proven within tolerance."""
        return bool(getattr(self.result, "decided", False))

    def row(self) -> dict[str, Any]:
        """A flat, JSON-friendly row for a report table."""
        r = self.result
        out: dict[str, Any] = {
            "metric": self.metric.name,
            "tags": ",".join(f"{k}={v}" for k, v in sorted(self.tags.items())),
            "groups": ",".join(self.metric.groups),
            "kind": self.metric.evidence,
            "classification": str(r.classification.value),
            "critical": self.critical,
            "muted": bool(self.metric.canary.muted),
        }
        if isinstance(r, MetricResult):
            interval = r.interval
            out |= {
                "decided": None,
                "baseline_mean": _num(r.control.mean),
                "canary_mean": _num(r.experiment.mean),
                "baseline_count": int(r.control.count),
                "canary_count": int(r.experiment.count),
                "ci_lower": _num(interval.lower) if interval is not None else None,
                "ci_upper": _num(interval.upper) if interval is not None else None,
                "estimate": _num(interval.estimate) if interval is not None else None,
                "effect_size": _num(r.effect_size),
                "deviation": _num(r.deviation),
            }
        elif isinstance(r, CountsResult):
            out |= {
                "decided": r.decided,
                "baseline_mean": _num(r.control_rate),
                "canary_mean": _num(r.experiment_rate),
                "baseline_count": int(r.control_total),
                "canary_count": int(r.experiment_total),
                "ci_lower": _num(r.ratio_lower),
                "ci_upper": _num(r.ratio_upper),
                "estimate": _num(r.ratio),
                "effect_size": _num(r.evidence),
                "deviation": _num(r.ratio),
            }
        else:
            p99 = (r.control_quantiles[-1], r.experiment_quantiles[-1])
            out |= {
                "decided": r.decided,
                "baseline_mean": _num(p99[0].estimate),
                "canary_mean": _num(p99[1].estimate),
                "baseline_count": int(r.control_total),
                "canary_count": int(r.experiment_total),
                "ci_lower": _num(p99[1].lower),
                "ci_upper": _num(p99[1].upper),
                "estimate": _num(p99[1].estimate),
                "effect_size": _num(r.evidence),
                "deviation": None,
            }
        out["reason"] = r.reason
        return out


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
        return tuple(g for g in self.guards if not g.ok)

    @property
    def summary_score(self) -> float:
        return self.scores.summary_score

    @property
    def group_scores(self) -> Mapping[str, float]:
        return self.scores.group_scores

    def rows(self) -> list[dict[str, Any]]:
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
    pairs: Iterable[PairLike] | Mapping[str, tuple[Any, Any]],
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
    """
    if not isinstance(config, CanaryConfig):
        raise ConfigError(f"judge: config must be a CanaryConfig, got {type(config).__name__}")
    if split is None and history:
        raise ConfigError("judge: split=None (the observed share of requests) is valid for one "
                          "look only; judge a release's looks with its traffic split")  # fmt: skip
    limits = _thresholds(thresholds)
    by_name = _group_pairs(config, pairs)
    by_counts = _group_counts(config, counts)
    earlier = [_group_counts(config, look) for look in history]
    generator = rng if rng is not None else np.random.default_rng(0)

    judged: list[MetricJudgement] = []
    for metric in config.metrics:
        if metric.evidence != "series":
            past = [look[metric.name] for look in earlier if metric.name in look]
            result: AnyResult = _compare(metric, by_counts.get(metric.name), split, past, planned_looks)
            judged.append(MetricJudgement(metric=metric, tags=MappingProxyType({}), result=result))
            continue
        for tags, control, experiment, grid in by_name.get(metric.name) or [({}, [], [], None)]:
            result = _classify(metric, control, experiment, generator)
            start, step = grid if grid is not None else (None, None)
            judged.append(MetricJudgement(
                metric=metric, tags=MappingProxyType(dict(tags)), result=result,
                points=(np.asarray(control, dtype=float), np.asarray(experiment, dtype=float)),
                start=start, step=step))  # fmt: skip

    scored = [
        ScoredMetric(
            m.metric.name,
            m.result.classification,
            m.metric.groups,
            critical=m.critical or bool(getattr(m.result, "critical", False)),
            muted=m.metric.canary.muted,
        )
        for m in judged
    ]
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


def _compare(metric: MetricConfig, counts: CountsLike | None, split: float | None,
             past: Sequence[CountsLike] = (),
             planned_looks: int | None = None) -> CountsResult | HistogramResult:  # fmt: skip
    """A count metric's sequential test; no counts, or a side without series, is Nodata.
    `past`: the metric's counts at the release's earlier looks, oldest first."""
    cfg = metric.canary
    missing = ("baseline", "canary") if counts is None else tuple(counts.missing)
    if split is None:
        split = 0.5
        if counts is not None and not missing:
            n_c, n_e = _total(counts.control), _total(counts.experiment)
            split = n_e / (n_c + n_e) if n_c > 0 and n_e > 0 else 0.5
    settings: _SequentialSettings = {
        "direction": cfg.direction,
        "alpha": cfg.alpha if cfg.alpha is not None else DEFAULT_ALPHA,
        "tolerance": cfg.tolerance if cfg.tolerance is not None else DEFAULT_TOLERANCE,
        "split": split,
    }
    result: CountsResult | HistogramResult
    if metric.evidence == "ratio":
        if missing:
            result = compare_counts(0, 0, 0, 0, **settings)
        else:
            assert counts is not None
            c, e = counts.control, counts.experiment
            result = compare_counts(c.events, c.total, e.events, e.total, safe_rate=cfg.safe_rate,
                                    **settings)  # fmt: skip
    else:
        histogram = metric.query.histogram if isinstance(metric.query, PrometheusQuery) else None
        unit = histogram.unit if histogram is not None else ""
        mode = cfg.tolerance_on or "quantile"
        if missing:
            result = compare_histograms([0, 0], [0, 0], [1.0, math.inf], unit=unit, tolerance_on=mode,
                                        planned_looks=planned_looks, **settings)  # fmt: skip
        else:
            assert counts is not None
            bounds = _common_bounds(metric.name, counts.control.upper_bounds, counts.experiment.upper_bounds)
            result = compare_histograms(counts.control.buckets, counts.experiment.buckets, bounds,
                                        unit=unit, tolerance_on=mode, planned_looks=planned_looks,
                                        history=_histogram_history(past, bounds),
                                        **settings)  # fmt: skip
    if missing:
        sides = " and ".join({"control": "baseline", "experiment": "canary"}.get(m, m) for m in missing)
        result = replace(result, reason=f"no series for the {sides}: the query matches nothing "
                         "(does the app export it, and does the scope label match?)")  # fmt: skip
    return result


def _histogram_history(past: Sequence[CountsLike], bounds: Sequence[float]) -> list[tuple[Any, Any]]:
    """The earlier looks' (control, experiment) buckets of one histogram metric: looks
    where a side had no series or no requests, or other buckets than now, are left out."""
    looks = []
    for look in past:
        if look.missing:
            continue
        c, e = look.control, look.experiment
        if not (hasattr(c, "buckets") and hasattr(e, "buckets")):
            continue
        if tuple(c.upper_bounds) != tuple(bounds) or tuple(e.upper_bounds) != tuple(bounds):
            continue
        if _total(c) <= 0 or _total(e) <= 0:
            continue
        looks.append((tuple(c.buckets), tuple(e.buckets)))
    return looks


def _total(side: Any) -> float:
    return float(side.total if hasattr(side, "events") else (side.buckets[-1] if side.buckets else 0.0))


def _common_bounds(name: str, control: Sequence[float], experiment: Sequence[float]) -> Sequence[float]:
    if tuple(control) != tuple(experiment):
        raise ConfigError(
            f"metric {name!r}: baseline and canary histograms have different buckets "
            f"({[format_value(b, '') for b in control]} vs "
            f"{[format_value(b, '') for b in experiment]}); both tracks must run builds that "
            "export the same buckets for a bucket-wise comparison"
        )
    return control


def _group_counts(config: CanaryConfig, counts: Iterable[CountsLike]) -> dict[str, CountsLike]:
    kinds = {m.name: m.evidence for m in config.metrics}
    out: dict[str, CountsLike] = {}
    for c in counts:
        if kinds.get(c.name) in (None, "series"):
            raise ConfigError(
                f"judge: counts given for {c.name!r}, which canary config {config.name!r} does not "
                "define as a ratio or histogram metric"
            )
        out[c.name] = c
    return out


def _classify(
    metric: MetricConfig, control: Any, experiment: Any, rng: np.random.Generator
) -> MetricResult:
    cfg = metric.canary
    if cfg.threshold_range is not None:
        return check_bounds(
            control,
            experiment,
            minimum=cfg.threshold_range.min,
            maximum=cfg.threshold_range.max,
            critical=cfg.critical,
            must_have_data=cfg.must_have_data,
            nan_strategy=cfg.nan_strategy,
        )
    effect = cfg.effect_size
    return classify_metric(
        control,
        experiment,
        direction=cfg.direction,
        nan_strategy=cfg.nan_strategy,
        critical=cfg.critical,
        must_have_data=cfg.must_have_data,
        confidence_level=KAYENTA_CONFIDENCE,
        tolerance=KAYENTA_TOLERANCE,
        effect_size_measure=effect.measure,
        allowed_increase=effect.allowed_increase,
        allowed_decrease=effect.allowed_decrease,
        critical_increase=effect.critical_increase,
        critical_decrease=effect.critical_decrease,
        outlier_strategy=cfg.outliers.strategy,
        outlier_factor=cfg.outliers.outlier_factor,
        rng=rng,
    )


Grid = tuple[Any, int] | None  # (start, step in seconds) of a pair's points, when known


def _group_pairs(
    config: CanaryConfig, pairs: Iterable[PairLike] | Mapping[str, tuple[Any, Any]]
) -> dict[str, list[tuple[Mapping[str, str], Any, Any, Grid]]]:
    known = {m.name for m in config.metrics}
    grouped: dict[str, list[tuple[Mapping[str, str], Any, Any, Grid]]] = {}
    if isinstance(pairs, Mapping):
        items: list[tuple[str, Mapping[str, str], Any, Any, Grid]] = []
        for name, value in pairs.items():
            if not (isinstance(value, Sequence) and len(value) == 2):
                raise ConfigError(
                    f"judge: pairs[{name!r}] must be a (control, experiment) tuple of value arrays"
                )
            items.append((name, {}, value[0], value[1], None))
    else:
        items = [(p.name, p.tags, p.control_values, p.experiment_values, _grid(p)) for p in pairs]
    for name, tags, control, experiment, grid in items:
        if name not in known:
            raise ConfigError(
                f"judge: pairs hold metric {name!r}, which canary config {config.name!r} does not "
                f"define (its metrics: {', '.join(sorted(known)) or 'none'})"
            )
        grouped.setdefault(name, []).append((tags, control, experiment, grid))
    return grouped


def _grid(pair: Any) -> Grid:
    """The experiment series' start and step, for pairs that carry them (MetricPair)."""
    series = getattr(pair, "experiment", None)
    start, step = getattr(series, "start", None), getattr(series, "step", None)
    return (start, int(step)) if start is not None and step else None


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


def _num(value: float | None) -> float | None:
    """JSON has no NaN or infinity: report non-finite numbers as None (the reason says why)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
