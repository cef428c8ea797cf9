"""Publishing to the Prefect UI: per-interval tables, progress, the final report, events.

Plain functions (not tasks): an artifact or event belongs to the flow run that makes it.
Nothing published here ever contains a secret: only names, images, numbers and reasons.
"""

from __future__ import annotations

import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.events import emit_event

from canary.report import JudgementRecord, interval_rows
from tasks.runs import current_flow_run


def _key(*parts: object) -> str:
    """Artifact keys: lowercase letters, digits and dashes only."""
    text = "-".join(str(p) for p in parts).lower()
    return "".join(c if c.isalnum() or c == "-" else "-" for c in text)


def _created(artifact_id: UUID | Coroutine[Any, Any, UUID]) -> UUID:
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
        percent = max(0.0, min(100.0, percent))
        due = time.monotonic() - self.at >= self.every
        if percent >= 100.0 > self.shown or percent - self.shown >= self.step or (due and percent > self.shown):
            update_progress_artifact(artifact_id=self.artifact_id, progress=percent)
            self.shown, self.at = percent, time.monotonic()


def start_progress(app: str, description: str) -> Progress:
    return Progress(_created(create_progress_artifact(progress=0.0, key=_key("canary-progress", app),
                                                      description=description)))  # fmt: skip


def progress(bar: Progress, percent: float) -> None:
    bar(percent)


def publish_interval(app: str, record: JudgementRecord, *, kind: str = "canary") -> None:
    """`kind` keeps releases ("canary-…") and re-analyses ("canary-reanalysis-…") apart."""
    j = record.judgement
    create_table_artifact(
        key=_key(f"{kind}-interval", app),
        table=interval_rows(record),
        description=(
            f"{app} judgement #{record.index}: score {j.summary_score:g} → {j.verdict.value} "
            f"(canary share {record.canary_share}%)"
        ),
    )


def publish_report(app: str, markdown: str, description: str, *, kind: str = "canary") -> UUID:
    """The report artifact; its id goes into the release's event."""
    return _created(create_markdown_artifact(key=_key(f"{kind}-report", app), markdown=markdown,
                                             description=description))  # fmt: skip


def publish_graph_links(app: str, links: list[tuple[str, str]]) -> None:
    """One link artifact per metric: its Prometheus graph over the analysis."""
    for metric, url in links:
        create_link_artifact(key=_key("canary-graph", app, metric), link=url,
                             link_text=f"{metric}: baseline and canary in Prometheus",
                             description=f"{app} {metric} in Prometheus")  # fmt: skip


def run_link() -> str | None:
    """This flow run's page in the Prefect UI, for events and notifications."""
    from prefect.settings import PREFECT_UI_URL

    ui = PREFECT_UI_URL.value()
    try:
        run_id = current_flow_run().id
    except Exception:
        return None
    return f"{ui}/runs/flow-run/{run_id}" if ui else None


def emit(event: str, app: str, payload: dict[str, Any]) -> None:
    emit_event(
        event=event,
        resource={"prefect.resource.id": f"canary.app.{app}", "app": app},
        payload=payload,
    )


def tag_run(**labels: str | None) -> None:
    """Set `name:value` tags on this flow run (app, commit, version, outcome), replacing a
    tag of the same name; the runs list can then be filtered by them."""
    from prefect.client.orchestration import get_client

    try:
        run_id = current_flow_run().id
    except Exception:
        return
    with get_client(sync_client=True) as client:
        tags = list(client.read_flow_run(run_id).tags or [])
        for name, value in labels.items():
            if value:
                tags = [t for t in tags if not t.startswith(f"{name}:")] + [f"{name}:{value}"]
        client.update_flow_run(run_id, tags=tags)


def rename_run(name: str) -> None:
    """Give this flow run a name known only once it runs (a re-analysis's window)."""
    from prefect.client.orchestration import get_client

    try:
        run_id = current_flow_run().id
    except Exception:
        return
    with get_client(sync_client=True) as client:
        client.update_flow_run(run_id, name=name)
