"""Waiting for a release's turn: the queue of an app's runs, the freeze switch, the lock.

Plain functions the flows call: they loop, reading Prefect, until the run may go on (and
then hold the app's lock in the caller's ExitStack) or must not. Not tasks: the lock they
take must stay held by the flow run after they return. Everything they wait for is said
once in the run's log, in words, when it changes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from prefect import get_run_logger
from prefect.concurrency._asyncio import AcquireConcurrencySlotTimeoutError

from canary.queue import Candidate, Place, QueueDecision, place
from store.current import stop_requested, this_run
from store.locks import hold, lock_state, other_lock_takers
from store.runs import sibling_runs

__all__ = ["POLL_SECONDS", "LockBusy", "Newer", "take_lock", "wait_for_turn"]

#: Seconds between two looks at the queue while waiting (also the lock's try time).
POLL_SECONDS = 3.0

Newer = Callable[[Candidate, Candidate], bool | None]


class LockBusy(RuntimeError):
    """The app's lock stayed taken longer than the caller would wait (take_lock's timeout;
    not a TimeoutError, which Prefect reads as the flow's own timeout: TimedOut)."""


class _Say:
    """Log a line only when it differs from the last one said."""

    def __init__(self) -> None:
        self.said = ""

    def __call__(self, text: str) -> None:
        if text != self.said:
            get_run_logger().info(text)
            self.said = text


def wait_for_turn(flow_name: str, app: str, lock: str, stack: contextlib.ExitStack, *,
                  newer: Newer, poll: float = POLL_SECONDS, retry: bool = False) -> QueueDecision:  # fmt: skip
    """Wait until this run may go on, or learn why it must end instead.

    Args:
        flow_name: The flow whose runs queue (``canary-release``).
        app: The app.
        lock: The app's release lock.
        stack: Where the lock is held once taken.
        newer: Which of two commits is newer (None: unknown).
        poll: Seconds between two looks.
        retry: The run releases a commit again on purpose (``canary retry``).

    Returns:
        PROCEED (the lock is then held in ``stack``), or why this run must end.
    """
    say = _Say()
    while True:
        stopped = stop_requested()
        if stopped:
            return QueueDecision(Place.CANCELLED, f"cancelled while queued: {stopped}")
        decision = place(this_run(), sibling_runs(flow_name, app), newer, retry=retry)
        if decision.place in (Place.SUPERSEDED, Place.DUPLICATE):
            return decision
        if decision.place is Place.WAIT:
            say(f"{app}: {decision.reason}")
            time.sleep(poll)
            continue
        if not lock_state(lock).active:
            say(f"{app}: releases are frozen: the concurrency limit {lock!r} is switched off. "
                "Waiting until an operator switches it on (Concurrency page, or "
                f"`prefect gcl enable {lock}`)")  # fmt: skip
            time.sleep(poll)
            continue
        try:
            hold(lock, stack, timeout=poll)
        except AcquireConcurrencySlotTimeoutError:
            say(f"{app}: waiting for the lock {lock!r}: another release, reconcile or restore of "
                f"{app} holds it")  # fmt: skip
            continue
        return decision


def take_lock(app: str, lock: str, held: contextlib.ExitStack, *, me: str,
              poll: float = POLL_SECONDS, timeout: float | None = None) -> None:  # fmt: skip
    """The app's lock for a repair (reconcile, restore-production, re-analysis): no queue.

    While releases are frozen (the limit switched off) the repair still runs, but only once
    no other run that takes the lock is alive.

    Args:
        app: The app.
        lock: The app's release lock.
        held: Where the lock is held once taken.
        me: The caller's run id.
        poll: Seconds between two looks.
        timeout: Seconds to wait at most (None: as long as it takes).

    Raises:
        LockBusy: The lock stayed taken for ``timeout`` seconds; the message names the run
            that may hold it and what to do.
    """
    logger = get_run_logger()
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = None if deadline is None else max(0.1, deadline - time.monotonic())
        if lock_state(lock).active:
            try:
                hold(lock, held, timeout=left)
            except AcquireConcurrencySlotTimeoutError:
                raise LockBusy(_busy(app, lock, me, timeout)) from None
            return
        alive = other_lock_takers(app, me=me)
        if not alive:
            logger.info("%s: releases are frozen (%r is switched off); nothing else runs, so "
                        "this repair goes on", app, lock)  # fmt: skip
            return
        if deadline is not None and time.monotonic() >= deadline:
            raise LockBusy(_busy(app, lock, me, timeout))
        logger.info("%s: releases are frozen and %s is still running: waiting for it to end",
                    app, alive[0].name)  # fmt: skip
        time.sleep(poll if left is None else min(poll, left))


def _busy(app: str, lock: str, me: str, timeout: float | None) -> str:
    """Why the lock could not be taken, in words: who may hold it, and what to do."""
    alive = other_lock_takers(app, me=me)
    who = alive[0].name if alive else "a run that ended without freeing it"
    return (f"{app}: the lock {lock!r} stayed taken for {timeout or 0:g} s: {who} holds it. A "
            f"running canary release stops with `canary abort {app}` (or `canary promote "
            f"{app}`); then try again")  # fmt: skip
