"""canary.analysis.ending: a release's outcome from what production runs, read back, plus
aborted when an operator aborted it and production is unchanged."""

from __future__ import annotations

import pickle

import pytest

from canary.analysis import Action, Decision, ReleaseNotPromoted, ReleaseResult, release_end
from canary.values.outcome import Outcome

NEW, OLD = "img:new", "img:old"
JUDGED = Decision(Action.ROLL_BACK, "score 50 after look 1 of 3", True)
PROMOTE = Decision(Action.PROMOTE, "score 100", True)
ABORT = Decision(Action.ROLL_BACK, "aborted by alice (canary abort) before look 2 of 3", True,
                 manual=True, aborted=True)  # fmt: skip


@pytest.mark.parametrize(("decision", "now", "outcome", "reason"), [
    (PROMOTE, NEW, Outcome.PROMOTED, "score 100"),
    (JUDGED, OLD, Outcome.ROLLED_BACK, "score 50 after look 1 of 3"),
    (ABORT, OLD, Outcome.ABORTED, ABORT.reason),
    # production changed under an abort: what production runs decides, not the intent
    (ABORT, "img:other", Outcome.ROLLED_BACK,
     f"{ABORT.reason}; production runs img:other (read back), not {OLD}"),
    (PROMOTE, OLD, Outcome.ROLLED_BACK, "score 100"),  # meant to promote; production did not change
])  # fmt: skip
def test_the_outcome_is_what_production_runs(decision: Decision, now: str, outcome: Outcome,
                                             reason: str) -> None:  # fmt: skip
    assert release_end(decision, decision.reason, image=NEW, before=OLD, now=now) == (outcome, reason)


def test_production_that_cannot_be_read_back_is_a_rollback() -> None:
    for decision in (PROMOTE, ABORT):
        outcome, reason = release_end(decision, "why", image=NEW, before=OLD, now=None,
                                      read_error="PlatformError: timeout")  # fmt: skip
        assert outcome is Outcome.ROLLED_BACK
        assert reason == "why; production could not be read back (PlatformError: timeout)"


def test_a_run_that_did_not_promote_carries_its_result_as_an_exception() -> None:
    result = ReleaseResult(app="shop", commit="c" * 40, image=NEW, outcome="rolled-back",
                           score=None, reason="no verdict", headline="rolled back: no verdict")  # fmt: skip
    carried = ReleaseNotPromoted(result)
    assert str(carried) == "rolled back: no verdict" and carried.result == result
    again = pickle.loads(pickle.dumps(carried))  # a persisted state's data is pickled
    assert isinstance(again, ReleaseNotPromoted) and again.result == result
