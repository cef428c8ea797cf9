"""canary.queue: which run of an app goes on, from what every run can see of the others."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from canary.queue import Candidate, Place, against_production, by_ancestry, by_push_time, place

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HISTORY = ["a" * 40, "b" * 40, "c" * 40]  # oldest first


def run(n: int, commit: str, *, live: bool = True, completed: bool = False,
        pushed: int | None = None) -> Candidate:  # fmt: skip
    return Candidate(run_id=f"r{n}", name=f"release-{n}", commit=commit, live=live,
                     completed=completed, created=T0 + timedelta(seconds=n),
                     pushed_at=None if pushed is None else T0 + timedelta(seconds=pushed))  # fmt: skip


def by_history(a: Candidate, b: Candidate) -> bool | None:
    if a.commit in HISTORY and b.commit in HISTORY:
        return HISTORY.index(a.commit) > HISTORY.index(b.commit)
    return None


A, B, C = HISTORY


def test_alone_it_proceeds() -> None:
    assert place(run(1, A), [run(1, A)], by_history).place is Place.PROCEED


def test_a_newer_live_release_supersedes_an_older_one_whoever_came_first() -> None:
    old, new = run(1, A), run(2, B)
    decision = place(old, [new], by_history)
    assert decision.place is Place.SUPERSEDED and decision.other == new
    assert "superseded by the newer commit bbbbbbbbbbbb" in decision.reason
    assert place(new, [old], by_history).place is Place.PROCEED  # the newer never waits for it


def test_the_same_commit_twice_is_one_release() -> None:
    first, second = run(1, A), run(2, A)
    assert place(second, [first], by_history).place is Place.DUPLICATE
    assert place(first, [second], by_history).place is Place.PROCEED  # the earlier one goes on
    done = run(0, A, live=False, completed=True)
    decision = place(run(3, A), [done], by_history)
    assert decision.place is Place.DUPLICATE and "already handled" in decision.reason


def test_a_crashed_earlier_release_does_not_block_a_retry() -> None:
    crashed = run(0, A, live=False, completed=False)
    assert place(run(1, A), [crashed], by_history).place is Place.PROCEED


def test_unrelated_commits_are_first_come_first_served() -> None:
    x, y = run(1, "d" * 40), run(2, "e" * 40)  # no ancestry known, no push times
    decision = place(y, [x], by_history)
    assert decision.place is Place.WAIT and decision.other == x
    assert place(x, [y], by_history).place is Place.PROCEED


def test_push_time_orders_commits_when_ancestry_is_unknown() -> None:
    old, new = run(1, "d" * 40, pushed=0), run(2, "e" * 40, pushed=5)
    assert place(old, [new]).place is Place.SUPERSEDED  # by_push_time is the default
    assert by_push_time(new, old) is True and by_push_time(old, new) is False
    assert by_push_time(run(3, A), new) is None


def test_three_in_a_row_only_the_newest_is_released() -> None:
    runs = [run(1, A), run(2, B), run(3, C)]
    places = [place(r, runs, by_history).place for r in runs]
    assert places == [Place.SUPERSEDED, Place.SUPERSEDED, Place.PROCEED]


def test_production_is_never_replaced_by_an_older_or_the_same_commit() -> None:
    production = run(0, B, live=False)
    assert "older than production's bbbbbbbbbbbb" in (against_production(run(1, A), production, by_history) or "")
    assert "production already runs commit bbbbbbbbbbbb" in (against_production(run(1, B), production, by_history) or "")
    assert against_production(run(1, C), production, by_history) is None
    assert against_production(run(1, C), None, by_history) is None
    assert against_production(run(1, "d" * 40), production, by_history) is None  # unknown: go on


def test_ancestry_answers_both_directions_of_a_pair() -> None:
    history = ["c1", "c2", "c3"]  # oldest first; "x" is on another branch
    asked: list[tuple[str, str]] = []

    def is_ancestor(older: str, newer: str) -> bool | None:
        asked.append((older, newer))
        if older not in history or newer not in history:
            return False if "x" in (older, newer) else None
        return history.index(older) < history.index(newer)

    assert by_ancestry(is_ancestor, "c3", "c1") is True
    assert asked == [("c1", "c3")]  # newer: one question answers it
    asked.clear()
    assert by_ancestry(is_ancestor, "c1", "c3") is False
    assert asked == [("c3", "c1"), ("c1", "c3")]  # older: both directions asked
    assert by_ancestry(is_ancestor, "c2", "x") is None  # unrelated: neither is the ancestor
    assert by_ancestry(is_ancestor, "c2", "unknown") is None
