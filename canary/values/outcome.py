"""How a release ended: one vocabulary for run states, events, history, reports and docs.

A release ends in exactly one of four ways:

- ``promoted``: production runs the new image, read back from the platform;
- ``rolled-back``: the release ran (or started to) and production still runs what it ran
  before: the judge found a regression, nobody answered a gate, the analysis could not be
  made (metrics unreachable: a rollback without a verdict), or the run crashed;
- ``aborted``: an operator stopped it (``canary abort``); production was never changed;
- ``skipped``: it never started: superseded by a newer commit, a duplicate, or older than
  production.

Each outcome has one Prefect state (a named final state, so Prefect's automations on its
own ``Failed`` / ``Cancelled`` / ``Crashed`` do not mistake an ordinary end for a crash),
one event name (``canary.release.<outcome>``) and one label for metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "BUILD_SKIPPED",
    "FINAL_STATE_NAMES",
    "Outcome",
    "OutcomeState",
    "describe_end",
    "outcome_from_production",
]


@dataclass(frozen=True)
class OutcomeState:
    """The Prefect state a run ends in for an outcome.

    Attributes:
        name: The state's name (the event Prefect emits is ``prefect.flow-run.<name>``).
        type: The state's type, as Prefect spells it (``COMPLETED``, ``FAILED``,
            ``CANCELLED``): alerting on failed runs sees a rollback.
    """

    name: str
    type: str


class Outcome(StrEnum):
    """How a release ended (see the module docstring for what each means)."""

    PROMOTED = "promoted"
    ROLLED_BACK = "rolled-back"
    ABORTED = "aborted"
    SKIPPED = "skipped"

    @property
    def event(self) -> str:
        """The event a release emits when it ends this way: ``canary.release.<outcome>``."""
        return f"canary.release.{self.value}"

    @property
    def state(self) -> OutcomeState:
        """The named final Prefect state of a release run that ends this way."""
        return _STATES[self]

    @property
    def label(self) -> str:
        """The outcome as a metric label value (``rolled_back``: no dashes in labels)."""
        return self.value.replace("-", "_")

    @property
    def changed_production(self) -> bool:
        """True only for a promotion: every other end leaves production as it was."""
        return self is Outcome.PROMOTED

    @classmethod
    def from_event(cls, event: str) -> Outcome | None:
        """The outcome a ``canary.release.*`` event name carries, None for any other name.

        Args:
            event: An event name such as ``canary.release.rolled-back``.

        Returns:
            The outcome, or None when the name is not a release-end event.
        """
        kind = event.removeprefix("canary.release.")
        if kind == event:
            return None
        try:
            return cls(kind)
        except ValueError:
            return None

    @classmethod
    def from_state_name(cls, name: str | None) -> Outcome | None:
        """The outcome a release run's final state name says, None for Prefect's own states.

        Args:
            name: A flow run's state name (``Promoted``, ``RolledBack``, ``Crashed``...).

        Returns:
            The outcome for one of our named final states, else None.
        """
        return _BY_STATE_NAME.get(name or "")


_STATES: dict[Outcome, OutcomeState] = {
    Outcome.PROMOTED: OutcomeState("Promoted", "COMPLETED"),
    Outcome.ROLLED_BACK: OutcomeState("RolledBack", "FAILED"),
    Outcome.ABORTED: OutcomeState("Aborted", "CANCELLED"),
    Outcome.SKIPPED: OutcomeState("Skipped", "CANCELLED"),
}
_BY_STATE_NAME = {state.name: outcome for outcome, state in _STATES.items()}

#: The state a build run ends in when it builds nothing (a duplicate, production's commit).
BUILD_SKIPPED = OutcomeState("Skipped", "CANCELLED")

#: Every named final state a run of ours ends in: with Prefect's own final states, these end
#: an automation's expectation (a run that ended is not a silent one).
FINAL_STATE_NAMES = tuple(state.name for state in _STATES.values())


def outcome_from_production(*, now: str | None, image: str, before: str | None) -> Outcome:
    """The outcome of a release that ran, from what production runs, read back.

    The one rule for every place that ends a release (the flow, recovery after a crash):
    a release is promoted when production now runs its image and did not before; anything
    else is a rollback, whatever the flow meant to do.

    Args:
        now: The image production runs now, read back (None when it could not be read).
        image: The release's (canary's) image.
        before: The image production ran before the release (None if unknown).

    Returns:
        ``Outcome.PROMOTED`` or ``Outcome.ROLLED_BACK``.
    """
    if now is not None and now == image and before != image:
        return Outcome.PROMOTED
    return Outcome.ROLLED_BACK


_END_WORDS = {
    "Crashed": "the release's process crashed or was killed",
    "Cancelled": "the release was cancelled",
    "Cancelling": "the release was cancelled",
    "Failed": "the release failed",
    "TimedOut": "the release timed out",
}


def describe_end(state_name: str | None, message: str | None = None) -> str:
    """A release run's end in words, never an empty message or a bare exception repr.

    Args:
        state_name: The run's final state's name (``Crashed``...; None: unknown).
        message: The state's message, if any.

    Returns:
        The end in words, with the message after a colon when there is one.
    """
    name = state_name or "ended"
    words = _END_WORDS.get(name, f"the release ended {name}")
    text = (message or "").strip()
    return f"{words}: {text}" if text else words
