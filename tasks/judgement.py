"""Manual judgement and manual gates: ask a person in the Prefect UI (or `canary approve` /
`canary reject`).

The flow run pauses with a typed form (a decision and a comment). No answer before the
timeout means roll back: silence never promotes. Three occasions ask:
- a Marginal final score, when the release spec sets `manual_judgement`;
- a gate after a look (`manual_gates: [2]`): continue or roll back;
- a gate before promotion (`manual_gate_before_promotion: true`): promote or roll back.
"""

from __future__ import annotations

from typing import Literal

from prefect import get_run_logger
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import Field

#: What `canary approve` answers for each gate; `canary reject` always answers "roll back".
APPROVE = {"judgement": "promote", "before-promotion": "promote", "after-look": "continue"}


class ReleaseDecision(RunInput):
    """The form shown in the UI when a release waits for a person."""

    decision: Literal["promote", "continue", "roll back"] = Field(
        description="promote (or continue to the next look), or roll back to production."
    )
    comment: str = Field("", description="Why (kept in the flow run's log and report).")


def ask_person(app: str, gate: str, question: str, *, timeout_seconds: int,
               poll_seconds: int = 2) -> tuple[bool, str]:  # fmt: skip
    """Pause for a decision at `gate` (a key of APPROVE): (go on?, reason). A timeout, or an
    answer that does not fit the gate, rolls back."""
    logger = get_run_logger()
    logger.warning(
        "%s: %s Waiting up to %d s for a person: Resume in the UI, or `canary approve %s` / "
        "`canary reject %s`; no answer rolls back", app, question, timeout_seconds, app, app,
    )  # fmt: skip
    try:
        answer = pause_flow_run(wait_for_input=ReleaseDecision, timeout=timeout_seconds,
                                poll_interval=poll_seconds, key=f"manual-{gate}-{app}")  # fmt: skip
    except FlowPauseTimeout:
        return False, f"{question} No manual decision within {timeout_seconds} s: rolled back"
    note = f" ({answer.comment})" if answer.comment else ""
    if answer.decision == APPROVE[gate]:
        return True, f"{question} A person chose to {answer.decision}{note}"
    return False, f"{question} A person chose to roll back{note}"


def ask_for_judgement(app: str, score: float, *, timeout_seconds: int,
                      poll_seconds: int = 2) -> tuple[bool, str]:  # fmt: skip
    """On a Marginal final score: (promote?, reason)."""
    ok, reason = ask_person(app, "judgement", f"Marginal score {score}: promote or roll back?",
                            timeout_seconds=timeout_seconds, poll_seconds=poll_seconds)  # fmt: skip
    return ok, (reason.replace("chose to promote", "promoted by manual judgement")
                .replace("chose to roll back", "rolled back by manual judgement")
                .replace("No manual decision", "no manual judgement"))
