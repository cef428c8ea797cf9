"""canary.telemetry.look_event: a look's event carries, per judged metric, the estimate,
its interval ends and the decision threshold in the estimate's unit, and the shares read back."""

from __future__ import annotations

import math

import pytest

from canary.analysis.decision import Action, Decision
from canary.config import CanaryConfig
from canary.judge import judge
from canary.telemetry import look_event
from canary.values.counts import CountsPair, HistogramCounts, RatioCounts
from canary.values.events import ReleaseLook, parse_event
from canary.values.weights import Weights

BOUNDS = (0.01, 0.02, 0.03, 0.05, 0.1, math.inf)
SHARES = (0.05, 0.4, 0.7, 0.95, 0.995, 1.0)
THRESHOLDS = {"pass": 95, "marginal": 75}


def _config() -> CanaryConfig:
    return CanaryConfig.from_yaml_data({
        "name": "shop",
        "judge": {"name": "sequential-v1"},
        "metrics": [
            {"name": "error-rate", "groups": ["errors"],
             "query": {"type": "prometheus", "ratio": {"events": 'req_total{code=~"5.."}', "total": "req_total"}},
             "analysisConfigurations": {"canary": {"direction": "increase", "tolerance": 0.2}}},
            {"name": "latency", "groups": ["latency"],
             "query": {"type": "prometheus", "histogram": {"buckets": "req_seconds_bucket", "unit": "s"}},
             "analysisConfigurations": {"canary": {"direction": "increase", "tolerance": 0.5}}},
            {"name": "p99-bound", "groups": ["flagger"],
             "analysisConfigurations": {"canary": {"thresholdRange": {"max": 0.5}, "muted": True}}},
        ],
        "classifier": {"groupWeights": {"errors": 50, "latency": 50}},
    })  # fmt: skip


def _counts(n: float, errors: float) -> list[CountsPair]:
    hist = HistogramCounts(BOUNDS, tuple(float(round(n * s)) for s in SHARES))
    return [CountsPair("error-rate", RatioCounts(round(n * 0.01), n), RatioCounts(round(n * errors), n)),
            CountsPair("latency", hist, hist)]  # fmt: skip


def test_each_judged_metric_has_its_estimate_interval_and_threshold() -> None:
    judged = judge(_config(), {"p99-bound": ([0.1] * 5, [0.3] * 5)}, thresholds=THRESHOLDS,
                   counts=_counts(20000, 0.03))  # fmt: skip
    event = look_event("shop", look=2, looks=5, judgement=judged, weights=Weights(80, 10, 10),
                       decision=Decision(Action.ROLL_BACK, "errors up", True))  # fmt: skip
    assert (event.look, event.looks, event.primary, event.baseline, event.canary) == (2, 5, 80, 10, 10)
    assert event.action == "roll back"
    by = {m.metric: m for m in event.metrics}
    errors = by["error-rate"]
    # the rate ratio (3 % vs 1 %) with its interval, against 1 + tolerance
    assert errors.estimate == pytest.approx(3.0, rel=0.01)
    assert errors.lower is not None and errors.upper is not None
    assert errors.lower < errors.estimate < errors.upper
    assert errors.lower > 1.2 and errors.threshold == pytest.approx(1.2)
    assert errors.classification == "High"
    latency = by["latency"]
    # the canary's p99 in seconds, against the baseline's p99 x 1.5
    assert latency.estimate is not None and latency.threshold is not None
    assert latency.threshold == pytest.approx(latency.estimate * 1.5)
    bound = by["p99-bound"]
    assert (bound.estimate, bound.threshold, bound.lower, bound.upper) == (pytest.approx(0.3), 0.5, None, None)


def test_the_look_event_reads_back_as_itself() -> None:
    judged = judge(_config(), {"p99-bound": ([0.1] * 5, [0.3] * 5)}, thresholds=THRESHOLDS,
                   counts=_counts(5000, 0.01))  # fmt: skip
    event = look_event("shop", look=1, looks=3, judgement=judged, weights=Weights(90, 5, 5),
                       decision=None)  # fmt: skip
    back = parse_event(ReleaseLook.name, "canary.app.shop", event.payload())
    assert back == event and back.action == ""


def test_a_decrease_threshold_is_below_one() -> None:
    config = CanaryConfig.from_yaml_data({
        "name": "shop", "judge": {"name": "sequential-v1"},
        "metrics": [{"name": "orders", "groups": ["g"],
                     "query": {"type": "prometheus", "ratio": {"events": "orders_total", "total": "req_total"}},
                     "analysisConfigurations": {"canary": {"direction": "decrease", "tolerance": 0.25}}}],
        "classifier": {"groupWeights": {"g": 100}},
    })  # fmt: skip
    counts = [CountsPair("orders", RatioCounts(100, 1000), RatioCounts(100, 1000))]
    judged = judge(config, [], thresholds=THRESHOLDS, counts=counts)
    (orders,) = look_event("shop", look=1, looks=1, judgement=judged, weights=Weights(50, 25, 25),
                           decision=None).metrics  # fmt: skip
    assert orders.threshold == pytest.approx(0.75)
