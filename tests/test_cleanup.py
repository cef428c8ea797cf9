"""The cleanup order (canary.cleanup): every step, in order, on through failures, except
that a track the traffic could not be moved off is never removed."""

from __future__ import annotations

import pickle
from collections.abc import Callable

import pytest

from canary.cleanup import (
    CLEANUP_STEPS,
    TRACK_STEPS,
    StepsFailed,
    attempt_each,
    run_cleanup,
    together,
)
from canary.errors import PlatformError

NAMES = [name for _, name in CLEANUP_STEPS]


def _steps(calls: list[str], failing: frozenset[str] = frozenset()) -> dict[str, Callable[[], None]]:
    def step(name: str) -> Callable[[], None]:
        def run() -> None:
            calls.append(name)
            if name in failing:
                raise RuntimeError(f"{name} broke")

        return run

    return {name: step(name) for name in NAMES}


def test_every_step_runs_in_order() -> None:
    calls: list[str] = []
    done, error = run_cleanup(_steps(calls))
    assert calls == ["roll_back_traffic", "remove_baseline", "remove_canary", "restore_routes"]
    assert done == ["all traffic to production (read back)", "baseline removed", "canary removed",
                    "routes restored"]  # fmt: skip
    assert error is None


def test_a_failed_removal_does_not_stop_the_rest() -> None:
    calls: list[str] = []
    done, error = run_cleanup(_steps(calls, frozenset({"remove_baseline"})))
    assert calls == NAMES
    assert done[1] == "FAILED: baseline removed: remove_baseline broke"
    assert isinstance(error, RuntimeError) and str(error) == "remove_baseline broke"


def test_tracks_still_receiving_traffic_are_not_removed() -> None:
    calls: list[str] = []
    done, error = run_cleanup(_steps(calls, frozenset({"roll_back_traffic"})))
    assert calls == ["roll_back_traffic", "restore_routes"]  # routes may still bring traffic back
    assert done == [
        "FAILED: all traffic to production (read back): roll_back_traffic broke",
        "SKIPPED: baseline removed: the traffic could not be moved off it",
        "SKIPPED: canary removed: the traffic could not be moved off it",
        "routes restored",
    ]
    assert str(error) == "roll_back_traffic broke"


def test_the_first_error_is_returned() -> None:
    calls: list[str] = []
    _, error = run_cleanup(_steps(calls, frozenset({"remove_canary", "restore_routes"})))
    assert str(error) == "remove_canary broke"


# -- steps done together (the release flow removes both tracks in one task run) -----------


def _tracks(calls: list[str], failing: dict[str, Exception]) -> Callable[[], None]:
    """One call removing both tracks the way tasks.platform.remove_tracks does."""

    def remove(step: str) -> Callable[[], None]:
        def run() -> None:
            calls.append(step)
            if step in failing:
                raise failing[step]

        return run

    return lambda: attempt_each({step: remove(step) for step in TRACK_STEPS.values()})


def _with_tracks_together(calls: list[str], tracks: Callable[[], object],
                          failing: frozenset[str] = frozenset()) -> dict[str, Callable[[], object]]:  # fmt: skip
    steps: dict[str, Callable[[], object]] = dict(_steps(calls, failing))
    steps.update(together(tracks, TRACK_STEPS.values()))
    return steps


def test_a_failed_step_done_together_still_attempts_the_other() -> None:
    for failed, other in (("remove_baseline", "remove_canary"), ("remove_canary", "remove_baseline")):
        calls: list[str] = []
        broke = PlatformError(f"{failed} broke")
        done, error = run_cleanup(_with_tracks_together(calls, _tracks(calls, {failed: broke})))
        assert calls == NAMES  # one call did both removals, each attempted
        label = {"remove_baseline": "baseline removed", "remove_canary": "canary removed"}
        assert f"FAILED: {label[failed]}: {failed} broke" in done and label[other] in done
        assert done[-1] == "routes restored" and error is broke


def test_steps_done_together_are_done_by_one_call_and_skipped_together() -> None:
    calls: list[str] = []
    count = {"n": 0}

    def tracks() -> None:
        count["n"] += 1

    done, error = run_cleanup(_with_tracks_together(calls, tracks))
    assert count["n"] == 1 and error is None and "baseline removed" in done and "canary removed" in done
    count["n"] = 0
    done, _ = run_cleanup(_with_tracks_together(calls, tracks, frozenset({"roll_back_traffic"})))
    assert count["n"] == 0  # traffic not moved off the tracks: neither is removed
    assert done[1:3] == ["SKIPPED: baseline removed: the traffic could not be moved off it",
                         "SKIPPED: canary removed: the traffic could not be moved off it"]  # fmt: skip


def test_a_call_that_fails_as_a_whole_fails_each_of_its_steps() -> None:
    down = RuntimeError("the API is down")

    def tracks() -> None:
        raise down

    done, error = run_cleanup(_with_tracks_together([], tracks))
    assert done[1:3] == ["FAILED: baseline removed: the API is down", "FAILED: canary removed: the API is down"]
    assert error is down


def _raises(exc: Exception) -> Callable[[], None]:
    def run() -> None:
        raise exc

    return run


def test_steps_failed_is_transient_only_when_every_failure_is() -> None:
    blip, denied = PlatformError("503", transient=True), PlatformError("forbidden")
    with pytest.raises(StepsFailed) as both:
        attempt_each({"a": _raises(blip), "b": _raises(blip)})
    assert both.value.transient and both.value.errors == {"a": blip, "b": blip}
    with pytest.raises(StepsFailed) as mixed:
        attempt_each({"a": _raises(blip), "b": _raises(denied)})
    assert not mixed.value.transient and str(mixed.value) == "a: 503; b: forbidden"
    copy = pickle.loads(pickle.dumps(mixed.value))  # a failed task run's exception may be stored
    assert isinstance(copy, StepsFailed) and not copy.transient
    assert {name: str(exc) for name, exc in copy.errors.items()} == {"a": "503", "b": "forbidden"}
    assert copy.errors["a"].transient
