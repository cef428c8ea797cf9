"""A re-analysis' verdict on a window already past: verified, regressed, or no data.

No data is not a regression. A window in which production served no request (a quiet
night, a scrape that failed, an app that was down) says nothing about the release, so
it gets its own outcome. Only ``regressed`` may emit ``canary.reanalysis.regressed``,
the event that can start the restore automation.
"""

from __future__ import annotations

from enum import StrEnum

from canary.analysis.decision import final_decision
from canary.analysis.look import Observation
from canary.config import Thresholds

__all__ = ["Verification", "missing_data", "verify"]


class Verification(StrEnum):
    """What a re-analysis found about the window it judged."""

    VERIFIED = "verified"
    REGRESSED = "regressed"
    #: nothing to judge: no requests, or no metric with data on both sides
    NO_DATA = "no data"


def missing_data(observation: Observation) -> str | None:
    """Why the window holds nothing to judge, or None when it has data.

    With a request counter, both sides must have served requests. Without one, at least
    one metric must have data on both sides (counts above 0, or series with values).

    Args:
        observation: The window's data.

    Returns:
        The reason in words, or None.
    """
    if observation.requests is not None:
        control, experiment = observation.requests
        empty = [side for side, n in (("control", control), ("experiment", experiment)) if n <= 0]
        if empty:
            return (f"no requests in the {' and '.join(empty)} window (control {control:g}, "
                    f"experiment {experiment:g} requests)")  # fmt: skip
        return None
    counted = any(not pair.missing and pair.control.total > 0 and pair.experiment.total > 0
                  for pair in observation.counts)  # fmt: skip
    series = any(len(pair.control_values) and len(pair.experiment_values) for pair in observation.pairs)
    return None if counted or series else "no metric has data on both sides of the window"


def verify(observation: Observation, score: float | None,
           thresholds: Thresholds | None) -> tuple[Verification, str]:  # fmt: skip
    """The re-analysis' outcome and its reason: no data first, then the last score.

    Args:
        observation: The window's data.
        score: The judgement's summary score.
        thresholds: The score thresholds.

    Returns:
        (the outcome, the reason in words).
    """
    empty = missing_data(observation)
    if empty is not None:
        return Verification.NO_DATA, f"no data: {empty}; nothing to judge, so not a regression"
    ok, reason = final_decision(score, thresholds)
    return (Verification.VERIFIED if ok else Verification.REGRESSED), reason
