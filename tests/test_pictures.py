"""The report's pictures as a person reads them, checked on the matplotlib figures:
titles in words (never "nan" or "inf"), rates and latencies from 0, the legend clear of
every line, a unit on every y axis; and the look's table narrow enough for the UI."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from canary.analysis.decision import decide
from canary.config import CanaryConfig
from canary.judge import judge
from canary.judge.result import JudgedCounts
from canary.pictures import metric_figures, ratio_words
from canary.report import JudgementRecord, interval_rows
from canary.values.counts import CountsPair, HistogramCounts, RatioCounts

BOUNDS = (0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, math.inf)
BASE = (0.05, 0.4, 0.7, 0.95, 0.99, 0.998, 0.999, 1.0)
SLOW = (0.01, 0.1, 0.3, 0.6, 0.8, 0.9, 0.97, 1.0)  # the canary: a fat slow tail


def config() -> CanaryConfig:
    canary = {"direction": "increase", "critical": True}
    return CanaryConfig.from_yaml_data({
        "name": "shop", "judge": {"name": "sequential-v1"},
        "metrics": [
            {"name": "error-rate", "groups": ["errors"], "analysisConfigurations": {"canary": canary},
             "query": {"type": "prometheus", "ratio": {"events": 'req_total{code=~"5.."}', "total": "req_total"}}},
            {"name": "latency", "groups": ["latency"], "analysisConfigurations": {"canary": canary},
             "query": {"type": "prometheus", "histogram": {"buckets": "req_seconds_bucket", "unit": "s"}}},
            {"name": "success-rate", "groups": ["flagger"],
             "analysisConfigurations": {"canary": {"muted": True, "thresholdRange": {"min": 99}}},
             "query": {"type": "prometheus", "customInlineTemplate":
                       'PromQL:100 * (1 - sum(rate(req_total{code=~"5..",track="${scope}"}[30s])))'}},
            {"name": "duration-p99", "groups": ["flagger"],
             "analysisConfigurations": {"canary": {"muted": True, "thresholdRange": {"max": 0.5}}},
             "query": {"type": "prometheus", "customInlineTemplate":
                       'PromQL:histogram_quantile(0.99, sum by (le) (rate(req_seconds_bucket{track="${scope}"}[30s])))'}},
        ],
        "classifier": {"groupWeights": {"errors": 50, "latency": 50}},
    })  # fmt: skip


def records(errors: float, looks: int = 3) -> list[JudgementRecord]:
    """`looks` looks of 1000 requests per track each; the canary slower; `errors` per request
    on both tracks (0: no errors on either side)."""
    start, cfg, out = datetime(2026, 1, 1, 12, tzinfo=UTC), config(), []
    history: list[list[CountsPair]] = []
    series = {"success-rate": (np.full(30, 99.9), np.full(30, 99.8)),
              "duration-p99": (np.full(30, 0.2), np.full(30, 0.4))}  # fmt: skip
    for look in range(1, looks + 1):
        n = 1000.0 * look
        rates = RatioCounts(float(round(n * errors)), n)
        counts = [CountsPair("error-rate", rates, rates),
                  CountsPair("latency", HistogramCounts(BOUNDS, tuple(round(n * s) for s in BASE)),
                             HistogramCounts(BOUNDS, tuple(round(n * s) for s in SLOW)))]  # fmt: skip
        result = judge(cfg, series, thresholds={"pass": 95, "marginal": 75}, counts=counts,
                       history=history, planned_looks=looks)  # fmt: skip
        history.append(counts)
        elapsed = timedelta(seconds=10 * look)
        out.append(JudgementRecord(index=look, window_start=start, window_end=start + elapsed,
                                   canary_share=20, judgement=result,
                                   decision=decide(result, look=look, looks=looks, elapsed=elapsed)))  # fmt: skip
    return out


@pytest.fixture(scope="module")
def figures() -> dict[str, Any]:
    return {name: fig for name, _, fig in metric_figures(records(errors=0.0))}


@pytest.mark.parametrize(("counts", "words"), [
    (JudgedCounts((0.0, 3000.0), (0.0, 3000.0), estimate=math.nan), "no errors on either side"),
    (JudgedCounts((0.0, 3000.0), (4.0, 3000.0), estimate=math.inf),
     "rate ratio n/a: the canary has errors, the baseline none"),
    (JudgedCounts(estimate=math.nan), "rate ratio n/a"),
    (None, "rate ratio n/a"),
    (JudgedCounts((3.0, 3000.0), (6.0, 3000.0), estimate=2.0), "rate ratio 2"),
])  # fmt: skip
def test_the_rate_ratio_is_said_in_words_where_it_is_no_number(counts: Any, words: str) -> None:
    assert ratio_words(counts) == words


def test_no_title_says_nan_or_inf(figures: dict[str, Any]) -> None:
    titles = {name: fig._suptitle.get_text() for name, fig in figures.items()}
    assert titles["error-rate"].endswith("; no errors on either side"), titles
    for title in titles.values():
        assert not {"nan", "inf"} & set(title.lower().replace(";", " ").split()), titles


def test_rates_and_latencies_start_at_zero(figures: dict[str, Any]) -> None:
    """Both error rates 0: matplotlib alone centres 0 and shows a negative half."""
    (rate,) = figures["error-rate"].axes
    assert all(y == 0 for line in rate.get_lines() for y in line.get_ydata())
    assert rate.get_ylim()[0] == 0 and rate.get_ylim()[1] > 0
    latency = figures["latency"].axes[0]
    assert latency.get_ylim()[0] == 0 and latency.get_ylim()[1] > 0


def test_the_legend_covers_no_line(figures: dict[str, Any]) -> None:
    """The latency legend hid the canary's p99 line: the legend now sits below the panels,
    so neither a panel nor any point of any line is under it."""
    for name, fig in figures.items():
        fig.canvas.draw()
        (legend,) = fig.legends
        box = legend.get_window_extent()
        for ax in fig.axes:
            assert not box.overlaps(ax.get_window_extent()), name
            for line in ax.get_lines():
                points = ax.transData.transform(np.column_stack([line.get_xdata(), line.get_ydata()]))
                inside = [box.contains(x, y) for x, y in points if np.isfinite([x, y]).all()]
                assert not any(inside), (name, line.get_label())
    labels = [t.get_text() for t in figures["latency"].legends[0].get_texts()]
    assert "canary p99" in labels and "baseline" in labels


def test_every_chart_has_a_unit_on_its_y_axis(figures: dict[str, Any]) -> None:
    units = {name: fig.axes[0].get_ylabel() for name, fig in figures.items()}
    assert units == {"error-rate": "rate in the look (%)", "latency": "latency (ms)",
                     "success-rate": "value (%)", "duration-p99": "value (seconds)"}  # fmt: skip


def test_a_look_s_table_shows_the_answer_within_the_ui_s_frame() -> None:
    """Prefect shows a table artifact unwrapped in a frame of ~840 px (about 100 characters
    with the cells' padding): the answer's columns come first and fit it; long reasons are
    cut (the report's Details has them whole); the window is in the table's description."""
    rows = interval_rows(records(errors=0.005)[-1])
    columns = list(rows[0])
    assert columns[:5] == ["metric", "result", "effect", "canary", "baseline"], columns
    answer = sum(max(len(c), *(len(str(r[c])) for r in rows)) for c in columns[:5])
    assert answer <= 90, {c: max(len(str(r[c])) for r in rows) for c in columns[:5]}
    assert "window" not in columns and {"look", "reason", "stops the release"} <= set(columns)
    assert all(len(str(r["reason"])) <= 80 for r in rows if r["metric"] != "decision")
    decision = next(r for r in rows if r["metric"] == "decision")
    assert len(str(decision["reason"])) <= 160 and str(decision["reason"]).endswith("…")
