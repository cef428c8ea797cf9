"""After a release ended badly (crashed, cancelled, its process killed): put production back
in order, say in words what happened, and free the app's lock if nobody alive holds it.

Plain functions (not tasks): the release's own state hooks call them in the dying process,
and the `reconcile` flow calls them when the process is gone (an automation on Crashed /
Cancelled / Failed canary-release runs starts it). Both may run for the same release; the
report and the event are then published once, by whichever comes first.
"""

from __future__ import annotations

import contextlib
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactCreate, GlobalConcurrencyLimitUpdate
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.events import emit_event

from canary.cleanup import run_cleanup
from canary.queue import Candidate
from tasks import runs
from tasks.setup import release_lock_name

#: Flows that take an app's lock (their runs are named `<flow>-<app>-...`).
LOCK_TAKERS = ("canary-release", "reconcile", "restore-production", "canary-reanalysis")


def other_lock_takers(app: str, *, me: str | None = None) -> list[Candidate]:
    """The live runs (but `me`) of the flows that take the app's lock and have started: one
    of them may hold it. Runs not yet started hold nothing (the scheduler keeps future
    re-analysis runs Scheduled all along)."""
    return [c for flow in LOCK_TAKERS for c in runs.sibling_runs(flow, app)
            if c.live and c.started and c.run_id != me]  # fmt: skip


def describe_end(state: Any) -> str:
    """A run's end in words, never an empty message or a bare exception repr."""
    name = getattr(state, "name", None) or "ended"
    message = (getattr(state, "message", None) or "").strip()
    words = {
        "Crashed": "the release's process crashed or was killed",
        "Cancelled": "the release was cancelled",
        "Cancelling": "the release was cancelled",
        "Failed": "the release failed",
        "TimedOut": "the release timed out",
    }.get(name, f"the release ended {name}")
    return f"{words}: {message}" if message else words


def cleanup_platform(platform: Any, app: str) -> tuple[list[str], BaseException | None]:
    """The cleanup order of canary.cleanup, straight on the platform's adapters."""
    router, workloads = platform.router(), platform.workloads()
    return run_cleanup({
        "roll_back_traffic": lambda: router.rollback(app),
        "remove_baseline": lambda: workloads.remove(app, "baseline"),
        "remove_canary": lambda: workloads.remove(app, "canary"),
        "restore_routes": lambda: platform.restore_routes(app),
    })  # fmt: skip


def reported(run_id: UUID | str, app: str) -> bool:
    """True when the run (or a recovery for it) already published its release report."""
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(str(run_id))])),
            limit=50)  # fmt: skip
    return any(a.key == f"canary-report-{app}" for a in found)


def recover_release(platform: Any, app: str, *, run_id: UUID | str, image: str | None,
                    commit: str | None, why: str) -> dict[str, Any]:  # fmt: skip
    """Clean up after release `run_id`, read back what production runs, then report it (on
    the release's own run) and emit canary.release.promoted / rolled-back once."""
    steps, error = cleanup_platform(platform, app)
    production = None
    with contextlib.suppress(Exception):  # the report must go out even if this read fails
        production = platform.production_image(app)
    outcome = "promoted" if image is not None and production == image else "rolled-back"
    reason = (f"{why}; production runs {production or 'an unknown image'} (read back)"
              + (f"; cleanup failed: {error}" if error else ""))  # fmt: skip
    result = {"app": app, "run": str(run_id), "outcome": outcome, "reason": reason,
              "production": production, "cleanup": steps}  # fmt: skip
    if reported(run_id, app):
        return {**result, "published": False}
    markdown = "\n".join([
        f"# Canary release of `{app}`: **{outcome}**", "",
        f"- commit `{commit or '-'}`", f"- image `{image or '-'}`", f"- decision: {reason}", "",
        "## Cleanup", "", *[f"- {s}" for s in steps], "",
    ])  # fmt: skip
    with get_client(sync_client=True) as client:
        client.create_artifact(ArtifactCreate(
            key=f"canary-report-{app}", type="markdown", data=markdown,
            description=f"{app} {(commit or '')[:12]}: {outcome} ({why})",
            flow_run_id=UUID(str(run_id))))  # fmt: skip
    emit_event(event=f"canary.release.{outcome}",
               resource={"prefect.resource.id": f"canary.app.{app}", "app": app},
               payload={"image": image, "commit": commit, "reason": reason, "score": None,
                        "judgements": None, "previous_image": None, "recovered_run": str(run_id)})  # fmt: skip
    return {**result, "published": True}


def free_leaked_lock(app: str, *, me: str | None = None) -> str | None:
    """Free the app's lock when its slot is taken but no run that could hold it is alive
    (a server restart or a killed process can leave one); returns what was done, in words."""
    name = release_lock_name(app)
    with get_client(sync_client=True) as client:
        try:
            limit = client.read_global_concurrency_limit_by_name(name)
        except Exception:  # no limit yet: nothing held
            return None
        if limit.active_slots <= 0:
            return None
        if other_lock_takers(app, me=me):
            return None
        client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(active_slots=0))
    return (f"freed the lock {name!r}: {limit.active_slots} slot(s) were taken while no run that "
            "takes it was alive (left by a killed process or a server restart)")
