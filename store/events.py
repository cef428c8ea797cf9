"""Our events in Prefect's event feed: emitted from the typed models of
canary.values.events, and read back typed (kept 7 days by the server)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, TypedDict, TypeVar
from uuid import UUID

from prefect.events import emit_event
from prefect.events.clients import get_events_subscriber
from prefect.events.filters import (
    EventAnyResourceFilter,
    EventFilter,
    EventNameFilter,
    EventOccurredFilter,
    EventResourceFilter,
)
from prefect.events.schemas.events import Event

from canary.values.events import (
    APP_RESOURCE_PREFIX,
    HISTORY_EVENTS,
    PRODUCTION_CHANGES,
    ProductionRestored,
    ReleaseEnded,
    ReleaseEvent,
    parse_event,
)
from store.client import client

__all__ = ["SCHEDULED", "LastChange", "StoredEvent", "emit", "events", "last_change", "last_production_change",
           "released_apps", "run_id_of", "scheduled_runs", "typed"]

E = TypeVar("E", bound=ReleaseEvent)

#: The server hands out at most this many events a page.
PAGE = 50


@dataclass(frozen=True)
class StoredEvent(Generic[E]):
    """One of our events as read back: when it occurred, its name, and the typed model.

    Attributes:
        occurred: When it occurred (aware, UTC).
        name: Its name (``canary.release.promoted``...).
        event: The typed model.
    """

    occurred: datetime
    name: str
    event: E


def emit(event: ReleaseEvent) -> None:
    """Emit one of our events: its name, resource (the app) and payload, from the model.

    Args:
        event: The model.
    """
    emit_event(event=event.event_name, resource=event.resource(), payload=event.payload())


def _query(names: Sequence[str] | None, prefixes: Sequence[str] | None, app: str | None,
           days: float) -> EventFilter:  # fmt: skip
    now = datetime.now(UTC)
    return EventFilter(
        occurred=EventOccurredFilter(since=now - timedelta(days=days), until=now),
        event=EventNameFilter(name=list(names) if names else None,
                              prefix=list(prefixes) if prefixes else None),
        resource=(EventResourceFilter(id=[f"{APP_RESOURCE_PREFIX}{app}"]) if app else
                  EventResourceFilter(id_prefix=[APP_RESOURCE_PREFIX])),
    )  # fmt: skip


def typed(raw: Event) -> StoredEvent[ReleaseEvent] | None:
    """One of Prefect's events as ours, typed (None: not ours, or a shape we cannot read).

    Args:
        raw: The event as Prefect's client gives it.

    Returns:
        The stored event, or None.
    """
    try:
        model = parse_event(raw.event, raw.resource.id, raw.payload)
    except ValueError:  # ours, but an older or broken shape: not a record we can use
        return None
    if model is None:
        return None
    # A plain datetime: Prefect's DateTime subclass drops its tzinfo in `+ timedelta`.
    return StoredEvent(datetime.fromtimestamp(raw.occurred.timestamp(), UTC), raw.event, model)


def events(app: str | None = None, *, names: Sequence[str] | None = None,
           prefixes: Sequence[str] | None = None, days: float = 7, limit: int = PAGE,
           api_url: str | None = None) -> list[StoredEvent[ReleaseEvent]]:  # fmt: skip
    """Our events of the last days, newest first, typed (events not ours are left out).

    Args:
        app: One app's events (None: every app's).
        names: Only these event names.
        prefixes: Only names with these prefixes (``canary.release.``).
        days: How far back.
        limit: At most this many (read page by page, 50 a page).
        api_url: An explicit API URL, or None.

    Returns:
        The events.
    """
    query = _query(names, prefixes, app, days)
    found: list[StoredEvent[ReleaseEvent]] = []
    with client(api_url) as prefect:
        page = prefect.read_events(filter=query, limit=min(limit, PAGE))
        while True:
            found += [e for e in map(typed, page.events) if e is not None]
            if len(found) >= limit or not page.next_page:
                break
            page = prefect.read_events_page(str(page.next_page))  # Prefect str()s it too
    return sorted(found, key=lambda e: e.occurred, reverse=True)[:limit]


def last_production_change(app: str, *, within_days: int = 7,
                           api_url: str | None = None) -> StoredEvent[ReleaseEnded | ProductionRestored] | None:  # fmt: skip
    """The newest production change of an app: a promoted release or a restore.

    Args:
        app: The app.
        within_days: How far back.
        api_url: An explicit API URL, or None.

    Returns:
        The event (its image, and the image it replaced), None when there is none.
    """
    for found in events(app, names=PRODUCTION_CHANGES, days=within_days, api_url=api_url):
        if isinstance(found.event, ReleaseEnded | ProductionRestored):
            return StoredEvent(found.occurred, found.name, found.event)
    return None


def released_apps(*, within_days: int = 7, max_pages: int = 200,
                  api_url: str | None = None) -> list[str]:  # fmt: skip
    """Every app with a release (or a restore) in the event history, sorted.

    Args:
        within_days: How far back.
        max_pages: At most this many pages of 50 events are read.
        api_url: An explicit API URL, or None.

    Returns:
        The apps' names.
    """
    query = _query(HISTORY_EVENTS, None, None, within_days)
    apps: set[str] = set()
    with client(api_url) as prefect:
        page = prefect.read_events(filter=query, limit=PAGE)  # the server allows at most 50
        for _ in range(max_pages):
            apps.update(e.resource.id.removeprefix(APP_RESOURCE_PREFIX) for e in page.events)
            if not page.next_page:
                break
            page = prefect.read_events_page(str(page.next_page))
    return sorted(a for a in apps if a)


class LastChange(TypedDict):
    """The newest production change of an app, as the flows read it."""

    #: when it happened (aware, UTC)
    occurred: datetime
    #: its event's name (``canary.release.promoted`` or ``canary.production.restored``)
    event: str
    #: the image it put in, and the one it replaced
    image: str | None
    previous_image: str | None
    #: the promoted release's commit and push time (None for a restore)
    commit: str | None
    pushed_at: str | None
    #: when the promoted release's analysis began (None: a restore, or not recorded)
    window_start: datetime | None


def last_change(app: str, *, within_days: int = 7) -> LastChange | None:
    """The newest production change of an app (a promoted release or a restore), typed.

    Args:
        app: The app.
        within_days: How far back.

    Returns:
        When, the event, the image it put in and the one it replaced; None when there is
        none.
    """
    change = last_production_change(app, within_days=within_days)
    if change is None:
        return None
    event = change.event
    ended = event if isinstance(event, ReleaseEnded) else None
    return LastChange(occurred=change.occurred, event=change.name, image=event.image,
                      previous_image=event.previous_image,
                      commit=ended.commit if ended else None,
                      pushed_at=ended.pushed_at if ended else None,
                      window_start=ended.window_start if ended else None)  # fmt: skip


#: the event the server emits when a flow run enters Scheduled
SCHEDULED = "prefect.flow-run.Scheduled"


def run_id_of(resource_id: str) -> UUID | None:
    """The flow run's id in an event's resource id (`prefect.flow-run.<uuid>`), or None.

    Args:
        resource_id: The event's resource id.

    Returns:
        The run's id, or None for another kind of resource.
    """
    prefix = "prefect.flow-run."
    if not resource_id.startswith(prefix):
        return None
    try:
        return UUID(resource_id.removeprefix(prefix))
    except ValueError:
        return None


async def scheduled_runs(pool_id: UUID) -> AsyncGenerator[UUID, None]:
    """The ids of the flow runs of work pool `pool_id` that enter Scheduled from now on, as
    the server's event stream announces them (the stream closes with the iterator).

    Args:
        pool_id: The work pool's id.

    Yields:
        Each announced run's id.
    """
    announced = EventFilter(event=EventNameFilter(name=[SCHEDULED]),
                            any_resource=EventAnyResourceFilter(id=[f"prefect.work-pool.{pool_id}"]))  # fmt: skip
    async with get_events_subscriber(filter=announced) as subscriber:
        async for event in subscriber:
            run_id = run_id_of(event.resource.id)
            if run_id is not None:
                yield run_id
