"""judge(config, pairs, *, thresholds): a whole interval classified, scored and given a verdict."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from canary.config import CanaryConfig, Thresholds
from canary.errors import ConfigError
from canary.judge import Classification, SeriesPair, Verdict, judge
from tests.config.kayenta_fixtures import CONFIGS

RNG = np.random.default_rng(7)
BASE = RNG.normal(100.0, 5.0, 120)
SAME = RNG.normal(100.0, 5.0, 120)
HIGH = RNG.normal(160.0, 5.0, 120)


def _config(metrics, weights=None, name="t"):
    return CanaryConfig.from_kayenta(
        {
            "name": name,
            "metrics": metrics,
            "classifier": {"groupWeights": weights or {}},
        }
    )


def _metric(name, groups, **canary):
    return {
        "name": name,
        "query": {"type": "prometheus", "metricName": name, "resourceType": "gce_instance"},
        "groups": groups,
        "analysisConfigurations": {"canary": canary},
        "scopeName": "default",
    }


@pytest.mark.needs("kayenta")
def test_muted_fixture_critical_failure_is_reported_but_not_scored():
    """Kayenta's own muted-metric integration config: the failing metric is muted."""
    config = CanaryConfig.load(CONFIGS / "kayenta-integration-tests-prometheus-muted-metric.json")
    result = judge(
        config,
        [
            SeriesPair(name="Failing metric", control_values=BASE, experiment_values=HIGH),
            SeriesPair(name="Successful metric", control_values=BASE, experiment_values=SAME),
        ],
        thresholds={"pass": 75, "marginal": 50},
    )
    labels = {m.name: m.result.classification for m in result.metrics}
    assert labels == {
        "Failing metric": Classification.HIGH,
        "Successful metric": Classification.PASS,
    }
    # The muted metric is critical and High, yet neither zeroes the score nor counts.
    assert result.summary_score == 100.0
    assert result.verdict is Verdict.PASS
    assert dict(result.group_scores) == {"pod-group": 100.0}


def test_same_config_unmuted_critical_high_forces_zero_and_fail():
    config = _config(
        [_metric("lat", ["g"], critical=True, direction="increase"), _metric("ok", ["g"])],
        {"g": 100},
    )
    result = judge(
        config,
        {"lat": (BASE, HIGH), "ok": (BASE, SAME)},
        thresholds=Thresholds(pass_=75, marginal=50),
    )
    assert result.metrics[0].result.critical is True
    assert result.summary_score == 0.0
    assert result.verdict is Verdict.FAIL
    assert "lat" in (result.scores.reason or "")


def test_missing_pair_is_judged_nodata_not_dropped():
    """A metric the source returned nothing for must not vanish: it becomes Nodata (fail closed)."""
    config = _config([_metric("a", ["g"]), _metric("b", ["g"])], {"g": 100})
    result = judge(config, {"a": (BASE, SAME)}, thresholds={"pass": 75, "marginal": 50})
    labels = [m.result.classification for m in result.metrics]
    assert labels == [Classification.PASS, Classification.NODATA]
    # 1 of 2 results is Nodata: Kayenta's >= 50 % rule makes the score 0.
    assert result.summary_score == 0.0
    assert result.verdict is Verdict.FAIL


def test_nan_padded_series_reach_the_judge_as_missing_data():
    config = _config([_metric("a", ["g"], mustHaveData=True), _metric("b", ["g"])], {"g": 100})
    nan = np.full(60, np.nan)
    result = judge(config, {"a": (nan, nan), "b": (BASE, SAME)}, thresholds=None)
    assert result.metrics[0].result.classification is Classification.NODATA_FAIL_METRIC
    # NodataFailMetric counts as a failure in its group: 1 pass of 2.
    assert result.summary_score == 50.0
    assert result.verdict is Verdict.PASS  # no thresholds: Kayenta passes


def test_one_result_per_series_and_marginal_verdict():
    """groupByFields gives several pairs per metric; each counts separately in the group."""
    config = _config(
        [_metric("rps", ["traffic"]), _metric("lat", ["latency"])], {"traffic": 50, "latency": 50}
    )
    pairs = [
        SeriesPair(name="rps", tags={"code": "200"}, control_values=BASE, experiment_values=SAME),
        SeriesPair(name="rps", tags={"code": "500"}, control_values=BASE, experiment_values=HIGH),
        SeriesPair(name="lat", control_values=BASE, experiment_values=SAME),
    ]
    result = judge(config, pairs, thresholds={"pass": 95, "marginal": 60})
    assert [m.tags.get("code") for m in result.metrics] == ["200", "500", None]
    assert dict(result.group_scores) == {"traffic": 50.0, "latency": 100.0}
    assert result.summary_score == 75.0
    assert result.verdict is Verdict.MARGINAL
    assert result.counts()["High"] == 1 and result.counts()["Pass"] == 2


