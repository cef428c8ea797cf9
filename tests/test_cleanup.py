"""The cleanup order (canary.cleanup): every step, in order, on through failures, except
that a track the traffic could not be moved off is never removed."""

from __future__ import annotations

from collections.abc import Callable

from canary.cleanup import CLEANUP_STEPS, run_cleanup

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
