"""After a release ended badly (crashed, cancelled, its process killed): put production back
in order, say in words what happened, and free the app's lock if nobody alive holds it.

Plain functions (not tasks): the release's own state hooks call them in the dying process,
and the `reconcile` flow calls them when the process is gone (an automation on Crashed /
Cancelled / Failed canary-release runs starts it). Both may run for the same release; the
report and the event are then published once, by whichever comes first.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactCreate, GlobalConcurrencyLimitUpdate
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.events import emit_event

from canary.cleanup import run_cleanup
from canary.config.release import ReleaseSpec
from canary.queue import Candidate
from tasks import runs
from tasks.setup import DEFAULT_SPEC, LOCK_LEASE_SECONDS, release_config_of, release_lock_name

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


def spec_of_run(app: str, params: dict[str, Any]) -> tuple[ReleaseSpec | None, str]:
    """(the release spec a canary-release run judged with, read again from its parameters
    the way the run read it; where it came from, in words). (None, why) when it cannot be
    read any more (a file gone or changed, a worker with another checkout): the platform
    then falls back as for a run that names none (docs/kubernetes.md) and says so."""
    source = ("the commit's .canary/release.yaml" if params.get("app_config")
              else f"the release spec {params.get('config') or DEFAULT_SPEC.format(app=app)}")  # fmt: skip
    try:
        spec, _ = release_config_of(app, str(params.get("commit") or ""),
                                    params.get("app_config"), params.get("config"))  # fmt: skip
    except Exception as exc:  # a repair must still run
        return None, (f"{source} of the release could not be read again ({exc}); repaired "
                      "with the platform's fallback spec")  # fmt: skip
    return spec, f"repaired with the options of {source}, as the release used them"


def cleanup_platform(platform: Any, app: str,
                     spec: ReleaseSpec | None) -> tuple[list[str], BaseException | None]:  # fmt: skip
    """The cleanup order of canary.cleanup, straight on the platform's adapters."""
    router, workloads = platform.router(app, spec), platform.workloads(app, spec)
    return run_cleanup({
        "roll_back_traffic": lambda: router.rollback(app),
        "remove_baseline": lambda: workloads.remove(app, "baseline"),
        "remove_canary": lambda: workloads.remove(app, "canary"),
        "restore_routes": lambda: platform.restore_routes(app, spec),
    })  # fmt: skip


def reported(run_id: UUID | str, app: str) -> bool:
    """True when the run (or a recovery for it) already published its release report."""
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(str(run_id))])),
            limit=50)  # fmt: skip
    return any(a.key == f"canary-report-{app}" for a in found)


def recover_release(platform: Any, app: str, spec: ReleaseSpec | None, *, run_id: UUID | str,
                    image: str | None, commit: str | None, why: str) -> dict[str, Any]:  # fmt: skip
    """Clean up after release `run_id` with the adapters made for `spec` (the one it
    judged with, see spec_of_run), read back what production runs, then report it (on
    the release's own run) and emit canary.release.promoted / rolled-back once."""
    steps, error = cleanup_platform(platform, app, spec)
    production = None
    with contextlib.suppress(Exception):  # the report must go out even if this read fails
        production = platform.production_image(app, spec)
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


#: How long a slot may stay taken with no live run that takes the lock before it is known to
#: have no lease behind it: a killed holder's lease lapses LOCK_LEASE_SECONDS after its last
#: renewal and the server's repossessor (every 15 s) then frees the slot itself. Resetting the
#: count earlier would be wrong twice over: when the dead holder's lease is reaped later, the
#: server takes its slot back from whoever holds the lock by then (a live release).
LEAK_GRACE_SECONDS = LOCK_LEASE_SECONDS + 30


def _lock_limit(name: str) -> Any:
    with get_client(sync_client=True) as client:
        try:
            return client.read_global_concurrency_limit_by_name(name)
        except Exception:  # no limit yet: nothing held
            return None


def held_by_the_dead(app: str, *, me: str | None = None) -> bool:
    """The app's lock is taken and no run that could hold it is alive: its holder was
    killed (its lease lapses by itself) or a server restart lost the lease."""
    limit = _lock_limit(release_lock_name(app))
    return limit is not None and limit.active and limit.active_slots > 0 \
        and not other_lock_takers(app, me=me)


def free_leaked_lock(app: str, *, me: str | None = None, grace: float = LEAK_GRACE_SECONDS,
                     poll: float = 2.0) -> str | None:  # fmt: skip
    """Wait (up to `grace` s) for a lock held by the dead to be freed by the server when the
    holder's lease lapses; a slot still taken after that has no lease (a server restart
    without persistent lease storage) and is reset. Stops waiting as soon as a live run
    could hold the lock. Returns what happened, in words (None: nothing was held)."""
    name = release_lock_name(app)
    start = time.monotonic()
    while True:
        limit = _lock_limit(name)
        if limit is None or limit.active_slots <= 0:
            waited = time.monotonic() - start
            return (f"the lock {name!r} of a dead holder was freed by the server when its lease "
                    f"lapsed, {waited:.0f} s after this repair began") if waited >= poll else None
        if other_lock_takers(app, me=me):
            return None
        if time.monotonic() - start >= grace:
            break
        time.sleep(poll)
    with get_client(sync_client=True) as client:
        client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(active_slots=0))
    return (f"freed the lock {name!r}: {limit.active_slots} slot(s) were still taken {grace:.0f} s "
            "after their holder died, with no lease behind them (a server restart lost it)")


def found_in_words(found: dict[str, Any]) -> list[str]:
    """A platform's reconcile report (a dict) as sentences: what was stopped or forgotten,
    and what production is now."""
    lines = []
    stopped = found.get("stopped") or found.get("removed") or []
    if stopped:
        lines.append(f"stopped {len(stopped)} leftover process(es) or object(s) of earlier "
                     f"releases: {', '.join(map(str, stopped))}")  # fmt: skip
    dropped = found.get("dropped") or []
    if dropped:  # e.g. tracks that died with a killed release's process
        lines.append(f"forgot {len(dropped)} recorded process(es) of earlier releases that had "
                     f"already exited: {', '.join(map(str, dropped))}")  # fmt: skip
    if not stopped and not dropped:
        lines.append("found nothing left over from earlier releases")
    primary = found.get("primary")
    if primary is not None:
        what = f"process {primary}" if isinstance(primary, int) else str(primary)
        lines.append(f"production is {what}; all traffic goes to it (read back)")
    return lines
