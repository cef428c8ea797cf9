"""Artifacts in the Prefect UI: per-interval tables, progress, reports and graph links, and
reading them back (the CLI's status).

An artifact belongs to the flow run that makes it (or, for a recovery, to the run it
reports on). Nothing published here ever contains a secret: only names, images, numbers
and reasons.
"""

from __future__ import annotations

import json
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.client.schemas.actions import ArtifactCreate
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    ArtifactFilterType,
)
from prefect.client.schemas.sorting import ArtifactSort
from prefect.settings import PREFECT_UI_URL

from canary.report import JudgementRecord, interval_rows, look_window
from store.client import client

__all__ = [
    "ArtifactRecord", "PLANNED_END", "Progress", "artifact_key", "artifacts", "latest_table",
    "progress", "progress_of", "publish_graph_links", "publish_interval", "publish_report", "reported",
    "start_progress",
]  # fmt: skip

Row = dict[str, object]

#: How a progress bar's description says when the analysis is planned to end (UTC).
PLANNED_END = "planned end "


def artifact_key(*parts: object) -> str:
    """An artifact key from its parts: lowercase letters, digits and dashes only."""
    text = "-".join(str(p) for p in parts).lower()
    return "".join(c if c.isalnum() or c == "-" else "-" for c in text)


def _created(artifact_id: UUID | Coroutine[object, object, UUID]) -> UUID:
    """The id a `create_*_artifact` call returned. Prefect dispatches those to their async
    version (a coroutine) when called from async code; the flows here are all sync."""
    if isinstance(artifact_id, UUID):
        return artifact_id
    artifact_id.close()  # never awaited: no artifact was made
    raise TypeError("a Prefect artifact was created from async code: publishing is sync-only")


@dataclass
class Progress:
    """A progress artifact updated at most every 10 % or 15 s (each update is an event in
    the feed: a bar moved every 2 s floods it)."""

    artifact_id: UUID
    shown: float = 0.0
    at: float = field(default_factory=time.monotonic)
    step: float = 10.0
    every: float = 15.0

    def __call__(self, percent: float) -> None:
        """Show ``percent`` (0-100) when it moved enough since the last update."""
        percent = max(0.0, min(100.0, percent))
        due = time.monotonic() - self.at >= self.every
        if percent >= 100.0 > self.shown or percent - self.shown >= self.step or (due and percent > self.shown):
            update_progress_artifact(artifact_id=self.artifact_id, progress=percent)
            self.shown, self.at = percent, time.monotonic()


def start_progress(app: str, description: str, *, ends: datetime | None = None) -> Progress:
    """A new progress bar (0 %) on the current flow run.

    Args:
        app: The app (names the artifact's key).
        description: What progresses, in words.
        ends: When it is planned to end (warm-up included): the description says it, so
            `canary status` counts the time left down from it (progress_of).

    Returns:
        The bar; call it (or ``progress``) with a percentage.
    """
    if ends is not None:
        description += f"; {PLANNED_END}{ends.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"
    return Progress(_created(create_progress_artifact(
        progress=0.0, key=artifact_key("canary-progress", app), description=description)))  # fmt: skip


def progress(bar: Progress, percent: float) -> None:
    """Move a progress bar (see Progress for how often it is really updated)."""
    bar(percent)


def publish_interval(app: str, record: JudgementRecord, *, kind: str = "canary") -> None:
    """One look's table on the current flow run.

    Args:
        app: The app.
        record: The look.
        kind: Keeps releases (``canary-…``) and re-analyses (``canary-reanalysis-…``) apart.
    """
    j = record.judgement
    create_table_artifact(
        key=artifact_key(f"{kind}-interval", app),
        table=interval_rows(record),
        description=(
            f"{app} judgement #{record.index}: score {j.summary_score:g} → {j.verdict.value} "
            f"(canary share {record.canary_share}%), {look_window(record)}"
        ),
    )


def publish_report(app: str, markdown: str, description: str, *, kind: str = "canary",
                   run_id: str | UUID | None = None) -> UUID:  # fmt: skip
    """The report artifact (key ``<kind>-report-<app>``); its id goes into the release's event.

    Args:
        app: The app.
        markdown: The report.
        description: Its one-line description.
        kind: ``canary`` (a release) or ``canary-reanalysis``.
        run_id: The flow run it belongs to (None: the current one; a recovery reports on
            the run it recovers).

    Returns:
        The artifact's id.
    """
    key = artifact_key(f"{kind}-report", app)
    if run_id is None:
        return _created(create_markdown_artifact(key=key, markdown=markdown, description=description))
    with client() as prefect:
        made = prefect.create_artifact(ArtifactCreate(key=key, type="markdown", data=markdown,
                                                      description=description,
                                                      flow_run_id=UUID(str(run_id))))  # fmt: skip
    return made.id


