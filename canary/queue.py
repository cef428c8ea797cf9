"""Which release (or build) of an app may go on: ordering, supersession, idempotency. Pure.

Runs of one flow for one app see each other (the flow reads them from Prefect) and each
decides for itself, by the same rules, so they agree without talking:

* **duplicate**: another run for the *same commit* that completed, or that is still going
  and was created earlier, already does the work: at most one per (app, commit);
* **superseded**: another live run carries a *newer* commit (git ancestry where the builder
  knows it, else the push time): the older one yields, and only the newest is released;
* **wait**: an older live run of an unrelated commit was there first (first come, first
  served among the rest);
* **proceed** otherwise.

After taking the app's lock a release also checks production: a commit that production
already runs, or that is older than production's, is never released (`against_production`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

__all__ = ["Candidate", "Place", "QueueDecision", "against_production", "by_ancestry", "by_push_time",
           "place"]

#: newer(a, b): True if commit a is newer than commit b, False if older, None if unknown.
Newer = Callable[["Candidate", "Candidate"], bool | None]


class Place(StrEnum):
    """Where a release run stands in its app's queue, as `place` decides it."""

    PROCEED = "proceed"
    WAIT = "wait"
    SUPERSEDED = "superseded"
    DUPLICATE = "duplicate"
    #: a person cancelled the run (while it was queued); not decided by `place`
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Candidate:
    """One run as the queue sees it.

    Attributes:
        run_id: The flow run's id (breaks ties between runs created at the same time).
        name: The flow run's name, as reasons quote it.
        commit: The commit the run releases.
        created: When the run was created (first come, first served).
        live: The run is not in a final state.
        completed: The run ended Completed (its work is done).
        pushed_at: When its commit was pushed, if known.
        started: Its process began running the flow (only such a run can hold a lock).
    """

    run_id: str
    name: str
    commit: str
    created: datetime
    live: bool
    completed: bool = False
    pushed_at: datetime | None = None
    started: bool = False

    @property
    def short(self) -> str:
        """The commit's first 12 characters, as reasons quote it."""
        return self.commit[:12]


@dataclass(frozen=True, slots=True)
class QueueDecision:
    """Where a run stands, why in words, and the other run that decided it (if one did)."""

    place: Place
    reason: str
    other: Candidate | None = None


def _earlier(a: Candidate, b: Candidate) -> bool:
    """a was created before b (ties broken by run id, so both sides agree)."""
    return (a.created, a.run_id) < (b.created, b.run_id)


def by_ancestry(is_ancestor: Callable[[str, str], bool | None], a: str, b: str) -> bool | None:
    """Which of two commits is newer by git ancestry, both directions answered at once (one
    task run per pair of commits: tasks.platform.order_commits).

    Args:
        is_ancestor: ``is_ancestor(older, newer)``: whether `older` is an ancestor of `newer`
            (None: unknown).
        a: The commit that may be the newer one.
        b: The commit it is compared with.

    Returns:
        True if `b` is an ancestor of `a`, False if `a` is one of `b`, None when neither is
        known (unrelated commits, or a builder that cannot tell).
    """
    if is_ancestor(b, a):
        return True
    return False if is_ancestor(a, b) else None


def by_push_time(a: Candidate, b: Candidate) -> bool | None:
    """The fallback order: the later push is the newer commit.

    Args:
        a: The run whose commit may be the newer one.
        b: The run it is compared with.

    Returns:
        True if `a` was pushed after `b`, False if before, None when a push time is missing
        or both are equal.
    """
    if a.pushed_at is None or b.pushed_at is None or a.pushed_at == b.pushed_at:
        return None
    return a.pushed_at > b.pushed_at


def place(me: Candidate, others: Sequence[Candidate], newer: Newer = by_push_time, *,
          retry: bool = False) -> QueueDecision:  # fmt: skip
    """Where `me` stands among the other runs of the same flow and app.

    Args:
        me: The run asking.
        others: The other runs of the same flow and app (`me` among them is ignored).
        newer: Which of two commits is newer (git ancestry, else `by_push_time`).
        retry: A person asked for this release again: a commit handled before may go.

    Returns:
        DUPLICATE, SUPERSEDED, WAIT or PROCEED, with the reason and the run that decided it.
    """
    others = [o for o in others if o.run_id != me.run_id]
    for other in others:
        if other.commit != me.commit:
            continue
        if other.completed and not retry:
            return QueueDecision(Place.DUPLICATE, f"commit {me.short} was already handled by "
                                 f"run {other.name} (completed)", other)  # fmt: skip
        if other.live and _earlier(other, me):
            return QueueDecision(Place.DUPLICATE, f"run {other.name} already handles commit "
                                 f"{me.short}", other)  # fmt: skip
    live = [o for o in others if o.live and o.commit != me.commit]
    for other in live:
        if newer(other, me) is True:
            return QueueDecision(Place.SUPERSEDED, f"superseded by the newer commit "
                                 f"{other.short} (run {other.name})", other)  # fmt: skip
    ahead = [o for o in live if _earlier(o, me) and newer(me, o) is not True]
    if ahead:
        first = min(ahead, key=lambda o: (o.created, o.run_id))
        return QueueDecision(Place.WAIT, f"waiting behind run {first.name} (commit "
                             f"{first.short}, first come, first served)", first)  # fmt: skip
    return QueueDecision(Place.PROCEED, "first in line")


def against_production(me: Candidate, production: Candidate | None, newer: Newer = by_push_time) -> str | None:
    """Why `me` must not be released over what production runs.

    Args:
        me: The run asking.
        production: The run that put production's current commit up, if known.
        newer: Which of two commits is newer.

    Returns:
        The reason in words, or None when `me` may be released.
    """
    if production is None:
        return None
    if production.commit == me.commit:
        return f"production already runs commit {me.short}"
    if newer(production, me) is True:
        return (f"commit {me.short} is older than production's {production.short}: "
                "a release never replaces a newer production")
    return None
