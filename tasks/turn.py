"""Waiting for a release's turn: the queue of an app's runs, the freeze switch, the lock.

A plain function the flows call (like tasks.waiting): it loops, reading Prefect, until the
run may go on (and then holds the app's lock in the caller's ExitStack) or must not.
Everything it waits for is said once in the run's log, in words, when it changes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from prefect import get_run_logger
from prefect.concurrency._asyncio import AcquireConcurrencySlotTimeoutError
from prefect.concurrency.sync import concurrency

from canary.queue import Candidate, Place, QueueDecision, place
from tasks import runs
from tasks.recovery import other_lock_takers
from tasks.setup import LOCK_LEASE_SECONDS, lock_state

#: Seconds between two looks at the queue while waiting (also the lock's try time).
POLL_SECONDS = 3.0

Newer = Callable[[Candidate, Candidate], bool | None]


def wait_for_turn(flow_name: str, app: str, lock: str, stack: contextlib.ExitStack, *,
                  newer: Newer, poll: float = POLL_SECONDS, retry: bool = False) -> QueueDecision:  # fmt: skip
    """PROCEED (the lock is then held in `stack`), or why this run must end instead."""
    logger = get_run_logger()
    said = ""

    def say(text: str) -> None:
        nonlocal said
        if text != said:
            logger.info(text)
            said = text

    while True:
        stopped = runs.stop_requested()
        if stopped:
            return QueueDecision(Place.CANCELLED, f"cancelled while queued: {stopped}")
        decision = place(runs.this_run(), runs.sibling_runs(flow_name, app), newer, retry=retry)
        if decision.place in (Place.SUPERSEDED, Place.DUPLICATE):
            return decision
        if decision.place is Place.WAIT:
            say(f"{app}: {decision.reason}")
            time.sleep(poll)
            continue
        active, _ = lock_state(lock)
        if not active:
            say(f"{app}: releases are frozen: the concurrency limit {lock!r} is switched off. "
                "Waiting until an operator switches it on (Concurrency page, or "
                f"`prefect gcl enable {lock}`)")  # fmt: skip
            time.sleep(poll)
            continue
        try:
            stack.enter_context(concurrency(lock, occupy=1, strict=True, timeout_seconds=poll,
                                            lease_duration=LOCK_LEASE_SECONDS))  # fmt: skip
        except AcquireConcurrencySlotTimeoutError:
            say(f"{app}: waiting for the lock {lock!r}: another release, reconcile or restore of "
                f"{app} holds it")  # fmt: skip
            continue
        return decision


def take_lock(app: str, lock: str, held: contextlib.ExitStack, *, me: str, poll: float = POLL_SECONDS) -> None:
    """The app's lock for a repair (reconcile, restore-production, re-analysis): no queue.
    While releases are frozen (the limit switched off) the repair still runs, but only once
    no other run that takes the lock is alive."""
    logger = get_run_logger()
    while True:
        active, _ = lock_state(lock)
        if active:
            held.enter_context(concurrency(lock, occupy=1, strict=True,
                                           lease_duration=LOCK_LEASE_SECONDS))  # fmt: skip
            return
        alive = other_lock_takers(app, me=me)
        if not alive:
            logger.info("%s: releases are frozen (%r is switched off); nothing else runs, so "
                        "this repair goes on", app, lock)  # fmt: skip
            return
        logger.info("%s: releases are frozen and %s is still running: waiting for it to end",
                    app, alive[0].name)  # fmt: skip
        time.sleep(poll)