def test_rows_are_json_ready_and_explain_each_metric():
    config = _config([_metric("lat", ["latency"], direction="increase")], {"latency": 100})
    zero = np.zeros(50)
    result = judge(config, {"lat": (zero, zero + 1.0)}, thresholds={"pass": 95, "marginal": 75})
    (row,) = result.rows()
    json.dumps(row, allow_nan=False)  # no NaN/inf leaks into an artifact
    assert row["metric"] == "lat" and row["groups"] == "latency"
    assert row["classification"] == result.metrics[0].result.classification.value
    assert row["baseline_mean"] == 0.0 and row["canary_mean"] == pytest.approx(1.0, rel=1e-3)
    assert row["deviation"] is None  # mean ratio undefined against a zero baseline
    assert row["reason"]


def test_config_thresholds_are_ignored_request_thresholds_rule():
    """Kayenta never reads classifier.scoreThresholds (kayenta #664): only the request's count."""
    data = {
        "name": "t",
        "metrics": [_metric("a", ["g"]), _metric("b", ["g"])],
        "classifier": {"groupWeights": {"g": 100}, "scoreThresholds": {"pass": 40, "marginal": 20}},
    }
    config = CanaryConfig.from_kayenta(data)
    result = judge(
        config, {"a": (BASE, HIGH), "b": (BASE, SAME)}, thresholds={"pass": 95, "marginal": 75}
    )
    assert result.summary_score == 50.0
    assert result.verdict is Verdict.FAIL


def test_unknown_metric_and_bad_arguments_are_named():
    config = _config([_metric("a", ["g"])])
    with pytest.raises(ConfigError, match="'zzz'"):
        judge(config, {"zzz": (BASE, SAME)}, thresholds=None)
    with pytest.raises(ConfigError, match=r"pairs\['a'\]"):
        judge(config, {"a": BASE}, thresholds=None)
    with pytest.raises(ConfigError, match="thresholds"):
        judge(config, {"a": (BASE, SAME)}, thresholds=75)
    with pytest.raises(ConfigError, match="CanaryConfig"):
        judge({"metrics": []}, {}, thresholds=None)


def test_effect_size_settings_from_config_reach_the_classifier():
    """A +5 % shift is significant, but an allowedIncrease of 1.1 keeps it a Pass."""
    gated = _metric("lat", ["g"], direction="increase", effectSize={"allowedIncrease": 1.1})
    plain = _metric("lat", ["g"], direction="increase")
    base = RNG.normal(100.0, 1.0, 200)
    pair = {"lat": (base, base * 1.05)}
    without_gate = judge(_config([plain]), pair, thresholds=None).metrics[0].result
    with_gate = judge(_config([gated]), pair, thresholds=None).metrics[0].result
    assert without_gate.classification is Classification.HIGH
    assert with_gate.classification is Classification.PASS
    assert with_gate.effect_size == pytest.approx(1.05, abs=0.01)
    assert not math.isnan(with_gate.deviation)


def test_flagger_bounds_group_judges_absolute_limits():
    """thresholdRange: Flagger's success rate >= 99 % and p99 <= 0.5 s, on the canary's mean."""
    config = CanaryConfig.from_yaml_data(
        {
            "name": "flagger",
            "metrics": [
                {
                    "name": "success",
                    "groups": ["flagger"],
                    "analysisConfigurations": {"canary": {"thresholdRange": {"min": 99}}},
                },
                {
                    "name": "p99",
                    "groups": ["flagger"],
                    "analysisConfigurations": {
                        "canary": {"thresholdRange": {"max": 0.5}, "critical": True}
                    },
                },
            ],
            "classifier": {"groupWeights": {"flagger": 100}},
        },
        source="flagger.yaml",
    )
    ok = judge(
        config,
        {"success": ([99.9] * 5, [99.5] * 5), "p99": ([0.1] * 5, [0.3] * 5)},
        thresholds={"pass": 95, "marginal": 75},
    )
    assert [m.result.classification for m in ok.metrics] == [Classification.PASS] * 2
    assert ok.verdict is Verdict.PASS

    low = judge(
        config,
        {"success": ([99.9] * 5, [97.0] * 5), "p99": ([0.1] * 5, [0.3] * 5)},
        thresholds={"pass": 95, "marginal": 75},
    )
    assert low.metrics[0].result.classification is Classification.LOW
    assert "below the minimum 99" in low.metrics[0].result.reason
    assert low.summary_score == 50.0

    slow = judge(
        config,
        {"success": ([99.9] * 5, [99.9] * 5), "p99": ([0.1] * 5, [0.7, np.nan] * 3)},
        thresholds={"pass": 95, "marginal": 75},
    )
    assert slow.metrics[1].result.classification is Classification.HIGH
    assert slow.metrics[1].result.critical is True  # critical bound violated: score forced to 0
    assert slow.summary_score == 0.0 and slow.verdict is Verdict.FAIL

    empty = judge(config, {"success": ([99.9] * 5, [np.nan] * 5)}, thresholds=None)
    assert [m.result.classification for m in empty.metrics] == [Classification.NODATA] * 2
    assert empty.summary_score == 0.0  # no data never passes: a critical Nodata and >= 50 % Nodata
