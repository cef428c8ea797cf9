"""What earlier releases left in Prefect's event history (kept 7 days by the server), and
what production runs as a release's turn reads it."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from canary.ports import Platform
from store import events as store_events
from store.events import LastChange
from tasks._retry import RETRYING

__all__ = ["LastChange", "find_released_apps", "last_production_change", "read_production"]


@task(name="find-last-promotion", task_run_name="find-last-promotion-{app}",
      cache_policy=NO_CACHE, **RETRYING)  # fmt: skip
def last_production_change(app: str, *, within_days: int = 7) -> LastChange | None:
    """store.events.last_change as a retried task (see there)."""
    return store_events.last_change(app, within_days=within_days)


@task(name="read-production", task_run_name="production-{app}", cache_policy=NO_CACHE, **RETRYING)
def read_production(platform: Platform, app: str) -> tuple[str | None, LastChange | None]:
    """What production runs, for a release's turn, in one task run: the commit as the
    platform knows it, and the last production change in the event history
    (store.events.last_change). Both are reads: a transient error retries both.

    Args:
        platform: The platform block.
        app: The app.

    Returns:
        (production's commit, None where the platform does not know it; the last change,
        None when there is none in the history).
    """
    return platform.for_app(app, None).production_commit(), store_events.last_change(app)


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
