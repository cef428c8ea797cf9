"""The cleanup order of a release, in one place: the flow, its crash hooks and every
reconcile run these steps, in this order, each even when an earlier one failed.

Traffic first (so no request reaches a track about to go), read back; then the tracks;
then the user's routes. After a promotion "production" is the new image, so the same
steps are right whatever the release decided.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

__all__ = ["CLEANUP_STEPS", "run_cleanup"]

#: (what a report says when the step is done, the step's name)
CLEANUP_STEPS: tuple[tuple[str, str], ...] = (
    ("all traffic to production (read back)", "roll_back_traffic"),
    ("baseline removed", "remove_baseline"),
    ("canary removed", "remove_canary"),
    ("routes restored", "restore_routes"),
)


def run_cleanup(steps: Mapping[str, Callable[[], object]]) -> tuple[list[str], BaseException | None]:
    """Run every step by name; returns what was done (failures named) and the first error."""
    done: list[str] = []
    errors: list[BaseException] = []
    for label, name in CLEANUP_STEPS:
        try:
            steps[name]()
            done.append(label)
        except Exception as exc:  # keep cleaning; the caller raises the first error
            errors.append(exc)
            done.append(f"FAILED: {label}: {exc}")
    return done, (errors[0] if errors else None)
