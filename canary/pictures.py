"""A picture per judged metric: baseline vs canary over the analysis, and for histograms the
two latency distributions, the failing metric marked. PNG bytes, for the release report.

Drawing lives here, apart from the judge (canary/judge stays numpy/scipy only): the
pictures are made from the judgement records a release keeps, look by look. matplotlib
runs headless (Agg), in the flow-run process, a few tens of milliseconds a picture.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from canary.judge.interval import MetricJudgement
    from canary.judge.result import JudgedCounts
    from canary.report import JudgementRecord

__all__ = ["WIDTH_PX", "metric_charts", "metric_figures", "png_data_uri", "ratio_words", "series_unit"]

#: Fits the Prefect UI's artifact frame (~730 px) without scrolling.
WIDTH_PX = 700
_DPI = 100
BASELINE, CANARY, FAILING = "#4c72b0", "#dd8452", "#c44e52"


def png_data_uri(png: bytes) -> str:
    """PNG bytes as a data: URI, for a markdown image."""
    return "data:image/png;base64," + base64.b64encode(png).decode()


def metric_charts(records: Sequence[JudgementRecord]) -> list[tuple[str, bool, bytes]]:
    """(metric name, failing?, PNG) for every metric of the last judgement, failing first."""
    return [(name, bad, _png(fig)) for name, bad, fig in metric_figures(records)]


def metric_figures(records: Sequence[JudgementRecord]) -> list[tuple[str, bool, Figure]]:
    """(metric name, failing?, figure) for every metric of the last judgement, failing
    first: what `metric_charts` draws, as matplotlib figures (tests read their axes)."""
    if not records:
        return []
    import matplotlib

    matplotlib.use("Agg")
    out = []
    for judged in records[-1].judgement.metrics:
        history = [_metric_in(r, judged.name) for r in records]
        failing = judged.classification.value not in ("Pass",) and not judged.metric.canary.muted
        kind = judged.metric.evidence
        if judged.classification.value == "Nodata" and not failing:
            continue  # a muted metric without data: nothing to draw
        if kind == "ratio":
            fig = _ratio_chart(judged.name, records, history, failing)
        elif kind == "histogram":
            fig = _histogram_chart(judged.name, records, history, failing)
        else:
            fig = _series_chart(judged.name, judged, failing)
        out.append((judged.name, failing, fig))
    return sorted(out, key=lambda item: not item[1])


def _metric_in(record: JudgementRecord, name: str) -> MetricJudgement | None:
    """The metric's judgement at one look (None: not judged then)."""
    return next((m for m in record.judgement.metrics if m.name == name), None)


