"""canary.analysis.look: one look assessed (guards -> judge -> decision), pure, the same way
for a release's looks, a re-analysis and a backtest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from canary.analysis import Action, Earlier, LookPlan, Observation, assess, judgement_windows
from canary.analysis.windows import JudgementWindow
from canary.config import AnalysisPlan, CanaryConfig
from canary.config.release import ReleaseSpec
from canary.values.counts import CountsPair, RatioCounts
from canary.values.series import MetricPair, Series

REPO = Path(__file__).resolve().parents[2]
KAYENTA = CanaryConfig.load(REPO / "deployments" / "canary-configs" / "goldengoose-kayenta.yaml")
SEQUENTIAL = CanaryConfig.load(REPO / "deployments" / "canary-configs" / "goldengoose.yaml")
START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
PLAN = AnalysisPlan.model_validate({"lifetime": "3m", "interval": "1m", "step": "1s",
                                    "thresholds": {"pass": 95, "marginal": 75}})  # fmt: skip


def _series(values: np.ndarray) -> Series:
    return Series(tags={}, values=values, start=START, end=START + timedelta(seconds=60), step=1,
                  query="q")  # fmt: skip


def _pairs(config: CanaryConfig, *, slower: str | None = None) -> tuple[MetricPair, ...]:
    rng = np.random.default_rng(1)
    out = []
    for metric in config.metrics:
        control = rng.normal(0.05, 0.002, 60)
        experiment = rng.normal(0.05, 0.002, 60) * (6 if metric.name == slower else 1)
        out.append(MetricPair(name=metric.name, tags={}, control=_series(control),
                              experiment=_series(experiment)))  # fmt: skip
    return tuple(out)


def _looks(config: CanaryConfig = KAYENTA) -> LookPlan:
    return LookPlan.for_release(PLAN, config, start=START)


def test_a_release_plan_has_every_window_and_the_lifetime() -> None:
    looks = _looks()
    assert looks.windows == judgement_windows(PLAN, start=START)
    assert looks.looks == 3 and looks.lifetime == timedelta(minutes=3)
    assert looks.progress(START + timedelta(minutes=1.5), START) == 50.0


def test_a_healthy_look_continues_and_the_last_promotes() -> None:
    looks = _looks()
    first = assess(Observation(looks.windows[0], _pairs(KAYENTA)), looks, readiness={})
    assert first.decision.action is Action.CONTINUE and not first.decision.final
    assert [g.name for g in first.judgement.guards] == ["readiness", "traffic"]
    last = assess(Observation(looks.windows[2], _pairs(KAYENTA)), looks, readiness={},
                  earlier=first.earlier)  # fmt: skip
    assert last.decision.action is Action.PROMOTE and last.decision.final
    assert last.judgement.summary_score == 100.0


def test_a_slower_canary_fails_fast() -> None:
    looks = _looks()
    found = assess(Observation(looks.windows[0], _pairs(KAYENTA, slower="latency-p50")), looks,
                   readiness={})  # fmt: skip
    assert found.decision.action is Action.ROLL_BACK and found.decision.early
    assert "at or below the marginal threshold 75" in found.decision.reason


def test_a_track_not_serving_fails_the_readiness_guard() -> None:
    looks = _looks()
    found = assess(Observation(looks.windows[0], _pairs(KAYENTA)), looks,
                   readiness={"baseline": None, "canary": "the canary process is not running"})  # fmt: skip
    assert found.decision.action is Action.ROLL_BACK
    assert "the canary process is not running" in found.decision.reason


def test_a_single_look_has_no_guards() -> None:
    window = _looks().windows[0]
    found = assess(Observation(window, _pairs(KAYENTA)), LookPlan.single(KAYENTA, window))
    assert found.judgement.guards == ()
    assert found.decision.action is Action.PROMOTE  # one look: the last, no thresholds given


def _counts(requests: float, errors: float) -> tuple[CountsPair, ...]:
    side = RatioCounts(events=errors, total=requests)
    return tuple(CountsPair(name=m.name, control=side, experiment=side) for m in SEQUENTIAL.metrics
                 if m.evidence == "ratio")  # fmt: skip


def test_earlier_remembers_the_requests_and_every_look_s_counts() -> None:
    window = _looks(SEQUENTIAL).windows[0]
    first = Observation(window, counts=_counts(100, 1), requests=(100.0, 100.0))
    second = Observation(window, counts=_counts(200, 2), requests=None)
    memory = Earlier().then(first).then(second)
    assert memory.requests == (100.0, 100.0)  # a look without a counter keeps the last
    assert memory.counts == (first.counts, second.counts)


def test_the_release_spec_plan_is_the_one_judged_with(tmp_path: Path) -> None:
    spec = ReleaseSpec.from_data({"app": "shop", "canary_config": str(REPO / "deployments" /
                                  "canary-configs" / "goldengoose-kayenta.yaml"),
                                  "analysis": {"lifetime": "2m", "interval": "1m",
                                               "minAnalysis": "1m", "thresholds": {"pass": 95}}},
                                 tmp_path / "shop.yaml")  # fmt: skip
    looks = LookPlan.for_release(spec.analysis, KAYENTA, start=START)
    assert looks.min_analysis == timedelta(minutes=1) and looks.looks == 2
    assert isinstance(looks.windows[0], JudgementWindow)
