"""canary.analysis.hold: which failures are held, the held message, how a hold ends. Pure."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from canary.analysis.decision import Action, Decision, GateAnswer
from canary.analysis.hold import held_decision, held_message, may_hold
from canary.judge.classify import Classification

FAILED = Decision(Action.ROLL_BACK, "regression proven after look 2 of 4: latency High", True)


def _judgement(*classes: Classification, guards: tuple[str, ...] = (),
               muted: bool = False) -> Any:  # fmt: skip
    """A stand-in for an IntervalJudgement: its metrics' classifications and failed guards."""
    metrics = [SimpleNamespace(classification=c, metric=SimpleNamespace(
        canary=SimpleNamespace(muted=muted))) for c in classes]  # fmt: skip
    return SimpleNamespace(metrics=metrics, failed_guards=list(guards))


def test_a_judged_failure_is_held() -> None:
    assert may_hold(FAILED, _judgement(Classification.HIGH, Classification.PASS))


@pytest.mark.parametrize(("decision", "judgement"), [
    (FAILED, _judgement(Classification.HIGH, guards=("readiness",))),  # the canary does not serve
    (FAILED, _judgement(Classification.NODATA)),  # no data is not a regression
    (FAILED, None),  # no look was made
    (Decision(Action.ROLL_BACK, "aborted", True, manual=True, aborted=True), _judgement()),
    (Decision(Action.ROLL_BACK, "a person chose", True, manual=True), _judgement()),
    (Decision.unjudged("Prometheus is unreachable", look=1, looks=4), _judgement()),
    (Decision(Action.PROMOTE, "fine", True), _judgement(Classification.PASS)),
    (Decision(Action.CONTINUE, "go on", False), _judgement(Classification.PASS)),
])  # fmt: skip
def test_what_is_not_held(decision: Decision, judgement: Any) -> None:
    assert not may_hold(decision, judgement)


def test_a_muted_metric_without_data_does_not_stop_a_hold() -> None:
    judgement = _judgement(Classification.NODATA, muted=True)
    judgement.metrics.append(_judgement(Classification.HIGH).metrics[0])
    assert may_hold(FAILED, judgement)


def test_the_held_message_answers_first() -> None:
    text = held_message(app="goldengoose", commit="4b2b528aa", version="3.0.0",
                        cause="latency +59.7% at p99", timeout_seconds=3600)  # fmt: skip
    assert text.startswith("goldengoose 3.0.0 (4b2b528) held: latency +59.7% at p99 · approve "
                           "or reject within 1h0m0s")  # fmt: skip
    assert held_message(app="a", commit="0123456789", version=None, cause="x",
                        timeout_seconds=5).startswith("a (0123456) held: x")  # fmt: skip


@pytest.mark.parametrize(("said", "action", "overridden", "words"), [
    ("promote", Action.PROMOTE, True, "overriding a failed analysis: latency +59.7%; a person approved (ok)"),
    ("roll back", Action.ROLL_BACK, False, "held after a failed analysis, a person rejected it (ok): latency"),
    (None, Action.ROLL_BACK, False, "held after a failed analysis, and nobody answered within 1h0m0s"),
])  # fmt: skip
def test_how_a_hold_ends(said: Any, action: Action, overridden: bool, words: str) -> None:
    answer = GateAnswer("held", "latency +59.7%", said, "ok" if said else "", timeout_seconds=3600)
    decision = held_decision(answer, prior=FAILED, held_seconds=75, canary_share=20)
    assert decision.action is action and decision.final and decision.manual
    assert decision.overridden is overridden
    assert words in decision.reason
    assert decision.reason.endswith("(held 1m15s at canary share 20%, traffic unchanged while held)")
