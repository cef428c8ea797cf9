"""The per-app release lock: a global concurrency limit of one slot that every release,
reconcile, restore and re-analysis of the app takes, and that an operator switches off to
freeze releases. A lock a killed holder left taken is found and freed here.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

from prefect.client.schemas.actions import (
    GlobalConcurrencyLimitCreate,
    GlobalConcurrencyLimitUpdate,
)
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from canary.queue import Candidate
from store.client import client
from store.runs import sibling_runs

__all__ = [
    "LEAK_GRACE_SECONDS", "LOCK_LEASE_SECONDS", "LOCK_PREFIX", "LOCK_TAKERS", "LockState",
    "ensure_lock", "free_leaked_lock", "held_by_the_dead", "hold", "lock_state",
    "other_lock_takers", "release_lock_name",
]  # fmt: skip

#: One canary release per app at a time: the global concurrency limit every release takes.
LOCK_PREFIX = "canary-release-"
#: How long a killed holder keeps the lock (the live holder renews its lease all along).
LOCK_LEASE_SECONDS = 60  # the server accepts no shorter lease
#: Flows that take an app's lock (their runs are named `<flow>-<app>-...`).
LOCK_TAKERS = ("canary-release", "reconcile", "restore-production", "canary-reanalysis")
#: How long a slot may stay taken with no live run that takes the lock before it is known to
#: have no lease behind it: a killed holder's lease lapses LOCK_LEASE_SECONDS after its last
#: renewal and the server's repossessor (every 15 s) then frees the slot itself. Resetting the
#: count earlier would be wrong twice over: when the dead holder's lease is reaped later, the
#: server takes its slot back from whoever holds the lock by then (a live release).
LEAK_GRACE_SECONDS = LOCK_LEASE_SECONDS + 30


@dataclass(frozen=True)
class LockState:
    """A release lock as the server has it now.

    Attributes:
        name: The limit's name.
        active: False while an operator switched it off (releases are frozen).
        taken: Slots taken.
    """

    name: str
    active: bool
    taken: int


def release_lock_name(app: str) -> str:
    """The name of an app's release lock (``canary-release-<app>``)."""
    return f"{LOCK_PREFIX}{app}"


def ensure_lock(app: str, *, api_url: str | None = None) -> str:
    """Create the app's limit (1 slot) if missing: a missing limit would be silently skipped.

    A limit an operator switched off stays off: that is how releases are frozen.

    Args:
        app: The app.
        api_url: An explicit API URL, or None.

    Returns:
        The lock's name.
    """
    name = release_lock_name(app)
    with client(api_url) as prefect:
        try:
            limit = prefect.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            # A concurrent release may create it first: the result is the same.
            with contextlib.suppress(ObjectAlreadyExists):
                prefect.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=1, active=True))  # fmt: skip
            return name
        if limit.limit != 1:
            prefect.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=1))
    return name


def lock_state(name: str, *, api_url: str | None = None) -> LockState:
    """A release lock as the server has it now.

    Args:
        name: The lock's name.
        api_url: An explicit API URL, or None.

    Returns:
        Its state.

    Raises:
        ObjectNotFound: No such lock.
    """
    with client(api_url) as prefect:
        limit = prefect.read_global_concurrency_limit_by_name(name)
    return LockState(name, bool(limit.active), int(limit.active_slots))


def _state_or_none(name: str) -> LockState | None:
    try:
        return lock_state(name)
    except Exception:  # no limit yet: nothing held
        return None


def hold(name: str, stack: contextlib.ExitStack, *, timeout: float | None = None) -> None:
    """Take the lock and keep it (its lease renewed) until ``stack`` closes.

    Args:
        name: The lock's name.
        stack: Where the held lock is kept.
        timeout: Seconds to try (None: wait as long as it takes).

    Raises:
        TimeoutError: The lock was not free within ``timeout`` (Prefect's
            AcquireConcurrencySlotTimeoutError is one).
    """
    stack.enter_context(concurrency(name, occupy=1, strict=True, timeout_seconds=timeout,
                                    lease_duration=LOCK_LEASE_SECONDS))  # fmt: skip


def other_lock_takers(app: str, *, me: str | None = None) -> list[Candidate]:
    """The live runs (but ``me``) of the flows that take the app's lock and have started:
    one of them may hold it. Runs not yet started hold nothing (the scheduler keeps future
    re-analysis runs Scheduled all along).

    Args:
        app: The app.
        me: The caller's run id, left out.

    Returns:
        The runs, as the queue sees them.
    """
    return [c for flow in LOCK_TAKERS for c in sibling_runs(flow, app)
            if c.live and c.started and c.run_id != me]  # fmt: skip


def held_by_the_dead(app: str, *, me: str | None = None) -> bool:
    """True when the app's lock is taken and no run that could hold it is alive: its holder
    was killed (its lease lapses by itself) or a server restart lost the lease.

    Args:
        app: The app.
        me: The caller's run id.
    """
    state = _state_or_none(release_lock_name(app))
    return state is not None and state.active and state.taken > 0 \
        and not other_lock_takers(app, me=me)


def free_leaked_lock(app: str, *, me: str | None = None, grace: float = LEAK_GRACE_SECONDS,
                     poll: float = 2.0) -> str | None:  # fmt: skip
    """Wait (up to ``grace`` s) for a lock held by the dead to be freed by the server when
    the holder's lease lapses; a slot still taken after that has no lease (a server restart
    without persistent lease storage) and is reset. Stops waiting as soon as a live run
    could hold the lock.

    Args:
        app: The app.
        me: The caller's run id.
        grace: Seconds to wait for the server to free it.
        poll: Seconds between two looks.

    Returns:
        What happened, in words (None: nothing was held, or a live run may hold it).
    """
    name = release_lock_name(app)
    start = time.monotonic()
    while True:
        state = _state_or_none(name)
        if state is None or state.taken <= 0:
            waited = time.monotonic() - start
            return (f"the lock {name!r} of a dead holder was freed by the server when its lease "
                    f"lapsed, {waited:.0f} s after this repair began") if waited >= poll else None
        if other_lock_takers(app, me=me):
            return None
        if time.monotonic() - start >= grace:
            break
        time.sleep(poll)
    with client() as prefect:
        prefect.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(active_slots=0))
    return (f"freed the lock {name!r}: {state.taken} slot(s) were still taken {grace:.0f} s "
            "after their holder died, with no lease behind them (a server restart lost it)")
