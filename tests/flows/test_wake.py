"""The worker's waker (flows/wake.py) on a fake event stream: a burst of Scheduled events is
one ask, a run the ask did not return yet is asked for again (then left to the poll), and a
lost stream is reopened. The real stream and worker: tests/flows/test_warm_worker.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Collection
from uuid import UUID, uuid4

import pytest

from flows import wake
from store.events import run_id_of


class Stream:
    """Stands in for store.events.scheduled_runs: yields what the test puts, and can fail."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[UUID | Exception] = asyncio.Queue()
        self.opened = 0

    async def __call__(self, pool_id: UUID) -> AsyncIterator[UUID]:
        self.opened += 1
        while True:
            item = await self.queue.get()
            if isinstance(item, Exception):
                raise item
            yield item


async def until(what: str, check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.01)


def _asker(returns: Callable[[int], Collection[UUID]]) -> tuple[list[int], wake.Ask]:
    calls: list[int] = []

    async def ask() -> Collection[UUID]:
        calls.append(len(calls) + 1)
        await asyncio.sleep(0.05)  # a server round trip: events arriving meanwhile coalesce
        return returns(len(calls))

    return calls, ask


@pytest.fixture
def stream(monkeypatch: pytest.MonkeyPatch) -> Stream:
    fake = Stream()
    monkeypatch.setattr(wake, "scheduled_runs", fake)
    monkeypatch.setattr(wake, "RETRY_SECONDS", 0.02)
    monkeypatch.setattr(wake, "REOPEN_SECONDS", 0.05)
    return fake


def test_a_burst_of_events_is_one_ask_or_two(stream: Stream) -> None:
    runs = [uuid4() for _ in range(20)]

    async def main() -> list[int]:
        calls, ask = _asker(lambda n: runs)
        waker = wake.Waker(uuid4(), ask)
        task = asyncio.create_task(waker.run())
        for run in runs:
            stream.queue.put_nowait(run)
        await until("an ask", lambda: len(calls) >= 1)
        await asyncio.sleep(0.3)  # room for any further (wrong) asks
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return calls

    calls = asyncio.run(main())
    # the first event starts an ask; the rest arrive while it runs and make at most one more
    assert 1 <= len(calls) <= 2


def test_a_run_not_returned_yet_is_asked_for_again_then_left_to_the_poll(stream: Stream) -> None:
    late, never = uuid4(), uuid4()

    async def main() -> tuple[list[int], list[int]]:
        calls, ask = _asker(lambda n: [late] if n >= 3 else [])
        waker = wake.Waker(uuid4(), ask)
        task = asyncio.create_task(waker.run())
        stream.queue.put_nowait(late)
        await until("the late run returned", lambda: len(calls) >= 3)
        await asyncio.sleep(0.2)
        first = list(calls)
        stream.queue.put_nowait(never)  # never due: asked 1 + RETRIES times, then left
        await until("the retries", lambda: len(calls) >= len(first) + 1 + wake.RETRIES)
        await asyncio.sleep(0.3)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return first, calls

    first, calls = asyncio.run(main())
    assert len(first) == 3  # found by the third ask: no fourth
    assert len(calls) == 3 + 1 + wake.RETRIES


def test_a_lost_stream_is_reopened_and_wakes_again(stream: Stream) -> None:
    run = uuid4()

    async def main() -> tuple[int, list[int]]:
        calls, ask = _asker(lambda n: [run])
        waker = wake.Waker(uuid4(), ask)
        task = asyncio.create_task(waker.run())
        await until("the stream opened", lambda: stream.opened == 1)
        stream.queue.put_nowait(ConnectionError("the server restarted"))
        await until("the stream reopened", lambda: stream.opened == 2)
        stream.queue.put_nowait(run)
        await until("an ask after the reopening", lambda: len(calls) == 1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return stream.opened, calls

    opened, calls = asyncio.run(main())
    assert opened == 2 and calls == [1]


def test_an_ask_that_fails_does_not_stop_the_waker(stream: Stream) -> None:
    run = uuid4()

    async def main() -> list[int]:
        calls: list[int] = []

        async def ask() -> Collection[UUID]:
            calls.append(1)
            if len(calls) == 1:
                raise ConnectionError("503")
            return [run]

        waker = wake.Waker(uuid4(), ask)
        task = asyncio.create_task(waker.run())
        stream.queue.put_nowait(run)
        await until("asked again after the failure", lambda: len(calls) == 2)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return calls

    assert len(asyncio.run(main())) == 2


@pytest.mark.parametrize(("resource", "expected"), [
    ("prefect.flow-run.6f1c4c58-7d2e-4a3a-9a35-1b6a2f0e8a11", UUID("6f1c4c58-7d2e-4a3a-9a35-1b6a2f0e8a11")),
    ("prefect.flow-run.not-a-uuid", None),
    ("prefect.deployment.6f1c4c58-7d2e-4a3a-9a35-1b6a2f0e8a11", None),
])  # fmt: skip
def test_the_run_id_is_read_from_the_event_resource(resource: str, expected: UUID | None) -> None:
    assert run_id_of(resource) == expected
