"""Our events as they happen: Prefect's event stream (the websocket ``/events/out``), typed.

On connecting, Prefect's subscriber replays the last minute's events (and after a dropped
connection, since the last one it saw), so nothing is lost across a reconnect; events come
once each (their ids are remembered), however often the caller reconnects.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from uuid import UUID

from prefect.events.clients import PrefectEventSubscriber
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

from canary.values.events import APP_RESOURCE_PREFIX, ReleaseEvent
from store.client import api_url_of
from store.events import StoredEvent, typed

__all__ = ["EventStream"]


class EventStream:
    """Our events (``canary.*`` about ``canary.app.*``) from one Prefect server, typed.

    Args:
        api_url: The server's API URL (None: PREFECT_API_URL).
        remember: How many event ids to remember against replays.
    """

    def __init__(self, api_url: str | None = None, *, remember: int = 10_000) -> None:
        self.api_url, self.remember = api_url, remember
        self._seen: OrderedDict[UUID, None] = OrderedDict()

    def _new(self, event_id: UUID) -> bool:
        """True the first time an event id comes (the oldest ids are forgotten)."""
        if event_id in self._seen:
            return False
        self._seen[event_id] = None
        while len(self._seen) > self.remember:
            self._seen.popitem(last=False)
        return True

    async def events(self, on_connect: Callable[[], None] = lambda: None
                     ) -> AsyncIterator[StoredEvent[ReleaseEvent]]:  # fmt: skip
        """One connection's events, typed, each once; ends or raises when it drops for good
        (the caller reconnects, with a backoff of its own).

        Args:
            on_connect: Called once the subscription is in place.

        Yields:
            Our events (events of ours with a shape we cannot read are left out).

        Raises:
            Exception: Prefect cannot be reached, or the connection dropped (websockets',
                OS and Prefect's own errors, as they come).
        """
        query = EventFilter(event=EventNameFilter(prefix=["canary."]),
                            resource=EventResourceFilter(id_prefix=[APP_RESOURCE_PREFIX]))  # fmt: skip
        subscriber = PrefectEventSubscriber(api_url=api_url_of(self.api_url), filter=query,
                                            reconnection_attempts=1)  # fmt: skip
        async with subscriber:
            on_connect()
            async for raw in subscriber:
                if not self._new(raw.id):
                    continue
                found = typed(raw)
                if found is not None:
                    yield found
