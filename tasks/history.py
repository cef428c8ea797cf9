"""What earlier releases left in Prefect's event history (kept 7 days by the server)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from store import events as store_events
from store.events import LastChange
from tasks._retry import RETRYING

__all__ = ["LastChange", "find_released_apps", "last_production_change"]


@task(name="find-last-promotion", task_run_name="find-last-promotion-{app}",
      cache_policy=NO_CACHE, **RETRYING)  # fmt: skip
def last_production_change(app: str, *, within_days: int = 7) -> LastChange | None:
    """store.events.last_change as a retried task (see there)."""
    return store_events.last_change(app, within_days=within_days)


@task(name="find-released-apps", cache_policy=NO_CACHE, **RETRYING)
def find_released_apps(*, within_days: int = 7, max_pages: int = 200) -> list[str]:
    """Every app with a release (or a restore) in the event history, sorted: what the
    scheduled re-analysis and reconcile fan out over.

    Args:
        within_days: How far back.
        max_pages: At most this many pages of 50 events are read.

    Returns:
        The apps' names.
    """
    return store_events.released_apps(within_days=within_days, max_pages=max_pages)
