"""Series metrics (Kayenta's range-query points) in the interval judge: NetflixACAJudge's
`judge` step classifies each control/experiment pair with the metric's own settings
(confidence 0.98 and tolerance 0.25 are hard-coded in Kayenta), or checks a metric with a
`thresholdRange` (our Flagger-style extension) against its absolute bounds."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import numpy as np

from canary.config import CanaryConfig, MetricConfig
from canary.errors import ConfigError
from canary.judge.bounds import check_bounds
from canary.judge.classify import MetricResult, classify_metric
from canary.values.series import MetricPair

__all__ = ["KAYENTA_CONFIDENCE", "KAYENTA_TOLERANCE", "PairLike", "SeriesPair", "classify_series", "group_pairs"]

#: Kayenta's NetflixACAJudge ignores configured values and uses these (judge spec, section 3).
KAYENTA_CONFIDENCE = 0.98
KAYENTA_TOLERANCE = 0.25

#: One side's points.
Values = Sequence[float] | np.ndarray
#: (start, step in seconds) of a pair's points, when known.
Grid = tuple[datetime, int] | None
#: One judged series: its tags, control and experiment points, and their grid.
Grouped = tuple[Mapping[str, str], Values, Values, Grid]


class PairLike(Protocol):
    """What the judge needs of one metric pair (canary.values.series.MetricPair fits).

    Read-only members (properties), so that frozen dataclasses fit."""

    @property
    def name(self) -> str:
        """The metric's name in the canary config."""
        ...

    @property
    def tags(self) -> Mapping[str, str]:
        """The series' tags (groupByFields)."""
        ...

    @property
    def control_values(self) -> Values:
        """The baseline's points."""
        ...

    @property
    def experiment_values(self) -> Values:
        """The canary's points."""
        ...


@dataclass(frozen=True, kw_only=True)
class SeriesPair:
    """A plain pair of value arrays, for callers that do not go through a metric source."""

    name: str
    control_values: Values
    experiment_values: Values
    tags: Mapping[str, str] = field(default_factory=dict)


def classify_series(metric: MetricConfig, control: Values, experiment: Values,
                    rng: np.random.Generator) -> MetricResult:  # fmt: skip
    """One pair of a series metric: Kayenta's classifier, or the absolute bounds check."""
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


def group_pairs(
    config: CanaryConfig, pairs: Iterable[PairLike] | Mapping[str, tuple[Values, Values]]
) -> dict[str, list[Grouped]]:
    """The pairs by metric name (several per metric with groupByFields), each checked to
    name a metric of `config`; a mapping `name -> (control, experiment)` is one pair each.

    Raises:
        ConfigError: a pair of an unknown metric, or a mapping value that is no pair.
    """
    known = {m.name for m in config.metrics}
    grouped: dict[str, list[Grouped]] = {}
    if isinstance(pairs, Mapping):
        items: list[tuple[str, Mapping[str, str], Values, Values, Grid]] = []
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


def _grid(pair: PairLike) -> Grid:
    """The experiment series' start and step, for pairs that carry them (MetricPair)."""
    if not isinstance(pair, MetricPair):
        return None
    start, step = pair.experiment.start, pair.experiment.step
    return (start, int(step)) if start is not None and step else None
