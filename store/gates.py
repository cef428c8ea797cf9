"""Manual judgement and manual gates: a person's answer, asked through Prefect (the UI,
or `canary approve` / `canary reject`).

The flow run pauses with a typed form (a decision and a comment). No answer before the
timeout means roll back: silence never promotes. Three occasions ask:
- a Marginal final score, when the release spec sets `manual_judgement`;
- a gate after a look (`manual_gates: [2]`): continue or roll back;
- a gate before promotion (`manual_gate_before_promotion: true`): promote or roll back.

The answer comes back as a `GateAnswer`; `canary.analysis.decision.Decision.from_gate` says
what it decides, in words.
"""

from __future__ import annotations

from typing import Literal

from prefect import get_run_logger
from prefect.exceptions import FlowPauseTimeout
from prefect.input import RunInput
from pydantic import Field

from canary.analysis.decision import APPROVE, GateAnswer
from store.current import pause_for_input, running_again

__all__ = ["APPROVE", "ReleaseDecision", "ask_person"]


class ReleaseDecision(RunInput):
    """The form shown in the UI when a release waits for a person."""

    decision: Literal["promote", "continue", "roll back"] = Field(
        description="promote (or continue to the next look), or roll back to production."
    )
    comment: str = Field("", description="Why (kept in the flow run's log and report).")


def ask_person(app: str, gate: str, question: str, *, timeout_seconds: int,
               poll_seconds: int = 2, message: str | None = None) -> GateAnswer:  # fmt: skip
    """Pause for a person's decision at `gate`.

    Args:
        app: The app released.
        gate: The gate (a key of APPROVE).
        question: What the person is asked (shown above the form in the UI).
        timeout_seconds: How long to wait for an answer.
        poll_seconds: How often to look for one.
        message: The paused run's state message (default: the question).

    Returns:
        The answer; ``answer`` None when nobody answered in time (the run is running again
        then, so it ends in its own named state, not Prefect's "never resumed" failure).

    Raises:
        ValueError: `gate` is not one of the gates.
    """
    if gate not in APPROVE:
        raise ValueError(f"gate must be one of {', '.join(APPROVE)}, got {gate!r}")
    get_run_logger().warning(
        "%s: %s Waiting up to %d s for a person: Resume in the UI, or `canary approve %s` / "
        "`canary reject %s`; no answer rolls back", app, question, timeout_seconds, app, app,
    )  # fmt: skip
    try:
        form = ReleaseDecision.with_initial_data(description=question)
        answer = pause_for_input(form, key=f"manual-{gate}-{app}", timeout=timeout_seconds,
                                 poll=poll_seconds, message=message or question)  # fmt: skip
    except FlowPauseTimeout:
        # Prefect leaves the run Paused past its timeout; the server would then refuse the
        # run's own final state and fail it ("...never resumed"): Running again, forced.
        running_again()
        return GateAnswer(gate, question, None, timeout_seconds=timeout_seconds)
    return GateAnswer(gate, question, answer.decision, answer.comment,
                      timeout_seconds=timeout_seconds)  # fmt: skip

