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
