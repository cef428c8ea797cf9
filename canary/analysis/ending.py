"""How a release that ran ended, from what production runs, read back. Pure.

The release flow reads production back from the platform after its cleanup and asks
:func:`release_end` for the outcome and the reason in words: one rule
(``canary.values.outcome.outcome_from_production``), plus ``aborted`` when an operator
aborted the release and production is unchanged. The run's result is a
:class:`ReleaseResult`; a run that did not promote carries it in a
:class:`ReleaseNotPromoted` (Prefect 3 resolves a failed or cancelled state's data into an
exception: a plain mapping there makes it log a ``TypeError``).
"""

from __future__ import annotations

from typing import TypedDict

from canary.analysis.decision import Decision
from canary.values.events import ReleaseEnded
from canary.values.outcome import Outcome, outcome_from_production

__all__ = ["ReleaseNotPromoted", "ReleaseResult", "release_end", "run_data"]


class ReleaseResult(TypedDict):
    """A release run's result: what was released, how it ended and why."""

    app: str
    commit: str
    image: str
    #: the outcome's value (``promoted``, ``rolled-back``, ``aborted``)
    outcome: str
    #: the last look's score; None without a verdict (the metrics could not be read)
    score: float | None
    reason: str
    headline: str


class ReleaseNotPromoted(Exception):  # noqa: N818 (a run's result, not an error)
    """The result of a release run that ended without promoting, as its state's data.

    Attributes:
        result: The run's result.
    """

    def __init__(self, result: ReleaseResult) -> None:
        """Carry ``result``; the message is its headline.

        Args:
            result: The run's result.
        """
        super().__init__(result["headline"])
        self.result = result

    def __reduce__(self) -> tuple[type[ReleaseNotPromoted], tuple[ReleaseResult]]:
        """Pickle by the result (a persisted state's data is pickled)."""
        return type(self), (self.result,)


def release_end(decision: Decision, reason: str, *, image: str, before: str | None,
                now: str | None, read_error: str | None = None) -> tuple[Outcome, str]:  # fmt: skip
    """The outcome of a release that ran, and its reason in words.

    Args:
        decision: The release's final decision (``aborted`` when an operator aborted it).
        reason: Why the release ended the way it meant to.
        image: The release's image.
        before: What production ran before the release (None if unknown).
        now: What production runs now, read back (None when it could not be read).
        read_error: Why production could not be read back, in words.

    Returns:
        The outcome, and the reason with what was read back when it surprises.
    """
    if read_error is not None:
        return Outcome.ROLLED_BACK, f"{reason}; production could not be read back ({read_error})"
    outcome = outcome_from_production(now=now, image=image, before=before)
    if outcome is Outcome.PROMOTED:
        return outcome, reason
    if now != before:
        return outcome, f"{reason}; production runs {now} (read back), not {before}"
    return (Outcome.ABORTED if decision.aborted else outcome), reason


def run_data(ended: ReleaseEnded) -> ReleaseResult | ReleaseNotPromoted:
    """A release run's result, as its final state's data.

    Args:
        ended: How the release ended (its event).

    Returns:
        The result; for a run that did not promote, the result in a ReleaseNotPromoted
        (Prefect 3 resolves a failed or cancelled state's data into an exception: a mapping
        there is logged as a ``TypeError``).
    """
    result = ReleaseResult(app=ended.app, commit=ended.commit or "", image=ended.image or "",
                           outcome=ended.outcome.value, score=ended.score, reason=ended.reason,
                           headline=ended.headline or "")  # fmt: skip
    return result if ended.outcome is Outcome.PROMOTED else ReleaseNotPromoted(result)
