"""Manual judgement: on a Marginal verdict, ask a person in the Prefect UI.

The flow run pauses with a typed form (promote / roll back, and a comment). No answer
before the timeout means roll back: silence never promotes.
"""

from __future__ import annotations

from typing import Literal

from prefect import get_run_logger
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import Field


class ReleaseDecision(RunInput):
    """The form shown in the UI when a release waits for a person."""

    decision: Literal["promote", "roll back"] = Field(
        description="Promote the canary to production, or roll it back."
    )
    comment: str = Field("", description="Why (kept in the flow run's log and report).")


def ask_for_judgement(
    app: str, score: float, *, timeout_seconds: int, poll_seconds: int = 2
) -> tuple[bool, str]:
    """Pause for a decision; (promote?, reason). A timeout rolls back."""
    logger = get_run_logger()
    logger.warning(
        "%s scored %s (marginal): waiting up to %d s for a person to promote or roll back "
        "(Resume in the UI); no answer rolls back",
        app, score, timeout_seconds,
    )  # fmt: skip
    try:
        answer = pause_flow_run(wait_for_input=ReleaseDecision, timeout=timeout_seconds,
                                poll_interval=poll_seconds, key=f"manual-judgement-{app}")  # fmt: skip
    except FlowPauseTimeout:
        return False, f"marginal score {score}: no manual judgement within {timeout_seconds} s"
    note = f" ({answer.comment})" if answer.comment else ""
    if answer.decision == "promote":
        return True, f"marginal score {score}: promoted by manual judgement{note}"
    return False, f"marginal score {score}: rolled back by manual judgement{note}"
