"""The cleanup order of a release, in one place: the flow, its crash hooks and every
reconcile run these steps, in this order, each even when an earlier one failed.

Traffic first (so no request reaches a track about to go), read back; then the tracks;
then the user's routes. After a promotion "production" is the new image, so the same
steps are right whatever the release decided.

A track that may still receive traffic is never removed: when moving the traffic failed,
the removals are skipped (removing pods that a route still sends requests to turns "some
requests reach the canary" into "some requests fail"), the routes are still restored, and
the error is returned, so the run fails and the reconcile automation repeats the cleanup.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

__all__ = ["CLEANUP_STEPS", "NEED_TRAFFIC_OFF", "run_cleanup"]

#: (what a report says when the step is done, the step's name)
CLEANUP_STEPS: tuple[tuple[str, str], ...] = (
    ("all traffic to production (read back)", "roll_back_traffic"),
    ("baseline removed", "remove_baseline"),
    ("canary removed", "remove_canary"),
    ("routes restored", "restore_routes"),
)


#: the steps skipped when the traffic could not be moved to production
NEED_TRAFFIC_OFF = frozenset({"remove_baseline", "remove_canary"})


def run_cleanup(steps: Mapping[str, Callable[[], object]]) -> tuple[list[str], BaseException | None]:
    """Run every cleanup step in `CLEANUP_STEPS` order, each even when an earlier one failed.

    Args:
        steps: The callable for each step name of `CLEANUP_STEPS`.

    Returns:
        (what was done, in report words, failures and skips named; the first error or None).
    """
    done: list[str] = []
    errors: list[BaseException] = []
    traffic_stuck = False
    for label, name in CLEANUP_STEPS:
        if traffic_stuck and name in NEED_TRAFFIC_OFF:
            done.append(f"SKIPPED: {label}: the traffic could not be moved off it")
            continue
        try:
            steps[name]()
            done.append(label)
        except Exception as exc:  # keep cleaning; the caller raises the first error
            errors.append(exc)
            done.append(f"FAILED: {label}: {exc}")
            traffic_stuck = traffic_stuck or name == "roll_back_traffic"
    return done, (errors[0] if errors else None)