def report_link(report_id: UUID | str, *, ui_url: str | None = None) -> str:
    """The report artifact's page in the Prefect UI ("" when no UI URL is configured).

    Args:
        report_id: The report artifact's id (a release-end event's ``report``).
        ui_url: The UI's URL (None: PREFECT_UI_URL).

    Returns:
        The link, or "".
    """
    ui = ui_url or PREFECT_UI_URL.value()
    return f"{str(ui).rstrip('/')}/artifacts/artifact/{report_id}" if ui else ""


def publish_graph_links(app: str, links: list[tuple[str, str]]) -> None:
    """One link artifact per metric: its Prometheus graph over the analysis.

    Args:
        app: The app.
        links: (metric, URL) pairs.
    """
    for metric, url in links:
        create_link_artifact(key=artifact_key("canary-graph", app, metric), link=url,
                             link_text=f"{metric}: baseline and canary in Prometheus",
                             description=f"{app} {metric} in Prometheus")  # fmt: skip


@dataclass(frozen=True)
class ArtifactRecord:
    """One artifact as read back.

    Attributes:
        id: Its id.
        key: Its key (None: unkeyed).
        type: ``markdown``, ``table``, ``progress``, ``link``...
        description: Its description.
        data: Its data as stored (text, a number, rows...).
        created: When it was made.
    """

    id: str
    key: str | None
    type: str | None
    description: str | None
    data: object
    created: datetime | None


def artifacts(run_id: str | UUID, kind: str | None = None, key: str | None = None,
              limit: int = 50, *, api_url: str | None = None) -> list[ArtifactRecord]:  # fmt: skip
    """A flow run's artifacts, newest first.

    Args:
        run_id: The flow run's id.
        kind: Only artifacts of this type.
        key: Only artifacts with this key.
        limit: At most this many.
        api_url: An explicit API URL, or None.

    Returns:
        The artifacts.
    """
    query = ArtifactFilter(
        flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(str(run_id))]),
        type=ArtifactFilterType(any_=[kind]) if kind else None,
        key=ArtifactFilterKey(any_=[key]) if key else None,
    )  # fmt: skip
    with client(api_url) as prefect:
        found = prefect.read_artifacts(artifact_filter=query, sort=ArtifactSort.CREATED_DESC,
                                       limit=limit)  # fmt: skip
    return [ArtifactRecord(id=str(a.id), key=a.key, type=a.type, description=a.description,
                           data=a.data, created=a.created) for a in found]  # fmt: skip


def reported(run_id: str | UUID, app: str) -> bool:
    """True when the run (or a recovery for it) already published its release report."""
    key = artifact_key("canary-report", app)
    return any(a.key == key for a in artifacts(run_id))


def latest_table(run_id: str, *, api_url: str | None = None) -> tuple[list[Row], str]:
    """The newest table a run published: its rows and its description.

    Args:
        run_id: The flow run's id.
        api_url: An explicit API URL, or None.

    Returns:
        (rows, description); ([], "") when it has none.
    """
    tables = artifacts(run_id, kind="table", limit=1, api_url=api_url)
    if not tables:
        return [], ""
    data = tables[0].data
    rows = json.loads(data) if isinstance(data, str) else data
    return ([dict(r) for r in rows if isinstance(r, dict)] if isinstance(rows, list) else [],
            tables[0].description or "")  # fmt: skip


def progress_of(run_id: str, *, api_url: str | None = None) -> tuple[float | None, datetime | None]:
    """A run's progress in percent, and when its analysis is planned to end.

    Args:
        run_id: The flow run's id.
        api_url: An explicit API URL, or None.

    Returns:
        (percent, planned end); (None, None) when it has no progress bar, a None end when
        its bar does not say it (start_progress without ``ends``).
    """
    found = artifacts(run_id, kind="progress", limit=1, api_url=api_url)
    if not found:
        return None, None
    data, description = found[0].data, found[0].description or ""
    percent = float(data) if isinstance(data, int | float | str) else None
    ends = None
    if PLANNED_END in description:
        text = description.split(PLANNED_END, 1)[1].split(";", 1)[0].strip()
        try:
            ends = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            ends = None
    return percent, ends
