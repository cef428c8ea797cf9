"""Moved to store.artifacts, store.current and store.events (typed events).

Compatibility only: flows/canary_release.py and flows/reanalysis.py still import these names
from here. Delete this module once they import from their homes (see the import map in
the i21-store report).
"""

from __future__ import annotations

from collections.abc import Mapping

from canary.values.events import APP_RESOURCE_PREFIX, parse_event
from store.artifacts import (
    Progress,
    progress,
    publish_graph_links,
    publish_interval,
    publish_report,
    start_progress,
)
from store.current import rename_run, run_link, tag_run
from store.events import emit as emit_event

__all__ = ["Progress", "emit", "progress", "publish_graph_links", "publish_interval",
           "publish_report", "rename_run", "run_link", "start_progress", "tag_run"]  # fmt: skip


def emit(event: str, app: str, payload: Mapping[str, object]) -> None:
    """Emit one of our events from its name and payload, typed on the way (store.events.emit).

    Args:
        event: The event's name.
        app: The app it is about.
        payload: Its payload.

    Raises:
        ValueError: Not one of our events, or a payload of the wrong shape.
    """
    model = parse_event(event, f"{APP_RESOURCE_PREFIX}{app}", payload)
    if model is None:
        raise ValueError(f"{event!r} is not one of canary.values.events' events")
    emit_event(model)
