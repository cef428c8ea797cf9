"""Range-query answers as series, and the control/experiment mixer. Pure (numpy only).

Two ways to turn a Prometheus matrix into values, chosen by ``align``:

* ``"kayenta"`` (default) packs samples exactly like Kayenta's ``PrometheusResponseConverter``:
  values in answer order, gaps (steps without data) simply disappear, start = first sample,
  step = distance of the first two samples in whole seconds (0 with one sample).
* ``"grid"`` places each sample on the scope's evaluation grid (start, start+step, ... <= end)
  and leaves NaN where Prometheus returned nothing, so index i is the same instant on every
  series of that scope.

An empty answer gives one placeholder series without tags (Kayenta: no values, start/end/step
from the scope; grid: all NaN). The mixer (Kayenta's ``MetricSetMixerService``) pairs control
and experiment series by tag map and pads each side with NaN up to (end - start) / step points.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Literal, TypedDict

import numpy as np

from canary.errors import ConfigError, MetricsError
from canary.values.scope import MetricScope, epoch_millis
from canary.values.series import MetricPair, Series

Align = Literal["kayenta", "grid"]
#: One sample of a range query's answer as Prometheus sends it: [unix seconds, "value"].
Sample = Sequence[float | str]


class MatrixItem(TypedDict, total=False):
    """One series of a Prometheus ``matrix`` answer (decoded JSON; its readers check it)."""

    metric: dict[str, str]
    values: list[Sample]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _from_millis(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def parse_sample(text: float | str | None) -> float | None:
    """A sample value string as Prometheus sends it: decimals, ``NaN``, ``+Inf``, ``-Inf``.

    Args:
        text: The value (None: no value).

    Returns:
        The value as a float, None for None.

    Raises:
        MetricsError: The value is not a number.
    """
    if text is None:
        return None
    if text == "+Inf":
        return math.inf
    if text == "-Inf":
        return -math.inf
    if text == "NaN":
        return math.nan
    try:
        return float(text)
    except (TypeError, ValueError):
        raise MetricsError(f"Prometheus returned a non-numeric sample value {text!r}") from None


def _timestamp_ms(raw: float | str) -> int:
    # Kayenta: (long) (Double.parseDouble(ts) * 1000), i.e. truncation of the double product.
    return int(float(raw) * 1000)


def to_series(
    result: Sequence[MatrixItem], *, query: str, scope: MetricScope, align: Align = "kayenta"
) -> list[Series]:
    """Convert ``data.result`` of a range query (a matrix) into series, in answer order.

    Args:
        result: The answer's series.
        query: The query text (kept on each series).
        scope: The scope queried (its window and step).
        align: How samples become values (see the module's docstring).

    Returns:
        One series per answer item; one placeholder series for an empty answer.
    """
    if align not in ("kayenta", "grid"):
        raise ValueError(f"align must be 'kayenta' or 'grid', got {align!r}")
    if not result:
        return [_placeholder(query, scope, align)]
    convert = _packed if align == "kayenta" else _gridded
    out = []
    for item in result:
        labels = dict(item.get("metric") or {})
        metric_id = labels.pop("__name__", None)
        out.append(convert(labels, metric_id, item.get("values") or [], query, scope))
    return out


def _placeholder(query: str, scope: MetricScope, align: Align) -> Series:
    if align == "grid":
        return _grid_series({}, None, np.full(scope.points, np.nan), query, scope)
    return Series(
        tags={},
        values=np.array([], dtype=float),
        start=_from_millis(epoch_millis(scope.start)),
        end=_from_millis(epoch_millis(scope.end)),
        step=scope.step,
        query=query,
    )


def _packed(
    labels: dict[str, str],
    metric_id: str | None,
    samples: Sequence[Sample],
    query: str,
    scope: MetricScope,
) -> Series:
    if not samples:  # Prometheus never sends this; keep the scope's window.
        return replace(_placeholder(query, scope, "kayenta"), tags=labels, metric_id=metric_id)
    values = [v for v in (parse_sample(s[1]) for s in samples) if v is not None]
    start_ms = _timestamp_ms(samples[0][0])
    step = (_timestamp_ms(samples[1][0]) - start_ms) // 1000 if len(samples) > 1 else 0
    return Series(
        tags=labels,
        values=np.array(values, dtype=float),
        start=_from_millis(start_ms),
        end=_from_millis(start_ms + len(samples) * step * 1000),
        step=step,
        query=query,
        metric_id=metric_id,
    )


def _gridded(
    labels: dict[str, str],
    metric_id: str | None,
    samples: Sequence[Sample],
    query: str,
    scope: MetricScope,
) -> Series:
    start_ms, step_ms = epoch_millis(scope.start), scope.step * 1000
    values = np.full(scope.points, np.nan)
    for raw_ts, raw_value in samples:
        value = parse_sample(raw_value)
        offset = _timestamp_ms(raw_ts) - start_ms
        index = round(offset / step_ms)
        if value is not None and 0 <= index < len(values) and abs(offset - index * step_ms) < 2:
            values[index] = value
    return _grid_series(labels, metric_id, values, query, scope)


def _grid_series(
    labels: Mapping[str, str],
    metric_id: str | None,
    values: np.ndarray,
    query: str,
    scope: MetricScope,
) -> Series:
    start_ms = epoch_millis(scope.start)
    return Series(
        tags=labels,
        values=values,
        start=_from_millis(start_ms),
        end=_from_millis(start_ms + len(values) * scope.step * 1000),
        step=scope.step,
        query=query,
        metric_id=metric_id,
    )


def mix(name: str, control: Sequence[Series], experiment: Sequence[Series]) -> list[MetricPair]:
    """Pair control and experiment series by tag map (Kayenta's ``mixAll`` for one metric).

    A tag set present on one side only is paired with an all-NaN stand-in shaped like that
    side's first series; when exactly one side has an untagged series (typically the empty
    placeholder) it stands in for every tag set of the other side. Pairs come in control
    order, then experiment-only tag sets in experiment order.
    """
    if not control:
        raise MetricsError(f"no control series for metric {name!r} (expected a placeholder)")
    if not experiment:
        raise MetricsError(f"no experiment series for metric {name!r} (expected a placeholder)")
    control_keys = {k for s in control for k in s.tags}
    experiment_keys = {k for s in experiment for k in s.tags}
    if control_keys and experiment_keys and control_keys != experiment_keys:
        raise ConfigError(
            f"metric {name!r}: control series have tag keys {sorted(control_keys)} but "
            f"experiment series have {sorted(experiment_keys)}; both sides must return the "
            "same labels (check groupByFields or the PromQL query)"
        )
    control_untagged = any(not s.tags for s in control)
    experiment_untagged = any(not s.tags for s in experiment)

    if control_untagged and not experiment_untagged:
        return [_pair(name, _stand_in(control[0], s.tags), s) for s in experiment]
    if experiment_untagged and not control_untagged:
        return [_pair(name, s, _stand_in(experiment[0], s.tags)) for s in control]

    pairs = []
    for tags in _ordered_tag_sets(control, experiment):
        c = _find(control, tags) or _stand_in(control[0], tags)
        e = _find(experiment, tags) or _stand_in(experiment[0], tags)
        pairs.append(_pair(name, c, e))
    return pairs


def _ordered_tag_sets(*sides: Sequence[Series]) -> list[Mapping[str, str]]:
    seen: set[frozenset[tuple[str, str]]] = set()
    ordered = []
    for side in sides:
        for s in side:
            key = frozenset(s.tags.items())
            if key not in seen:
                seen.add(key)
                ordered.append(s.tags)
    return ordered


def _find(series: Sequence[Series], tags: Mapping[str, str]) -> Series | None:
    return next((s for s in series if dict(s.tags) == dict(tags)), None)


def _stand_in(template: Series, tags: Mapping[str, str]) -> Series:
    return replace(template, tags=tags, values=np.full(template.expected_points, np.nan))


def _pair(name: str, control: Series, experiment: Series) -> MetricPair:
    return MetricPair(
        name=name,
        tags=MappingProxyType(dict(control.tags)),
        control=control.padded(control.expected_points),
        experiment=experiment.padded(experiment.expected_points),
    )