def _figure(panels: int = 1) -> tuple[Figure, list[Axes]]:
    """A figure as wide as the report's frame, with `panels` axes side by side."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, panels, figsize=(WIDTH_PX / _DPI, 2.6), dpi=_DPI,
                             squeeze=False)  # fmt: skip
    fig.patch.set_facecolor("white")
    return fig, list(axes[0])


def _finish(fig: Figure, title: str, failing: bool) -> Figure:
    """The figure titled (and framed red when failing), its legend below the panels (a
    legend inside a panel covers lines: the canary's p99 was hidden under it)."""
    fig.suptitle(title, fontsize=10, color=FAILING if failing else "black",
                 fontweight="bold" if failing else "normal")  # fmt: skip
    if failing:
        fig.patch.set_edgecolor(FAILING)
        fig.patch.set_linewidth(4)
    labelled: dict[str, Artist] = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            labelled.setdefault(label, handle)
    bottom = 0.0
    if labelled:
        fig.legend(list(labelled.values()), list(labelled), loc="lower center", fontsize=8,
                   ncol=min(len(labelled), 4), frameon=False)  # fmt: skip
        bottom = 0.1 * ((len(labelled) + 3) // 4)
    fig.tight_layout(rect=(0.0, bottom, 1.0, 1.0))
    return fig


def _png(fig: Figure) -> bytes:
    """The figure as PNG bytes (and closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor=fig.get_facecolor(), edgecolor=fig.get_edgecolor())
    plt.close(fig)
    return buf.getvalue()


def _from_zero(ax: Axes) -> None:
    """The y axis from 0 (rates and latencies are never negative; with every value 0,
    matplotlib would centre 0 and show a negative half)."""
    top = ax.get_ylim()[1]
    ax.set_ylim(0.0, top if top > 0 else 1.0)


def _ends(records: Sequence[JudgementRecord]) -> list[float]:
    """Each look's time, in seconds since the analysis windows began."""
    origin = records[0].window_start
    return [(r.window_end - origin).total_seconds() for r in records]


def _label(judged: MetricJudgement | None) -> str:
    """The metric's label at a look, with "(critical)" when it trips the critical rule."""
    verdict = judged.classification.value if judged is not None else "–"
    return f"{verdict}{' (critical)' if judged is not None and judged.critical else ''}"


def _counts(judged: MetricJudgement | None) -> JudgedCounts | None:
    """What the metric's test judged at a look (None: not judged then)."""
    return judged.result.counts if judged is not None else None


def _ratio_chart(name: str, records: Sequence[JudgementRecord], history: list[MetricJudgement | None],
                 failing: bool) -> Figure:  # fmt: skip
    """The event rate of each look's new requests, per track (%)."""
    fig, (ax,) = _figure()
    for side, color, label in (("control", BASELINE, "baseline"), ("experiment", CANARY, "canary")):
        rates, prev_e, prev_t = [], 0.0, 0.0
        for m in history:
            counts = _counts(m)
            track = _track(counts, side)
            events, total = track if len(track) == 2 else (math.nan, math.nan)
            new_t = total - prev_t
            rates.append(100 * (events - prev_e) / new_t if new_t > 0 else math.nan)
            prev_e, prev_t = events, total
        ax.plot(_ends(records), rates, marker="o", color=color, label=label)
    ax.set_ylabel("rate in the look (%)")
    ax.set_xlabel("seconds since the analysis began")
    _from_zero(ax)
    last = _counts(history[-1]) if history else None
    return _finish(fig, f"{name}: {_label(history[-1])}; {ratio_words(last)}", failing)


def ratio_words(counts: JudgedCounts | None) -> str:
    """The rate ratio for a title, in words where it is no number ("nan" and "inf" are
    not words): no errors on either side, none on the baseline, or n/a."""
    ratio = counts.estimate if counts is not None else math.nan
    if math.isfinite(ratio):
        return f"rate ratio {ratio:.3g}"
    control = counts.control if counts is not None else ()
    experiment = counts.experiment if counts is not None else ()
    events = [side[0] for side in (control, experiment) if len(side) == 2]
    if len(events) == 2 and events == [0, 0]:
        return "no errors on either side"
    if len(events) == 2 and events[0] == 0:
        return "rate ratio n/a: the canary has errors, the baseline none"
    return "rate ratio n/a"


def _quantile(bounds: np.ndarray, counts: np.ndarray, q: float) -> float:
    """histogram_quantile's estimate from cumulative counts (NaN without requests)."""
    total = counts[-1]
    if total <= 0:
        return math.nan
    rank = q * total
    i = int(np.searchsorted(counts[:-1], rank, side="left"))
    if i >= len(bounds) - 1:
        return float(bounds[-2])
    lo_b = bounds[i - 1] if i > 0 else 0.0
    lo_c = counts[i - 1] if i > 0 else 0.0
    width = counts[i] - lo_c
    return float(lo_b + (rank - lo_c) / width * (bounds[i] - lo_b)) if width > 0 else float(bounds[i])


def _track(counts: JudgedCounts | None, side: str) -> tuple[float, ...]:
    """One track's judged counts ("control" or "experiment"; empty when not judged)."""
    if counts is None:
        return ()
    return counts.control if side == "control" else counts.experiment


def _histogram_chart(name: str, records: Sequence[JudgementRecord], history: list[MetricJudgement | None],
                     failing: bool) -> Figure:  # fmt: skip
    """Left: p50 and p99 of each look's new requests, per track. Right: both tracks'
    latency distributions over the whole analysis (share of requests at or below)."""
    fig, (left, right) = _figure(2)
    last = _counts(history[-1]) if history else None
    unit = last.unit if last is not None else ""
    scale, axis = (1000.0, "ms") if unit in ("s", "seconds") else (1.0, "ms" if unit in ("ms",) else unit)
    bounds = np.asarray(last.upper_bounds if last is not None else (), dtype=float)
    for side, color, label in (("control", BASELINE, "baseline"), ("experiment", CANARY, "canary")):
        p50, p99, prev = [], [], None
        for m in history:
            counts = np.asarray(_track(_counts(m), side), dtype=float)
            if counts.size == 0 or bounds.size == 0:
                p50.append(math.nan)
                p99.append(math.nan)
                continue
            new = counts - prev if prev is not None and prev.size == counts.size else counts
            p50.append(_quantile(bounds, new, 0.5) * scale)
            p99.append(_quantile(bounds, new, 0.99) * scale)
            prev = counts
        left.plot(_ends(records), p50, marker="o", color=color, label=f"{label} p50")
        left.plot(_ends(records), p99, marker="^", linestyle="--", color=color, label=f"{label} p99")
        counts = np.asarray(_track(last, side), dtype=float)
        if counts.size and counts[-1] > 0:
            finite = bounds[:-1] * scale
            right.step(finite, counts[:-1] / counts[-1], where="post", color=color, label=label)
    left.set_ylabel(f"latency ({axis})")
    left.set_xlabel("seconds since the analysis began")
    _from_zero(left)
    right.set_xscale("log")
    right.set_xlabel(f"latency ({axis})")
    right.set_ylabel("share at or below")
    for ax in (left, right):
        if not ax.get_legend_handles_labels()[0]:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    return _finish(fig, f"{name}: {_label(history[-1])}", failing)


def _series_chart(name: str, judged: MetricJudgement, failing: bool) -> Figure:
    """The range-query points of the last judgement, per track, the unit on the y axis."""
    fig, (ax,) = _figure()
    if judged.points is not None:
        control, experiment = judged.points
        x = np.arange(max(len(control), len(experiment)))
        step = judged.step or 1
        ax.plot(x[: len(control)] * step, control, color=BASELINE, label="baseline")
        ax.plot(x[: len(experiment)] * step, experiment, color=CANARY, label="canary")
        ax.set_xlabel("seconds into the window")
    ax.set_ylabel(series_unit(judged))
    muted = " (muted)" if judged.metric.canary.muted else ""
    return _finish(fig, f"{name}{muted}: {_label(judged)}", failing)


#: what a range query's text says about its unit, first match wins
_UNIT_HINTS = (("_seconds", "seconds"), ("_bytes", "bytes"), ("100 *", "%"), ("100*", "%"),
               ("percent", "%"))  # fmt: skip


def series_unit(judged: MetricJudgement) -> str:
    """A series metric's y-axis label: its unit, read from its query (Kayenta's format
    declares none): seconds for a ``*_seconds`` histogram or counter, % for ``100 * ...``."""
    from canary.config.query import PrometheusQuery

    query = judged.metric.query
    said = (query.custom_inline_template, query.metric_name) if isinstance(query, PrometheusQuery) else ()
    text = " ".join(t for t in (*said, judged.name) if t)
    unit = next((unit for hint, unit in _UNIT_HINTS if hint in text), None)
    return f"value ({unit})" if unit else "value (the query's own unit)"
