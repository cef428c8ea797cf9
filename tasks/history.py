"""What earlier releases left in Prefect's event history (kept 7 days by the server)."""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict

from prefect import task
from prefect.cache_policies import NO_CACHE

from canary.values.events import ReleaseEnded
from store import events as store_events
from tasks._retry import RETRYING

__all__ = ["LastChange", "find_released_apps", "last_production_change"]


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


@task(name="find-last-promotion", task_run_name="find-last-promotion-{app}",
      cache_policy=NO_CACHE, **RETRYING)  # fmt: skip
def last_production_change(app: str, *, within_days: int = 7) -> LastChange | None:
    """The newest production change of an app (a promoted release or a restore), typed.

    Args:
        app: The app.
        within_days: How far back.

    Returns:
        When, the event, the image it put in and the one it replaced; None when there is
        none.
    """
    change = store_events.last_production_change(app, within_days=within_days)
    if change is None:
        return None
    event = change.event
    ended = event if isinstance(event, ReleaseEnded) else None
    return LastChange(occurred=change.occurred, event=change.name, image=event.image,
                      previous_image=event.previous_image,
                      commit=ended.commit if ended else None,
                      pushed_at=ended.pushed_at if ended else None,
                      window_start=ended.window_start if ended else None)  # fmt: skip


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
