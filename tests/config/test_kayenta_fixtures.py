"""Every real Kayenta config loads (or is rejected) exactly as Kayenta would have it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from canary.config import CanaryConfig, OtherQuery, PrometheusQuery
from canary.errors import ConfigError
from tests.config.kayenta_fixtures import CONFIGS, DUPLICATED, REQUESTS

pytestmark = pytest.mark.needs("kayenta")

ALL = sorted(p.name for p in CONFIGS.glob("*.json"))
LOADABLE = [name for name in ALL if name != DUPLICATED]


def load(name: str) -> CanaryConfig:
    return CanaryConfig.load(CONFIGS / name)


def test_the_fixture_directory_is_complete() -> None:
    assert len(ALL) == 24
    assert DUPLICATED in ALL


@pytest.mark.parametrize("name", LOADABLE)
def test_every_config_loads_and_round_trips(name: str) -> None:
    raw = json.loads((CONFIGS / name).read_text())
    config = load(name)
    assert [m.name for m in config.metrics] == [m["name"] for m in raw["metrics"]]
    assert [m.groups for m in config.metrics] == [tuple(m["groups"]) for m in raw["metrics"]]
    assert [m.query.type for m in config.metrics] == [m["query"]["type"] for m in raw["metrics"]]
    assert config.name == raw.get("name")
    # Through real JSON text and back: equal, and hashable (frozen all the way down).
    again = CanaryConfig.from_kayenta(json.loads(json.dumps(config.to_kayenta())), source=name)
    assert again == config
    assert hash(again) == hash(config)


def test_duplicated_metric_name_is_rejected_like_kayenta() -> None:
    with pytest.raises(ConfigError) as err:
        load(DUPLICATED)
    message = str(err.value)
    assert message.endswith("Canary config 'broken-config': metric name 'mem' is duplicated.")
    assert str(CONFIGS / DUPLICATED) in message


def test_adhoc_request_canary_config_loads() -> None:
    request = json.loads((REQUESTS / "scratch-newrelic_adhoc_canary.json").read_text())
    config = CanaryConfig.from_kayenta(request["canaryConfig"])
    assert [m.name for m in config.metrics] == ["errorRate", "transactionTime"]
    assert config.metrics[0].query == OtherQuery(
        type="newrelic",
        fields={
            "select": "SELECT count(*)/uniqueCount(host) FROM Transaction",
            "q": "httpResponseCode >= '500'",
        },
    )
    assert dict(config.classifier.group_weights) == {"err": 70.0, "app": 30.0}
    assert config.classifier.score_thresholds is None


def test_prometheus_integration_test_config() -> None:
    config = load("kayenta-integration-tests-prometheus-integration-test-cpu.json")
    metric = config.metric("CPU usage for service")
    assert metric.query == PrometheusQuery(
        metric_name="integration_test_cpu", custom_filter_template="standard-template"
    )
    assert config.templates["standard-template"] == "namespace='${namespace}', scope='${scope}'"
    assert metric.canary.critical is True
    assert metric.canary.direction == "increase"
    assert metric.canary.nan_strategy == "remove"
    assert metric.canary.muted is False
    assert metric.scope_name == "default"
    assert config.judge.name == "NetflixACAJudge-v1.0"
    assert config.config_version is None
    assert config.applications == ()
    assert dict(config.classifier.group_weights) == {"pod-group": 100.0}
    thresholds = config.classifier.score_thresholds
    assert thresholds is not None and (thresholds.pass_, thresholds.marginal) == (75.0, 50.0)
    assert config.prometheus_metrics() == (metric,)


def test_preview_config_template_uses_pod_name() -> None:
    config = load(
        "history-kayenta-integration-tests-preview-canary-config-prometheus-cpu-only.json"
    )
    assert config.templates["standard-template"] == "namespace='${namespace}', pod_name='${scope}'"


def test_muted_metric() -> None:
    config = load("kayenta-integration-tests-prometheus-muted-metric.json")
    failing, ok = config.metrics
    assert (failing.canary.muted, failing.canary.critical) == (True, True)
    assert (ok.canary.muted, ok.canary.critical) == (False, True)


def test_newrelic_effect_sizes_and_nan_strategies() -> None:
    config = load("scratch-newrelic_canary_config.json")
    apdex = config.metric("Apdex").canary
    assert apdex.direction == "decrease"
    assert apdex.effect_size.measure == "meanRatio"
    assert apdex.effect_size.allowed_decrease == 1.0
    assert apdex.effect_size.critical_decrease == 1.0
    assert config.metric("Error Rate").canary.nan_strategy == "replace"
    assert config.metric("Transaction Time").canary.effect_size.allowed_increase == 1.0
    assert config.prometheus_metrics() == ()
    assert config.applications == ("kayentatest",)


def test_config_version_number_and_string_both_become_text() -> None:
    assert load("kayenta-judge-test-config.json").config_version == "1.0"  # the number 1.0
    assert load("scratch-newrelic_canary_config.json").config_version == "1.0"  # "1.0"
    raw = json.loads((CONFIGS / "kayenta-judge-test-config.json").read_text())
    assert raw["configVersion"] == 1.0 and not isinstance(raw["configVersion"], str)


def test_oldest_shape_with_extensions_and_services() -> None:
    config = load("kayenta-atlas-sample-config.json")
    assert config.name is None
    assert config.judge.name == "NetflixACAJudge-v1.0"  # absent judge: Kayenta's default
    cpu = config.metric("cpu")
    assert cpu.query == OtherQuery(type="atlas", fields={"q": "name,CpuRawUser,:eq,:sum"})
    assert cpu.scope_name is None and cpu.scope == "default"
    assert "services" not in config.to_kayenta()


def test_extensions_canary_is_read_like_analysis_configurations() -> None:
    base = {"name": "c", "metrics": [{"name": "m", "groups": []}]}
    old = {**base, "metrics": [{"name": "m", "extensions": {"canary": {"direction": "decrease"}}}]}
    new = {
        **base,
        "metrics": [{"name": "m", "analysisConfigurations": {"canary": {"direction": "decrease"}}}],
    }
    assert CanaryConfig.from_kayenta(old) == CanaryConfig.from_kayenta(new)
    assert CanaryConfig.from_kayenta(old).metrics[0].canary.direction == "decrease"


def test_group_without_weight_and_weight_without_group() -> None:
    judge = load("kayenta-judge-test-config.json")
    assert judge.metric("foo").groups == ("bar",)
    assert "bar" not in judge.classifier.group_weights
    graphite = load("kayenta-graphite-sample-config.json")
    assert graphite.classifier.group_weights["requests"] == 50.0
    assert all("requests" not in m.groups for m in graphite.metrics)


def test_other_stores_keep_every_query_field() -> None:
    wavefront = load("json-formats-md-8-wavefront-MySampleWavefrontCanaryConfig.json")
    assert wavefront.metrics[0].query.fields["summerization"] == "MEAN"
    signalfx = load("json-formats-md-6-signalfx-SignalFxIntegrationTestCanaryConfig.json")
    pairs = signalfx.metric("Bad Request Rate for /v1/some-endpoint").query.fields["queryPairs"]
    assert pairs[0] == {"key": "uri", "value": "/v1/some-endpoint"}
    with pytest.raises(TypeError):
        pairs[0]["key"] = "changed"  # type: ignore[index]


def test_pre_2018_prometheus_fields_are_dropped() -> None:
    config = load("scratch-prometheus_canary_config.json")
    query = config.metrics[0].query
    assert isinstance(query, PrometheusQuery)
    assert query.label_bindings == ('mode=~"user|system"', 'job="node"')
    assert query.group_by_fields == ()
    assert "sumByFields" not in config.to_kayenta()["metrics"][0]["query"]


def test_dredd_judge_and_empty_label_bindings() -> None:
    config = load(
        "json-formats-md-4-prometheus-MySampleK8SPrometheusCanaryConfigWithCustomFilterTemplate.json"
    )
    assert config.judge.name == "dredd-v1.0"
    query = config.metrics[0].query
    assert isinstance(query, PrometheusQuery)
    assert query.label_bindings == ()
    assert config.templates[query.custom_filter_template] == "container_name='${container_name}'"


def test_missing_metric_lookup_is_a_config_error(tmp_path: Path) -> None:
    config = load("json-formats-md-3-prometheus-MySamplePrometheusCanaryConfig.json")
    with pytest.raises(ConfigError, match="no metric named 'mem'.*'cpu'"):
        config.metric("mem")
