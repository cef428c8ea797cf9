"""What earlier releases left in Prefect's event history (kept 7 days by the server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.events.filters import (
    EventFilter,
    EventNameFilter,
    EventOccurredFilter,
    EventResourceFilter,
)

from tasks._retry import RETRYING


@task(name="find-last-promotion", task_run_name="find-last-promotion-{app}",
      cache_policy=NO_CACHE, **RETRYING)  # fmt: skip
def find_last_promotion(app: str, *, within_days: int = 7) -> dict[str, Any] | None:
    """The newest production change of `app` (a promoted release or a restore): when,
    the image it put in, and the one it replaced."""
    now = datetime.now(UTC)
    query = EventFilter(
        occurred=EventOccurredFilter(since=now - timedelta(days=within_days), until=now),
        event=EventNameFilter(name=["canary.release.promoted", "canary.production.restored"]),
        resource=EventResourceFilter(id=[f"canary.app.{app}"]),
    )
    with get_client(sync_client=True) as client:
        events = client.read_events(filter=query, limit=50).events
    if not events:
        return None
    newest = max(events, key=lambda e: e.occurred)
    # A plain datetime: Prefect's DateTime subclass drops its tzinfo in `+ timedelta`.
    occurred = datetime.fromtimestamp(newest.occurred.timestamp(), UTC)
    return {"occurred": occurred, "event": newest.event, **newest.payload}


#: the events that say an app has a release history (and that name it as canary.app.<app>)
HISTORY_EVENTS = ["canary.release.promoted", "canary.release.rolled-back",
                  "canary.release.aborted", "canary.production.restored"]  # fmt: skip


@task(name="find-released-apps", cache_policy=NO_CACHE, **RETRYING)
def find_released_apps(*, within_days: int = 7, max_pages: int = 200) -> list[str]:
    """Every app with a release (or a restore) in the event history, sorted: what the
    scheduled re-analysis and reconcile fan out over."""
    now = datetime.now(UTC)
    query = EventFilter(
        occurred=EventOccurredFilter(since=now - timedelta(days=within_days), until=now),
        event=EventNameFilter(name=HISTORY_EVENTS),
        resource=EventResourceFilter(id_prefix=["canary.app."]),
    )
    apps: set[str] = set()
    with get_client(sync_client=True) as client:
        page = client.read_events(filter=query, limit=50)  # the server allows at most 50
        for _ in range(max_pages):
            apps.update(e.resource.id.removeprefix("canary.app.") for e in page.events)
            if not page.next_page:
                break
            page = client.read_events_page(str(page.next_page))  # Prefect str()s it too
    return sorted(a for a in apps if a)
