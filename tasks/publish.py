"""Publishing to the Prefect UI: per-interval tables, progress, the final report, events.

Plain functions (not tasks): an artifact or event belongs to the flow run that makes it.
Nothing published here ever contains a secret: only names, images, numbers and reasons.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.events import emit_event

from canary.report import JudgementRecord, interval_rows


def _key(*parts: object) -> str:
    """Artifact keys: lowercase letters, digits and dashes only."""
    text = "-".join(str(p) for p in parts).lower()
    return "".join(c if c.isalnum() or c == "-" else "-" for c in text)


def start_progress(app: str, description: str) -> UUID:
    return create_progress_artifact(progress=0.0, key=_key("canary-progress", app),
                                    description=description)  # fmt: skip


def progress(artifact_id: UUID, percent: float) -> None:
    update_progress_artifact(artifact_id=artifact_id, progress=max(0.0, min(100.0, percent)))


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


def publish_report(app: str, markdown: str, description: str, *, kind: str = "canary") -> None:
    create_markdown_artifact(key=_key(f"{kind}-report", app), markdown=markdown,
                             description=description)  # fmt: skip


def emit(event: str, app: str, payload: dict[str, Any]) -> None:
    emit_event(
        event=event,
        resource={"prefect.resource.id": f"canary.app.{app}", "app": app},
        payload=payload,
    )
