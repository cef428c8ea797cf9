"""Wake the worker when a flow run of its pool is scheduled, instead of polling fast for it.

Prefect's worker asks the server for due flow runs every `PREFECT_WORKER_QUERY_SECONDS`.
Asked every 0.5 s (what a push's 2-second pick-up needs), those polls were about 30 % of an
idle server's CPU (docs/scaling.md). The server already tells who listens when a run is
scheduled: its `prefect.flow-run.Scheduled` event, related to the run's work pool. `Waker`
subscribes to those events (the same event stream Prefect's own worker watches for
Cancelling runs) and asks for due runs as soon as one arrives; the worker's own poll stays,
slower, as the safety net for what no event announces (a run whose scheduled time comes
later: the re-analysis schedule) and for a lost stream, which is reopened after a pause.

A wake only asks the question the poll asks (`get_and_submit_flow_runs`), so it can never
submit a run the poll would not: Prefect's worker skips runs it is already submitting, and
the server accepts one Pending per run. A burst of events coalesces into one ask; a run
whose event came before the server's query could see it is asked for again a few times.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection
from uuid import UUID

from store.events import scheduled_runs

#: a run whose event arrived but the ask did not return it is asked for again this often
RETRIES, RETRY_SECONDS = 3, 0.25
#: how long a lost event stream waits before it is reopened
REOPEN_SECONDS = 2.0

#: asks the server for due runs and submits them; returns the ids it submitted
Ask = Callable[[], Awaitable[Collection[UUID]]]

_log = logging.getLogger("canary.worker.wake")


class Waker:
    """Asks for due runs when a Scheduled event of the pool arrives (`run` until cancelled).

    Args:
        pool_id: The work pool whose runs wake the worker.
        ask: What a poll does: ask the server for due runs and submit them.
    """

    def __init__(self, pool_id: UUID, ask: Ask) -> None:
        self._pool_id = pool_id
        self._ask = ask
        self._announced: set[UUID] = set()
        self._wanted = asyncio.Event()

    async def run(self) -> None:
        """Listen and ask until cancelled; a lost stream is reopened after REOPEN_SECONDS."""
        asker = asyncio.create_task(self._asking())
        try:
            while True:
                try:
                    await self._listen()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the poll still runs: only the fast path pauses
                    _log.warning("the scheduled-run event stream was lost (%s); reopening in %.0f s",
                                 exc, REOPEN_SECONDS)  # fmt: skip
                await asyncio.sleep(REOPEN_SECONDS)
        finally:
            asker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asker

    async def _listen(self) -> None:
        async with contextlib.aclosing(scheduled_runs(self._pool_id)) as announced:
            async for run_id in announced:
                self._announced.add(run_id)
                self._wanted.set()

    async def _asking(self) -> None:
        """One ask per burst of events; announced runs not yet returned are asked again."""
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            for attempt in range(RETRIES + 1):
                if attempt:
                    await asyncio.sleep(RETRY_SECONDS)
                announced, self._announced = self._announced, set()
                try:
                    submitted = set(await self._ask())
                except Exception as exc:  # the poll's own loop reports a failing server
                    _log.debug("a wake's ask failed: %s", exc)
                    submitted = set()
                missing = announced - submitted
                if not missing:
                    break
                # not due yet (the poll's prefetch takes it then), or not yet visible
                self._announced |= missing
            else:  # asked enough: the poll takes them when they are due
                self._announced -= missing
