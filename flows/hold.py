"""The release flow's hold on failure (``on_failure: hold``): say it, wait for a person.

A failed analysis (canary.analysis.hold.may_hold says which) emits ``canary.release.held``
(ReleaseHeld: the failing metrics and a ``message`` a notification carries), then pauses
the run at the ``held`` gate (store.gates) with that message as the paused run's state
message. Traffic is not touched while held: the split the last look set stays. The run's
own cleanup (in ``finally``) rolls back on a crash or a cancellation while held.
"""

from __future__ import annotations

import time

from prefect import get_run_logger

from canary.analysis.decision import Decision
from canary.analysis.hold import held_decision, held_message
from canary.config.release import ReleaseSpec
from canary.report import JudgementRecord, failing_metrics, headline
from canary.values.events import ReleaseHeld
from canary.values.release import Release
from store import current, gates
from store.events import emit

__all__ = ["hold_for_a_person"]


def hold_for_a_person(release: Release, spec: ReleaseSpec, records: list[JudgementRecord],
                      failed: Decision) -> Decision:  # fmt: skip
    """Hold a release whose analysis failed until a person answers (or the timeout).

    Args:
        release: The release.
        spec: Its spec (the hold's timeout).
        records: The looks so far (the last one failed).
        failed: The analysis' decision (a judged rollback).

    Returns:
        Promote (overridden), or roll back; decided by a person, or by the timeout.
    """
    app, timeout = release.app, spec.hold_timeout_seconds
    share = records[-1].canary_share if records else None
    cause = headline("held", failed.reason, records).removeprefix("held: ")
    version = current.parameter("version")
    message = held_message(app=app, commit=release.commit, timeout_seconds=timeout, cause=cause,
                           version=str(version) if version else None)  # fmt: skip
    emit(ReleaseHeld.model_validate({
        "app": app, "image": release.image, "commit": release.commit,
        "version": str(version) if version else None, "reason": failed.reason,
        "failing": failing_metrics(records), "canary_share": share, "timeout_seconds": timeout,
        "url": current.run_link(), "message": message,
    }))  # fmt: skip
    get_run_logger().warning("%s", message)
    started = time.monotonic()
    answer = gates.ask_person(app, "held", cause, timeout_seconds=timeout, message=message)
    return held_decision(answer, prior=failed, held_seconds=time.monotonic() - started,
                         canary_share=share)  # fmt: skip
