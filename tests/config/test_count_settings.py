"""The sequential judge's per-metric settings toleranceOn (histograms) and safeRate (ratios):
read from analysisConfigurations.canary, checked against the metric's kind, written back."""

from __future__ import annotations

import json
from typing import Any

import pytest

from canary.config import CanaryConfig
from canary.errors import ConfigError


def config(rates: dict[str, Any] | None = None, latency: dict[str, Any] | None = None,
           judge: str = "sequential-v1") -> dict[str, Any]:  # fmt: skip
    return {
        "name": "shop",
        "judge": {"name": judge},
        "metrics": [
            {"name": "error-rate",
             "query": {"type": "prometheus", "ratio": {"events": 'req_total{code=~"5.."}', "total": "req_total"}},
             "analysisConfigurations": {"canary": {"direction": "increase", **(rates or {})}}},
            {"name": "latency",
             "query": {"type": "prometheus", "histogram": {"buckets": "req_seconds_bucket", "unit": "s"}},
             "analysisConfigurations": {"canary": {"direction": "increase", **(latency or {})}}},
        ],
    }  # fmt: skip


def test_absent_settings_are_none_and_stay_out_of_kayenta_json() -> None:
    loaded = CanaryConfig.from_yaml_data(config())
    assert loaded.metric("latency").canary.tolerance_on is None  # the judge takes "quantile"
    assert loaded.metric("error-rate").canary.safe_rate is None
    for metric in loaded.to_kayenta()["metrics"]:
        assert not {"toleranceOn", "safeRate"} & set(metric["analysisConfigurations"]["canary"])


def test_settings_load_and_round_trip() -> None:
    loaded = CanaryConfig.from_yaml_data(config({"safeRate": 0.01}, {"toleranceOn": "share"}))
    assert loaded.metric("error-rate").canary.safe_rate == 0.01
    assert loaded.metric("latency").canary.tolerance_on == "share"
    out = loaded.to_kayenta()
    assert out["metrics"][0]["analysisConfigurations"]["canary"]["safeRate"] == 0.01
    assert out["metrics"][1]["analysisConfigurations"]["canary"]["toleranceOn"] == "share"
    assert CanaryConfig.from_kayenta(json.loads(json.dumps(out))) == loaded
    quantile = CanaryConfig.from_yaml_data(config(latency={"toleranceOn": "quantile"}))
    assert quantile.metric("latency").canary.tolerance_on == "quantile"


@pytest.mark.parametrize(
    ("rates", "latency", "message"),
    [
        ({"toleranceOn": "share"}, {},
         "shop: metric 'error-rate' (metrics[0]): analysisConfigurations.canary.toleranceOn applies "
         "to histogram metrics only (what a latency tolerance bounds), and 'error-rate' is a ratio "
         "metric: remove toleranceOn"),
        ({}, {"safeRate": 0.01},
         "shop: metric 'latency' (metrics[1]): analysisConfigurations.canary.safeRate applies to "
         "ratio metrics only (a rate the canary may always have), and 'latency' is a histogram "
         "metric: remove safeRate"),
        ({"safeRate": 0.01, "direction": "either"}, {},
         "shop: metric 'error-rate' (metrics[0]): analysisConfigurations.canary.safeRate bounds the "
         "canary's rate from above, so metric 'error-rate' needs direction: increase (it has "
         "'either'): set direction: increase, or remove safeRate"),
        ({}, {"toleranceOn": "p99"},
         "shop: metric 'latency' (metrics[1]): analysisConfigurations.canary.toleranceOn: 'p99' is "
         "not one of quantile, share"),
        ({"safeRate": 1}, {},
         "shop: metric 'error-rate' (metrics[0]): analysisConfigurations.canary.safeRate: 1 is out "
         "of range; it must be < 1"),
        ({"safeRate": 0}, {}, "safeRate: 0 is out of range; it must be > 0"),
        ({"safeRate": "1%"}, {}, "safeRate: '1%' is not a number"),
    ],
    ids=["toleranceOn-on-ratio", "safeRate-on-histogram", "safeRate-not-increase", "bad-toleranceOn",
         "safeRate-1", "safeRate-0", "safeRate-text"],
)
def test_misplaced_or_bad_settings_name_the_metric_and_the_fix(rates: dict[str, Any], latency: dict[str, Any],
                                                                  message: str) -> None:  # fmt: skip
    for load in (CanaryConfig.from_yaml_data, CanaryConfig.from_kayenta):  # both modes: our extension
        with pytest.raises(ConfigError) as err:
            load(config(rates, latency), source="shop")
        assert message in str(err.value)


def test_a_series_metric_rejects_them_in_yaml_but_kayenta_json_loads_unchanged() -> None:
    series = {
        "name": "kayenta-style",
        "metrics": [{"name": "p99", "query": {"type": "prometheus", "metricName": "p99"},
                     "analysisConfigurations": {"canary": {"toleranceOn": "share", "safeRate": 0.5}}}],
    }  # fmt: skip
    with pytest.raises(ConfigError, match="toleranceOn applies to histogram metrics only .* 'p99' is a series metric"):
        CanaryConfig.from_yaml_data(series, source="svc.yaml")
    loaded = CanaryConfig.from_kayenta(series, source="svc.json")  # the Kayenta judge ignores them
    assert loaded.metric("p99").canary.tolerance_on == "share"
