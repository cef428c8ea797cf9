"""Hold on failure (``on_failure: hold``), the pure part: which failures are held for a
person, the line that tells people a release is held, and the decision a hold ends in.

A held release keeps its traffic split as the last look set it; a person approves (the
release is promoted anyway, recorded as overridden) or rejects (rolled back); silence until
the hold's timeout rolls back. Not every rollback is held: a failed guard (the canary does
not serve, the split is not what was set), missing data, an unreadable metric store, an
operator's command or a person's answer still end the release at once.
"""

from __future__ import annotations

import dataclasses

from canary.analysis.decision import Action, Decision, GateAnswer, go_duration
from canary.judge.classify import Classification
from canary.judge.interval import IntervalJudgement

__all__ = ["held_decision", "held_message", "may_hold"]


def may_hold(decision: Decision, judgement: IntervalJudgement | None) -> bool:
    """True when the analysis' decision is a failed verdict a hold may wait on.

    Args:
        decision: The analysis' decision.
        judgement: The last look's judgement (None: no look was made).

    Returns:
        True for a judged rollback of the judge's own (no guard failed, no person or
        command decided, every judged metric had data: no data is not a regression).
    """
    if decision.action is not Action.ROLL_BACK or judgement is None:
        return False
    if decision.manual or decision.aborted or not decision.judged or judgement.failed_guards:
        return False
    active = [m for m in judgement.metrics if not m.metric.canary.muted]
    return not any(m.classification is Classification.NODATA for m in active)


def held_message(*, app: str, commit: str, version: str | None, cause: str,
                 timeout_seconds: int) -> str:  # fmt: skip
    """The line that answers first, for the paused run's header and a notification.

    Args:
        app: The app released.
        commit: The release's commit.
        version: Its version, if known.
        cause: Why the analysis failed, in words (the failing metric first).
        timeout_seconds: How long the hold waits.

    Returns:
        E.g. ``goldengoose 3.0.0 (4b2b528) held: latency +59.7% at p99 ... · approve or
        reject within 1h0m0s (no answer rolls back)``.
    """
    name = f"{app} {version} ({commit[:7]})" if version else f"{app} ({commit[:7]})"
    return (f"{name} held: {cause} · approve or reject within {go_duration(timeout_seconds)} "
            f"(`canary approve {app}` / `canary reject {app}`; no answer rolls back)")  # fmt: skip


def held_decision(answer: GateAnswer, *, prior: Decision, held_seconds: float,
                  canary_share: int | None) -> Decision:  # fmt: skip
    """The decision a hold ends in, with how long it held and that traffic stayed.

    Args:
        answer: The person's answer at the ``held`` gate (or nobody's).
        prior: The analysis' failed decision.
        held_seconds: How long the release was held.
        canary_share: The canary's share of traffic while held (percent).

    Returns:
        Promote (overridden) on approval; else roll back; decided by a person.
    """
    decision = Decision.from_gate(answer, prior=prior)
    share = f"canary share {canary_share}%" if canary_share is not None else "its split"
    note = (f"held {go_duration(held_seconds)} at {share}, traffic unchanged while held")
    return dataclasses.replace(decision, reason=f"{decision.reason} ({note})")
