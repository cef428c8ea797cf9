"""Build → baseline + canary → judge on real scraped metrics → promote or roll back.

Real traffic goes through HAProxy at a 50/25/25 split; Prometheus scrapes the three
processes through the platform's file_sd targets; the shipped goldengoose canary config
judges baseline against canary, and the verdict decides promotion or roll back.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from canary.config import CanaryConfig
from canary.judge import Classification, Verdict, judge
from canary.metrics.collect import collect_pairs
from canary.metrics.prometheus import PrometheusMetricSource
from canary.platforms.local import prometheus as local_prometheus
from canary.values.scope import scope_pair
from canary.values.weights import Weights
from examples.goldengoose.load import drive
from tests.platforms.local.conftest import APP, Platform

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
CONFIG = CanaryConfig.load(ROOT / "deployments" / "canary-configs" / "goldengoose-kayenta.yaml")
THRESHOLDS = {"pass": 95, "marginal": 75}
SPLIT = Weights(primary=50, baseline=25, canary=25)


def _analyse(p: Platform, canary_image: str):
    """Run baseline + canary under load, then judge the window from Prometheus."""
    p.workloads.deploy(APP, "baseline", p.images.v1)
    p.workloads.deploy(APP, "canary", canary_image)
    p.workloads.wait_ready(APP, "baseline", 20)
    p.workloads.wait_ready(APP, "canary", 20)
    p.router.set_weights(APP, SPLIT)
    assert p.router.read_weights(APP) == SPLIT
    start = datetime.now(UTC)
    load = drive(p.url, rate=120, duration=20, deadline=35)
    end = datetime.now(UTC)
    assert load.ok + sum(load.errors.values()) >= 0.95 * load.planned, load.summary()
    assert {"primary", "baseline", "canary"} <= set(load.tracks)
    _wait_scraped_past(p.stack.prometheus_url, end)
    control, experiment = scope_pair(
        baseline="baseline", canary="canary", start=start + timedelta(seconds=6), end=end,
        step=1, extended_scope_params={"rate_window": "5s"},
    )  # fmt: skip
    pairs = collect_pairs(
        PrometheusMetricSource(p.stack.prometheus_url), CONFIG, control, experiment
    )
    return judge(CONFIG, pairs, thresholds=THRESHOLDS)


def _wait_scraped_past(url: str, end: datetime, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    promql = f'timestamp(up{{app="{APP}"}})'
    while True:
        result = local_prometheus.query(url, promql)
        if len(result) >= 3 and min(float(r["value"][1]) for r in result) > end.timestamp() + 1:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"Prometheus did not scrape past {end}: {result}")
        time.sleep(0.25)


def test_good_version_is_judged_pass_and_promoted(platform: Platform) -> None:
    p = platform
    result = _analyse(p, p.images.v2)
    assert result.verdict is Verdict.PASS, result.rows()
    p.workloads.promote(APP, p.images.v2)
    p.workloads.remove(APP, "baseline")
    p.workloads.remove(APP, "canary")
    p.router.rollback(APP)  # all traffic to the (new) primary
    after = drive(p.url, rate=50, duration=2, deadline=10)
    assert after.ok == after.planned
    assert set(after.versions) == {"2.0.0"}, after.versions
    assert set(after.tracks) == {"primary"}


def test_latency_regression_is_judged_fail_and_rolled_back(platform: Platform) -> None:
    p = platform
    old = p.workloads.get(APP, "primary")
    result = _analyse(p, p.images.bad)
    labels = {m.name: m.result.classification for m in result.metrics}
    assert labels["latency-p50"] is Classification.HIGH, result.rows()
    assert result.verdict is Verdict.FAIL
    p.router.rollback(APP)
    assert p.router.read_weights(APP) == Weights.all_primary()
    p.workloads.remove(APP, "baseline")
    p.workloads.remove(APP, "canary")
    assert [w.track for w in p.workloads.list(APP)] == ["primary"]
    assert p.workloads.get(APP, "primary").pid == old.pid  # production untouched
    after = drive(p.url, rate=50, duration=2, deadline=10)
    assert after.ok == after.planned and set(after.versions) == {"1.0.0"}
    assert len(p.marked()) == 1  # only production's process is left
