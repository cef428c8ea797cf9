"""canary.analysis.decision: the threshold rules and the stop / continue / promote decision."""

from __future__ import annotations

import math

import pytest

from canary.analysis.decision import (
    Action,
    Decision,
    GateAnswer,
    fails_fast,
    final_decision,
    in_marginal_band,
)
from canary.config import Thresholds
from canary.values.events import OperatorCommand


@pytest.mark.parametrize(
    ("score", "thresholds", "stop"),
    [
        (75.0, Thresholds(pass_=90, marginal=75), True),  # at marginal: stop
        (74.99, Thresholds(pass_=90, marginal=75), True),
        (75.01, Thresholds(pass_=90, marginal=75), False),
        (0.0, Thresholds(pass_=90), False),  # no marginal: never early
        (0.0, None, False),
        (math.nan, Thresholds(pass_=90, marginal=75), True),  # fail closed
    ],
)
def test_fails_fast(score: float, thresholds: Thresholds | None, stop: bool) -> None:
    assert fails_fast(score, thresholds) is stop


@pytest.mark.parametrize(
    ("score", "thresholds", "passed", "reason"),
    [
        (None, Thresholds(pass_=90, marginal=75), False, "no successful canary judgements"),
        (None, None, False, "no successful canary judgements"),
        (10.0, None, True, "no thresholds"),
        (10.0, Thresholds(), True, "no thresholds"),
        (75.0, Thresholds(pass_=90, marginal=75), False, "at or below the marginal threshold 75"),
        (80.0, Thresholds(marginal=75), True, "no pass threshold"),
        (80.0, Thresholds(pass_=90, marginal=75), False, "below the pass threshold 90"),
        (89.99, Thresholds(pass_=90), False, "below the pass threshold 90"),
        (90.0, Thresholds(pass_=90, marginal=75), True, "reaches the pass threshold 90"),
        (100.0, Thresholds(pass_=90, marginal=75), True, "reaches the pass threshold 90"),
        (math.nan, Thresholds(pass_=90, marginal=75), False, "not a number"),
    ],
)
def test_final_decision(
    score: float | None, thresholds: Thresholds | None, passed: bool, reason: str
) -> None:
    result, why = final_decision(score, thresholds)
    assert result is passed
    assert reason in why


@pytest.mark.parametrize(
    ("score", "passing", "marginal", "expected"),
    [
        (80.0, 95, 75, True),
        (75.0, 95, 75, False),  # at marginal: fails outright (Kayenta's "at or below")
        (95.0, 95, 75, False),  # at pass: passes outright
        (50.0, 95, None, True),  # no marginal threshold: everything below pass is the band
        (80.0, None, 75, False),  # no pass threshold: above marginal passes outright
        (float("nan"), 95, 75, False),
        (None, 95, 75, False),
    ],
)
def test_is_marginal_band(score, passing, marginal, expected):
    assert in_marginal_band(score, Thresholds(pass_=passing, marginal=marginal)) is expected


# -- a person's decisions: operator commands and manual gates ------------------------------

_RAN = Decision(Action.CONTINUE, "no decision after look 1 of 3; continuing", False)


def test_an_operator_promote_skips_the_rest_of_the_analysis() -> None:
    command = OperatorCommand(app="shop", action="promote", run="r1", by="alice")
    decision = Decision.commanded(command, look=2, looks=3)
    assert decision.action is Action.PROMOTE and decision.final and decision.manual
    assert not decision.aborted
    assert decision.reason == ("promoted by alice (canary promote) before look 2 of 3: the "
                               "rest of the analysis skipped")  # fmt: skip


def test_an_operator_abort_is_an_abort() -> None:
    decision = Decision.commanded(OperatorCommand(app="shop", action="abort", run="r1"),
                                  look=1, looks=3)  # fmt: skip
    assert decision.action is Action.ROLL_BACK and decision.aborted and decision.manual
    assert decision.reason == "aborted by an operator (canary abort) before look 1 of 3"


@pytest.mark.parametrize(("timeout", "words"), [(300, "5m0s"), (3, "3s"), (90, "1m30s"),
                                                (3723, "1h2m3s")])  # fmt: skip
def test_nobody_at_a_gate_rolls_back_and_says_so(timeout: int, words: str) -> None:
    answer = GateAnswer("before-promotion", "Promote?", None, timeout_seconds=timeout)
    decision = Decision.from_gate(answer, prior=Decision(Action.PROMOTE, "fine", True))
    assert decision.action is Action.ROLL_BACK and decision.final and decision.manual
    assert not answer.go_on
    assert f"nobody answered the before-promotion gate within {words}" in decision.reason


def test_a_person_continues_after_a_look() -> None:
    answer = GateAnswer("after-look", "Look 1 passed. Continue?", "continue", "ok")
    assert Decision.from_gate(answer, prior=_RAN) is _RAN


def test_a_person_stops_after_a_look() -> None:
    answer = GateAnswer("after-look", "Look 1 passed. Continue?", "roll back", "p99 looks odd")
    decision = Decision.from_gate(answer, prior=_RAN)
    assert decision.action is Action.ROLL_BACK and decision.final and decision.early
    assert decision.reason == "Look 1 passed. Continue? A person chose to roll back (p99 looks odd)"


@pytest.mark.parametrize(("said", "action", "words"), [
    ("promote", Action.PROMOTE, "A person promoted by manual judgement (seen)"),
    ("roll back", Action.ROLL_BACK, "A person rolled back by manual judgement (seen)"),
])  # fmt: skip
def test_a_manual_judgement(said: str, action: Action, words: str) -> None:
    answer = GateAnswer("judgement", "Marginal score 75.0: promote or roll back?", said, "seen")  # type: ignore[arg-type]
    decision = Decision.from_gate(answer, prior=Decision(Action.ROLL_BACK, "marginal", True))
    assert decision.action is action and decision.manual
    assert decision.reason.endswith(words)


def test_an_answer_that_does_not_fit_the_gate_rolls_back() -> None:
    answer = GateAnswer("before-promotion", "Promote?", "continue")
    assert Decision.from_gate(answer, prior=_RAN).action is Action.ROLL_BACK


def test_unreadable_metrics_roll_back_without_a_verdict() -> None:
    decision = Decision.unjudged("Prometheus at http://p:9090 is unreachable", look=2, looks=3)
    assert decision.action is Action.ROLL_BACK and decision.final and not decision.judged
    assert decision.reason == ("no verdict: look 2 of 3 could not be made: Prometheus at "
                               "http://p:9090 is unreachable")  # fmt: skip
