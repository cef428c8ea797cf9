"""A release's looks judged together: canary.judge.judge with the earlier looks' counts
(history) and the planned number of looks, the early-promotion decision, the report's
"decided at look k", and plans that judge looks the same way."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from canary.analysis.decision import Action, decide
from canary.analysis.planning import LookSchedule, describe, plan_config, plan_metric
from canary.config import CanaryConfig
from canary.errors import ConfigError
from canary.judge import judge
from canary.judge.classify import Classification
from canary.judge.sequential import compare_histograms
from canary.report import JudgementRecord, decided_at, headline, interval_rows, markdown_report
from canary.values.counts import CountsPair, HistogramCounts, RatioCounts

BOUNDS = (0.01, 0.02, 0.03, 0.05, 0.1, math.inf)
SHARES = (0.05, 0.4, 0.7, 0.95, 0.995, 1.0)
THRESHOLDS = {"pass": 95, "marginal": 75}
LOOKS = 5


def make_config(rates: dict[str, Any] | None = None, latency: dict[str, Any] | None = None) -> CanaryConfig:
    return CanaryConfig.from_yaml_data({
        "name": "shop",
        "judge": {"name": "sequential-v1"},
        "metrics": [
            {"name": "error-rate", "groups": ["errors"],
             "query": {"type": "prometheus", "ratio": {"events": 'req_total{code=~"5.."}', "total": "req_total"}},
             "analysisConfigurations": {"canary": {"direction": "increase", "critical": True, **(rates or {})}}},
            {"name": "latency", "groups": ["latency"],
             "query": {"type": "prometheus", "histogram": {"buckets": "req_seconds_bucket", "unit": "s"}},
             "analysisConfigurations": {"canary": {"direction": "increase", "critical": True, "tolerance": 0.5,
                                                   **(latency or {})}}},
        ],
        "classifier": {"groupWeights": {"errors": 50, "latency": 50}},
    })  # fmt: skip


def histogram(n: float, shares: tuple[float, ...] = SHARES) -> HistogramCounts:
    return HistogramCounts(BOUNDS, tuple(float(round(n * s)) for s in shares))


def look_counts(look: int, per_look: float = 1000.0, errors: float = 0.005) -> list[CountsPair]:
    """Both tracks alike: `per_look` requests per look each, cumulative since the start."""
    n = per_look * look
    rates = RatioCounts(float(round(n * errors)), n)
    return [CountsPair("error-rate", rates, rates), CountsPair("latency", histogram(n), histogram(n))]


def metric(result: Any, name: str) -> Any:
    return next(m for m in result.metrics if m.name == name)


# -- judge(history=..., planned_looks=...) ---------------------------------------------------


def test_each_histogram_metric_gets_its_own_earlier_looks() -> None:
    config = make_config(latency={"toleranceOn": "share"})
    history = [look_counts(1), look_counts(2)]
    got = metric(judge(config, [], thresholds=THRESHOLDS, counts=look_counts(3), history=history,
                       planned_looks=LOOKS), "latency").result  # fmt: skip
    direct = compare_histograms(
        histogram(3000).buckets, histogram(3000).buckets, BOUNDS, direction="increase", alpha=0.01,
        tolerance=0.5, unit="s", tolerance_on="share", planned_looks=LOOKS,
        history=[(histogram(1000).buckets, histogram(1000).buckets),
                 (histogram(2000).buckets, histogram(2000).buckets)],
    )  # fmt: skip
    assert got == direct
    assert (got.look, got.tolerance_on, got.decided) == (3, "share", True)
    assert "decided at look 3" in got.reason


def test_without_history_a_look_is_the_first_and_no_pass_is_decided() -> None:
    """Re-analysis judges one look on its own: it still works, and says why nothing is decided."""
    config = make_config(latency={"toleranceOn": "share"})
    result = judge(config, [], thresholds=THRESHOLDS, counts=look_counts(3))
    latency = metric(result, "latency")
    assert latency.result.look == 1 and latency.classification is Classification.PASS
    assert not latency.decided and "'within tolerance' can be decided from look 2" in latency.result.reason
    observed = judge(config, [], thresholds=THRESHOLDS, counts=look_counts(3), split=None)
    assert metric(observed, "latency").result.look == 1


def test_looks_where_the_metric_had_no_series_or_no_requests_are_left_out() -> None:
    config = make_config()
    empty = HistogramCounts(BOUNDS, (0.0,) * len(BOUNDS))
    history = [
        [CountsPair("error-rate", RatioCounts(0, 0), RatioCounts(0, 0))],  # latency not fetched
        [CountsPair("latency", HistogramCounts((), ()), histogram(1000), missing=("control",))],
        [CountsPair("latency", empty, histogram(1000))],  # no baseline request yet
        look_counts(2),
    ]
    result = metric(judge(config, [], thresholds=THRESHOLDS, counts=look_counts(3), history=history,
                          planned_looks=LOOKS), "latency").result  # fmt: skip
    assert result.look == 2  # one earlier look used


def test_a_regression_is_named_with_its_look() -> None:
    config = make_config()
    slow = (0.0, 0.0, 0.05, 0.4, 0.7, 1.0)
    looks = [[CountsPair("latency", histogram(1000 * k), histogram(1000 * k, slow))] for k in (1, 2)]
    result = judge(config, [], thresholds=THRESHOLDS, counts=looks[1], history=looks[:1], planned_looks=LOOKS)
    latency = metric(result, "latency")
    assert latency.classification is Classification.HIGH and latency.critical
    assert "canary is slower, beyond the tolerance x1.5, decided at look 2" in latency.result.reason


def test_safe_rate_decides_a_pass_on_the_canary_s_own_rate() -> None:
    clean = [CountsPair("error-rate", RatioCounts(0, 5000), RatioCounts(0, 5000))]
    plain = metric(judge(make_config(), [], thresholds=THRESHOLDS, counts=clean), "error-rate")
    assert not plain.decided and "nothing to compare" in plain.result.reason
    safe = metric(judge(make_config({"safeRate": 0.01}), [], thresholds=THRESHOLDS, counts=clean), "error-rate")
    assert safe.decided and safe.classification is Classification.PASS
    assert "or below the safe rate 1%" in safe.result.reason


def test_history_with_an_observed_split_is_refused() -> None:
    with pytest.raises(ConfigError, match="split=None .* valid for one look only"):
        judge(make_config(), [], thresholds=THRESHOLDS, counts=look_counts(2), history=[look_counts(1)],
              split=None)  # fmt: skip


def test_counts_in_history_for_an_unknown_metric_are_refused() -> None:
    with pytest.raises(ConfigError, match="counts given for 'p99'"):
        judge(make_config(), [], thresholds=THRESHOLDS, counts=look_counts(2),
              history=[[CountsPair("p99", RatioCounts(0, 1), RatioCounts(0, 1))]])  # fmt: skip


# -- the decision and the report ---------------------------------------------------------------


def _release(config: CanaryConfig, looks: int = LOOKS) -> list[JudgementRecord]:
    """Looks of 10 s until the decision is final, as the flow runs them."""
    start = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    records: list[JudgementRecord] = []
    history: list[list[CountsPair]] = []
    for look in range(1, looks + 1):
        counts = look_counts(look)
        result = judge(config, [], thresholds=THRESHOLDS, counts=counts, history=history, planned_looks=looks)
        history.append(counts)
        elapsed = timedelta(seconds=10 * look)
        decision = decide(result, look=look, looks=looks, elapsed=elapsed, lifetime=timedelta(seconds=10 * looks))
        records.append(JudgementRecord(index=look, window_start=start, window_end=start + elapsed,
                                       canary_share=20, judgement=result, decision=decision))  # fmt: skip
        if decision.final:
            break
    return records


def test_early_promotion_says_at_which_look_and_the_time_it_saves() -> None:
    records = _release(make_config({"safeRate": 0.05}, {"toleranceOn": "share"}))
    decision = records[-1].decision
    assert decision is not None and decision.action is Action.PROMOTE and decision.early
    assert decision.reason == ("every metric is within its tolerance, decided at look 2 of 5 (20s of "
                               "analysis): safe to promote now, saving 30s of the 50s lifetime (3 looks left)")  # fmt: skip
    assert decided_at(records) == {"error-rate": 1, "latency": 2}
    assert headline("promoted", decision.reason, records) == (
        "promoted: every metric within its tolerance, decided at look 2")
    text = markdown_report(app="shop", image="i", commit="c" * 40, outcome="promoted", reason=decision.reason,
                           records=records, thresholds=None, pictures=False)  # fmt: skip
    assert "- decided at look 2, at 12:00:20 UTC after 0:20 of analysis (canary share 20%): decided " \
           "error-rate within tolerance, latency within tolerance" in text
    assert "| Pass, decided at look 1 |" in text and "| Pass, decided at look 2 |" in text
    assert "latency<br>*critical, tolerance on shares*" in text
    assert "- **latency (critical)** (tolerance on the share of slower requests) Pass: within the " \
           "tolerance x1.5 in the share of slower requests (decided at look 2)" in text
    rows = interval_rows(records[-1])
    assert next(r for r in rows if r["metric"] == "latency")["tolerance on"] == "shares"
    assert next(r for r in rows if r["metric"] == "error-rate")["tolerance on"] == ""


def test_without_a_lifetime_the_time_saved_is_the_looks_left() -> None:
    config = make_config({"safeRate": 0.05}, {"toleranceOn": "share"})
    history = [look_counts(1)]
    result = judge(config, [], thresholds=THRESHOLDS, counts=look_counts(2), history=history, planned_looks=4)
    decision = decide(result, look=2, looks=4, elapsed=timedelta(seconds=30))
    assert decision.reason.endswith("saving 30s of the 1m00s lifetime (2 looks left)")


def test_a_release_with_nothing_decided_ends_on_its_score() -> None:
    records = _release(make_config(), looks=2)  # tolerance 0 on the error rate: never decided
    assert records[-1].decision is not None and not records[-1].decision.early
    text = markdown_report(app="shop", image="i", commit="c" * 40, outcome="promoted",
                           reason=records[-1].decision.reason, records=records, thresholds=None,
                           pictures=False)  # fmt: skip
    assert "(canary share 20%): decided latency within tolerance; 1 metric not yet decided" in text
    assert "tolerance on" not in text


# -- plans judge looks the same way -------------------------------------------------------------

SCHEDULE = LookSchedule((10, 20, 25), 15.0, 3, 45.0, 10.0)


def test_plan_passes_the_settings_and_says_when_an_unchanged_canary_is_decided() -> None:
    counts = SimpleNamespace(upper_bounds=BOUNDS, buckets=histogram(18000).buckets)
    share = plan_metric("latency", counts, request_rate=2000.0, schedule=SCHEDULE, rng=np.random.default_rng(0),
                        tolerance=0.2, min_effect=1.0, unit="s", tolerance_on="share")  # fmt: skip
    quantile = plan_metric("latency", counts, request_rate=400.0, schedule=SCHEDULE, rng=np.random.default_rng(0),
                           tolerance=0.2, min_effect=1.0, unit="s")  # fmt: skip
    assert share.tolerance_on == "share" and share.to_dict()["tolerance_on"] == "share"
    # the buckets are 1.5x to 2x wide, more than the tolerance: only the share of slower
    # requests can be proven within it; and never at look 1
    assert share.aa_safe[0] == 0.0 and share.aa_safe[-1] > 0.9
    assert quantile.aa_safe[-1] == 0.0 and quantile.safe_looks_needed is None
    k = share.safe_looks_needed
    assert k is not None and k >= 2 and share.to_dict()["safe_looks_needed"] == k
    line = describe(share)[1]
    assert "decided within tolerance (on the share of slower requests) (early promotion)" in line
    assert f"90% by look {k}" in line and "never at look 1" in line


def test_plan_with_a_safe_rate_promotes_a_clean_canary_early() -> None:
    counts = SimpleNamespace(events=2.0, total=10000.0)
    with_safe = plan_metric("error-rate", counts, request_rate=100.0, schedule=SCHEDULE,
                            rng=np.random.default_rng(0), safe_rate=0.02)  # fmt: skip
    without = plan_metric("error-rate", counts, request_rate=100.0, schedule=SCHEDULE, rng=np.random.default_rng(0))
    assert with_safe.aa_safe[-1] > 0.9 and without.aa_safe[-1] < 0.1
    assert with_safe.safe_rate == 0.02 and without.safe_looks_needed is None
    assert "decided within tolerance or below the safe rate 2% (early promotion)" in describe(with_safe)[1]
    assert "and so does a safeRate" in describe(without)[1]
    with pytest.raises(ConfigError, match="safe_rate must be a rate strictly between 0 and 1"):
        plan_metric("error-rate", counts, request_rate=1.0, schedule=SCHEDULE, rng=np.random.default_rng(0),
                    safe_rate=2.0)  # fmt: skip
    with pytest.raises(ConfigError, match="tolerance_on applies to histogram metrics"):
        plan_metric("error-rate", counts, request_rate=1.0, schedule=SCHEDULE, rng=np.random.default_rng(0),
                    tolerance_on="share")  # fmt: skip


def test_plan_config_takes_the_settings_from_the_canary_config() -> None:
    config = make_config({"safeRate": 0.02}, {"toleranceOn": "share"})
    production = {"error-rate": SimpleNamespace(events=5.0, total=6000.0),
                  "latency": SimpleNamespace(upper_bounds=BOUNDS, buckets=histogram(6000).buckets)}  # fmt: skip
    plan = plan_config(config, SCHEDULE, production, window=600.0, rng=np.random.default_rng(0), simulations=50)
    rates, latency = plan.metrics
    assert (rates.safe_rate, rates.tolerance_on) == (0.02, "quantile")
    assert (latency.safe_rate, latency.tolerance_on) == (None, "share")
