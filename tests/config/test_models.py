"""Kayenta's tolerance for JSON (judge spec, section 3) and the models' own rules."""

from __future__ import annotations

import json
from typing import Any

import pytest

from canary.config import (
    CanaryConfig,
    ClassifierConfig,
    EffectSize,
    MetricAnalysisConfig,
    MetricConfig,
    OtherQuery,
    Outliers,
    PrometheusQuery,
)
from canary.errors import ConfigError


def kayenta(**canary: Any) -> dict[str, Any]:
    return {
        "name": "svc",
        "metrics": [
            {"name": "cpu", "query": {"type": "prometheus", "metricName": "cpu"}},
            {
                "name": "p99",
                "query": {"type": "prometheus", "metricName": "p99"},
                "analysisConfigurations": {"canary": canary},
            },
        ],
    }


def canary_of(**canary: Any) -> MetricAnalysisConfig:
    return CanaryConfig.from_kayenta(kayenta(**canary)).metric("p99").canary


def test_defaults() -> None:
    c = canary_of()
    assert (c.direction, c.nan_strategy, c.critical, c.must_have_data, c.muted) == (
        "either",
        "remove",
        False,
        False,
        False,
    )
    assert c.effect_size == EffectSize(
        measure="meanRatio",
        allowed_increase=1.0,
        allowed_decrease=1.0,
        critical_increase=1.0,
        critical_decrease=1.0,
    )
    assert c.outliers == Outliers(strategy="keep", outlier_factor=3.0)


@pytest.mark.parametrize(
    ("given", "expected"),
    [("increase", "increase"), ("decrease", "decrease"), ("up", "either"), ("INCREASE", "either")],
)
def test_unknown_direction_is_either(given: str, expected: str) -> None:
    assert canary_of(direction=given).direction == expected


@pytest.mark.parametrize(("given", "expected"), [("replace", "replace"), ("zero", "remove")])
def test_unknown_nan_strategy_is_remove(given: str, expected: str) -> None:
    assert canary_of(nanStrategy=given).nan_strategy == expected


def test_outlier_strategy_other_than_remove_keeps() -> None:
    assert canary_of(outliers={"strategy": "remove"}).outliers.strategy == "remove"
    assert canary_of(outliers={"strategy": "iqr", "outlierFactor": 2}).outliers == Outliers(
        strategy="keep", outlier_factor=2.0
    )


def test_null_means_default_in_kayenta_json() -> None:
    c = canary_of(direction=None, critical=None, effectSize=None)
    assert (c.direction, c.critical, c.effect_size.measure) == ("either", False, "meanRatio")


def test_unknown_fields_anywhere_are_dropped_in_kayenta_json() -> None:
    data = kayenta(direction="increase", someFutureFlag=True, effectSize={"x": 1})
    data["extra"] = 1
    data["metrics"][0]["service"] = "prometheus"
    data["metrics"][0]["query"]["aggregationPeriod"] = "PT1M"
    data["classifier"] = {"groupWeights": {}, "mode": "x"}
    config = CanaryConfig.from_kayenta(data)
    assert config.metric("p99").canary.direction == "increase"
    assert config.metric("cpu").query == PrometheusQuery(metric_name="cpu")


def test_string_boolean_is_rejected_even_in_kayenta_json() -> None:
    with pytest.raises(ConfigError) as err:
        CanaryConfig.from_kayenta(kayenta(critical="true"), source="svc.json")
    assert str(err.value) == (
        "svc.json: metric 'p99' (metrics[1]): analysisConfigurations.canary.critical: "
        "'true' is not a boolean; write true or false, without quotes"
    )
    with pytest.raises(ConfigError, match=r"canary\.mustHaveData: 1 is not a boolean"):
        CanaryConfig.from_kayenta(kayenta(mustHaveData=1))


def test_ints_accepted_where_floats_are_expected() -> None:
    c = canary_of(effectSize={"allowedIncrease": 2, "criticalIncrease": 3})
    assert c.effect_size.allowed_increase == 2.0
    assert isinstance(c.effect_size.allowed_increase, float)
    assert c.effect_size.critical_increase == 3.0


def test_cles_defaults_are_one_half() -> None:
    e = canary_of(effectSize={"measure": "cles", "allowedIncrease": 0.7}).effect_size
    assert (e.allowed_increase, e.allowed_decrease, e.critical_increase, e.critical_decrease) == (
        0.7,
        0.5,
        0.5,
        0.5,
    )
    assert EffectSize(measure="cles").critical_decrease == 0.5
    assert EffectSize().critical_decrease == 1.0


