"""Time series of one side, and the control/experiment pairs the Kayenta judge takes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from types import MappingProxyType

import numpy as np

from canary.values.scope import epoch_millis

__all__ = ["MetricPair", "Series"]


def _frozen_values(values: Iterable[float]) -> np.ndarray:
    array = np.array(values if isinstance(values, np.ndarray) else list(values), dtype=float)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, kw_only=True, eq=False)
class Series:
    """One time series of one side. ``step`` is whole seconds; ``values`` is read-only float64.

    ``end`` follows Kayenta: start + len(values) * step for answered series, the scope's end
    for the empty placeholder. ``metric_id`` is the dropped ``__name__`` label, if any.
    """

    tags: Mapping[str, str]
    values: np.ndarray
    start: datetime
    end: datetime
    step: int
    query: str
    metric_id: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", MappingProxyType(dict(self.tags)))
        object.__setattr__(self, "values", _frozen_values(self.values))

    @property
    def expected_points(self) -> int:
        """Kayenta's ``MetricSet.expectedDataPoints``: (end - start) / step in whole ms."""
        if self.step == 0:
            return 0
        return (epoch_millis(self.end) - epoch_millis(self.start)) // (self.step * 1000)

    def padded(self, count: int) -> Series:
        """This series with NaN appended up to ``count`` values (never truncated)."""
        missing = count - len(self.values)
        if missing <= 0:
            return self
        return replace(self, values=np.concatenate([self.values, np.full(missing, np.nan)]))


@dataclass(frozen=True, kw_only=True, eq=False)
class MetricPair:
    """Control and experiment series of one metric and one tag set, as the judge gets them."""

    name: str
    tags: Mapping[str, str]
    control: Series
    experiment: Series

    @property
    def control_values(self) -> np.ndarray:
        """The control (baseline) series' values."""
        return self.control.values

    @property
    def experiment_values(self) -> np.ndarray:
        """The experiment (canary) series' values."""
        return self.experiment.values
