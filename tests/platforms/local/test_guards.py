"""The guards on the real local platform: a killed canary, a starved canary and a missing
series each stop the release at the next look, with a reason that says so.

Real goldengoose processes behind a real HAProxy under real load, scraped by a real
Prometheus; every look is what the canary-release flow does (counts since the analysis
began, request counts, readiness, judge, decide), called as library functions.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from canary.analysis.decision import Action, Decision, decide
from canary.config import CanaryConfig
from canary.judge import judge
from canary.judge.guards import evaluate_guards
from canary.metrics.collect import collect_counts, count_requests, unseen_tracks
from canary.metrics.prometheus import PrometheusMetricSource
from canary.values.scope import scope_pair
from canary.values.weights import Weights
from examples.goldengoose.load import drive
from tests.platforms.local.conftest import APP, Platform
from tests.platforms.local.test_judged_release import _wait_scraped_past

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
CONFIG_PATH = ROOT / "deployments" / "canary-configs" / "goldengoose.yaml"
CONFIG = CanaryConfig.load(CONFIG_PATH)
SPLIT = Weights(primary=50, baseline=25, canary=25)
THRESHOLDS = {"pass": 95, "marginal": 75}
LOOK_SECONDS, LOOKS = 4.0, 5


class Load:
    """Steady load through HAProxy in a thread, bounded in count and time."""

    def __init__(self, url: str, seconds: float) -> None:
        self.thread = threading.Thread(
            target=drive, args=(url,), kwargs={"rate": 80, "duration": seconds,
                                               "deadline": seconds + 10}, daemon=True)  # fmt: skip

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.thread.join(timeout=60)


@pytest.fixture
def source(platform: Platform) -> Iterator[PrometheusMetricSource]:
    with PrometheusMetricSource(platform.stack.prometheus_url) as s:
        yield s


def _wait_requests_visible(source: PrometheusMetricSource, config: CanaryConfig, since: datetime,
                           timeout: float = 30) -> None:  # fmt: skip
    """Until Prometheus shows both tracks' requests since `since` (a new target is scraped
    only after Prometheus' discovery hands it over, up to ~5 s)."""
    deadline = time.monotonic() + timeout
    while True:
        control, experiment = scope_pair(baseline="baseline", canary="canary", start=since,
                                          end=datetime.now(UTC), step=1)  # fmt: skip
        unseen = unseen_tracks(source, config, control, experiment)
        if not unseen:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"no requests of {unseen} visible in Prometheus after {timeout} s")
        time.sleep(0.25)


def _release(p: Platform, source: PrometheusMetricSource, config: CanaryConfig,
             fault: Callable[[int], None] = lambda look: None) -> tuple[int, Decision]:  # fmt: skip
    """Baseline + canary (both v2: an unchanged canary), looks until a final decision.

    `fault(look)` runs before each look's wait. Returns (look, decision)."""
    p.workloads.deploy(APP, "baseline", p.images.v2)
    p.workloads.deploy(APP, "canary", p.images.v2)
    p.workloads.wait_ready(APP, "baseline", 20)
    p.workloads.wait_ready(APP, "canary", 20)
    p.router.set_weights(APP, SPLIT)
    previous = (0.0, 0.0)
    with Load(p.url, LOOK_SECONDS * LOOKS + 2):
        _wait_requests_visible(source, config, datetime.now(UTC))  # as the flow does
        start = datetime.now(UTC)
        for look in range(1, LOOKS + 1):
            fault(look)
            end = start + timedelta(seconds=LOOK_SECONDS * look)
            while datetime.now(UTC) < end:
                time.sleep(0.1)
            _wait_scraped_past(p.stack.prometheus_url, end)
            control, experiment = scope_pair(baseline="baseline", canary="canary", start=start,
                                              end=end, step=1)  # fmt: skip
            counts = collect_counts(source, config, control, experiment)
            requests = count_requests(source, config, control, experiment)
            readiness = {t: p.workloads.serving(APP, t) for t in ("baseline", "canary")}
            guards = evaluate_guards(readiness=readiness, requests=requests, previous=previous,
                                     min_requests=config.guards.min_requests,
                                     split_alpha=config.guards.split_alpha)  # fmt: skip
            previous = requests or previous
            result = judge(config, [], thresholds=THRESHOLDS, counts=counts, guards=guards)
            decision = decide(result, look=look, looks=LOOKS, elapsed=end - start)
            if decision.final:
                return look, decision
    raise AssertionError("no final decision")  # pragma: no cover - decide() always ends


def test_unchanged_canary_passes_every_guard(platform: Platform, source) -> None:
    look, decision = _release(platform, source, CONFIG)
    assert decision.action is Action.PROMOTE, decision.reason
    assert look == LOOKS and "guard" not in decision.reason


def test_killed_canary_fails_at_the_next_look(platform: Platform, source) -> None:
    p = platform

    def kill(look: int) -> None:
        if look == 3:
            canary = p.workloads.get(APP, "canary")
            assert canary is not None and canary.alive()
            os.kill(canary.pid, signal.SIGKILL)  # a process this test's platform started

    look, decision = _release(p, source, CONFIG, kill)
    assert decision.action is Action.ROLL_BACK
    assert look == 3, decision.reason
    assert "guard failed after look 3" in decision.reason
    assert "readiness" in decision.reason and "canary process" in decision.reason


def test_starved_canary_fails_the_split_guard(platform: Platform, source) -> None:
    p = platform

    def starve(look: int) -> None:
        if look == 1:  # a router that gives the canary a fifth of the baseline's share
            p.router._do(f"set weight {APP}/canary 5")

    look, decision = _release(p, source, CONFIG, starve)
    assert decision.action is Action.ROLL_BACK
    assert look <= 2, decision.reason
    assert "sample-ratio mismatch" in decision.reason


def test_missing_series_is_never_promoted_blind(platform: Platform, source, tmp_path: Path) -> None:
    data = yaml.safe_load(CONFIG_PATH.read_text())
    latency = next(m for m in data["metrics"] if m["name"] == "latency")
    # a selector the canary's series do not match (as when a build stops exporting it)
    latency["query"]["histogram"]["buckets"] = (
        'goldengoose_request_duration_seconds_bucket{track="${scope}",track!="canary"}')
    path = tmp_path / "missing.yaml"
    path.write_text(yaml.safe_dump(data))
    look, decision = _release(platform, source, CanaryConfig.load(path))
    assert decision.action is Action.ROLL_BACK and look == 1
    assert "promoted blind" in decision.reason and "no series for the canary" in decision.reason