def test_keyword_construction_validates_and_raises_config_error() -> None:
    assert MetricAnalysisConfig(direction="decrease", critical=True).critical is True
    with pytest.raises(ConfigError, match="direction: 'up' is not one of"):
        MetricAnalysisConfig(direction="up")
    with pytest.raises(ConfigError, match="critical: 'yes' is not a boolean"):
        MetricAnalysisConfig(critical="yes")
    with pytest.raises(ConfigError, match="outlier_factor: 0 is out of range; it must be > 0"):
        Outliers(outlier_factor=0)
    with pytest.raises(ConfigError, match="not a finite number"):
        EffectSize(allowed_increase=float("nan"))


def test_models_are_frozen() -> None:
    c = MetricAnalysisConfig()
    with pytest.raises(Exception, match="frozen"):
        c.critical = True  # type: ignore[misc]
    weights = ClassifierConfig(group_weights={"a": 50}).group_weights
    with pytest.raises(TypeError):
        weights["a"] = 1  # type: ignore[index]


def test_metric_without_query_and_without_scope_name() -> None:
    metric = MetricConfig(name="mem")
    assert metric.query is None and metric.scope_name is None and metric.scope == "default"
    assert "scopeName" not in metric.to_kayenta()
    assert MetricConfig(name="mem", scope_name="other").scope == "other"


def test_other_query_keyword_and_kayenta_forms_agree() -> None:
    from_json = (
        CanaryConfig.from_kayenta(
            {"name": "a", "metrics": [{"name": "m", "query": {"type": "atlas", "q": "x,:eq"}}]}
        )
        .metrics[0]
        .query
    )
    assert from_json == OtherQuery(type="atlas", fields={"q": "x,:eq"})
    assert from_json.to_kayenta() == {"type": "atlas", "q": "x,:eq"}
    with pytest.raises(ConfigError, match="PrometheusQuery"):
        OtherQuery(type="prometheus")


def test_full_round_trip_keeps_every_field() -> None:
    query = {
        "type": "prometheus",
        "metricName": "http_requests_total",
        "resourceType": "k8s_container",
        "labelBindings": ['code=~"5.."'],
        "groupByFields": ["pod", "code"],
        "customInlineTemplate": "PromQL:sum(rate(x[1m]))",
        "customFilterTemplate": "t",
        "customFilter": "old",
    }
    canary = {
        "direction": "decrease",
        "nanStrategy": "replace",
        "critical": True,
        "mustHaveData": True,
        "muted": False,
        "effectSize": {
            "measure": "cles",
            "allowedIncrease": 0.6,
            "allowedDecrease": 0.4,
            "criticalIncrease": 0.8,
            "criticalDecrease": 0.2,
        },
        "outliers": {"strategy": "remove", "outlierFactor": 1.5},
    }
    data = {
        "id": "abc",
        "name": "svc",
        "description": "d",
        "configVersion": "2",
        "applications": ["svc"],
        "judge": {"name": "NetflixACAJudge-v1.0", "judgeConfigurations": {"k": [1, {"a": 2}]}},
        "templates": {"t": "a='${scope}'"},
        "metrics": [
            {
                "name": "m",
                "query": query,
                "groups": ["g"],
                "analysisConfigurations": {"canary": canary},
                "scopeName": "default",
            }
        ],
        "classifier": {
            "groupWeights": {"g": 100.0},
            "scoreThresholds": {"pass": 90.0, "marginal": 50.0},
        },
        "createdTimestamp": 1,
        "updatedTimestamp": 2,
        "createdTimestampIso": "2024-01-01T00:00:00Z",
        "updatedTimestampIso": "2024-01-02T00:00:00Z",
    }
    config = CanaryConfig.from_kayenta(data)
    assert config.to_kayenta() == data
    assert json.loads(json.dumps(config.to_kayenta())) == data
    assert config.metric("m").query.custom_filter == "old"
    assert config.judge.judge_configurations["k"][1]["a"] == 2


def test_absent_classifier_and_judge() -> None:
    config = CanaryConfig.from_kayenta({"name": "x", "metrics": []})
    assert dict(config.classifier.group_weights) == {}
    assert config.classifier.score_thresholds is None
    assert config.judge.name == "NetflixACAJudge-v1.0"
    assert CanaryConfig.from_kayenta(config.to_kayenta()) == config


def test_wrong_shapes_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="must be a mapping"):
        CanaryConfig.from_kayenta([])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^<dict>: metrics: 'cpu' is not a list"):
        CanaryConfig.from_kayenta({"name": "x", "metrics": "cpu"})
    with pytest.raises(ConfigError, match=r"metrics\[0\]\): name: required key is missing"):
        CanaryConfig.from_kayenta({"name": "x", "metrics": [{"groups": []}]})
    with pytest.raises(ConfigError, match=r"classifier\.groupWeights\.g: 'lots' is not a number"):
        CanaryConfig.from_kayenta({"name": "x", "classifier": {"groupWeights": {"g": "lots"}}})
