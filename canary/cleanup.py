"""The cleanup order of a release, in one place: the flow, its crash hooks and every
reconcile run these steps, in this order, each even when an earlier one failed.

Traffic first (so no request reaches a track about to go), read back; then the tracks;
then the user's routes. After a promotion "production" is the new image, so the same
steps are right whatever the release decided.

A track that may still receive traffic is never removed: when moving the traffic failed,
the removals are skipped (removing pods that a route still sends requests to turns "some
requests reach the canary" into "some requests fail"), the routes are still restored, and
the error is returned, so the run fails and the reconcile automation repeats the cleanup.

Steps may be done together by one call (the release flow removes both tracks in one task
run, `cleanup-<app>-tracks`): `attempt_each` keeps the rule inside that call, and
`together` hands `run_cleanup` one step per name again, each with its own error, so the
report still has a line per step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from canary.errors import CanaryError, is_transient

__all__ = ["CLEANUP_STEPS", "NEED_TRAFFIC_OFF", "TRACK_STEPS", "StepsFailed", "attempt_each", "run_cleanup",
           "together"]

#: (what a report says when the step is done, the step's name)
CLEANUP_STEPS: tuple[tuple[str, str], ...] = (
    ("all traffic to production (read back)", "roll_back_traffic"),
    ("baseline removed", "remove_baseline"),
    ("canary removed", "remove_canary"),
    ("routes restored", "restore_routes"),
)


#: the step that removes each track, by track (the release flow does both in one task run)
TRACK_STEPS: Mapping[str, str] = {"baseline": "remove_baseline", "canary": "remove_canary"}

#: the steps skipped when the traffic could not be moved to production
NEED_TRAFFIC_OFF = frozenset(TRACK_STEPS.values())


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


class StepsFailed(CanaryError):
    """Some of several cleanup steps done together failed (`attempt_each`).

    Transient only when every failure is: a retry repeats all the steps, and a permanent
    error is never retried.

    Attributes:
        errors: Each failed step's error, by step name, in the order the steps ran.
    """

    def __init__(self, errors: Mapping[str, BaseException]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(f"{name}: {exc}" for name, exc in self.errors.items()),
                         transient=all(is_transient(exc) for exc in self.errors.values()))  # fmt: skip

    def __reduce__(self) -> tuple[type[StepsFailed], tuple[dict[str, BaseException]]]:
        """Pickled with its errors (a failed task run's exception may be stored)."""
        return StepsFailed, (self.errors,)


def attempt_each(steps: Mapping[str, Callable[[], object]]) -> None:
    """Run every step in order, each even when an earlier one failed (run_cleanup's rule,
    inside one call that does several steps).

    Args:
        steps: The callable for each step name.

    Raises:
        StepsFailed: After every step ran, naming each one that failed.
    """
    errors: dict[str, BaseException] = {}
    for name, step in steps.items():
        try:
            step()
        except Exception as exc:  # keep going; every failure is named
            errors[name] = exc
    if errors:
        raise StepsFailed(errors)


def together(call: Callable[[], object], names: Iterable[str]) -> dict[str, Callable[[], object]]:
    """Steps that one call does (e.g. one task run running `attempt_each`), as `run_cleanup`
    takes them: the call runs once, at the first of the steps run_cleanup runs (never, when
    it skips them all); each step then raises its own error (`StepsFailed.errors`), the
    call's error when it failed as a whole, or nothing.

    Args:
        call: Does every step in `names`.
        names: The step names of `CLEANUP_STEPS` it does.

    Returns:
        A callable for each step name.
    """
    names = tuple(names)
    outcome: dict[str, BaseException | None] = {}

    def run_once() -> None:
        try:
            call()
            outcome.update(dict.fromkeys(names))
        except StepsFailed as exc:
            outcome.update({name: exc.errors.get(name) for name in names})
        except Exception as exc:  # the call itself failed: every step did
            outcome.update(dict.fromkeys(names, exc))

    def step(name: str) -> Callable[[], object]:
        def run() -> None:
            if not outcome:
                run_once()
            error = outcome[name]
            if error is not None:
                raise error

        return run

    return {name: step(name) for name in names}
