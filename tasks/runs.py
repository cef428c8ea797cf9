"""What Prefect knows about the runs of a flow for one app: the queue's view, and whether
somebody asked this run to stop.

The runs of one app are found by their flow and their `app` parameter, not by name: a run
gets its flow_run_name (`<flow>-<app>-...`) only when its process starts, so a run still
Scheduled or Pending carries a random name. Their parameters say the commit and when it
was pushed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterStartTime,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.context import FlowRunContext, get_run_context

from canary.queue import Candidate

#: Not final: the run may still act.
LIVE = {StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED,
        StateType.CANCELLING}  # fmt: skip
#: State names of runs whose work is done (a release that ended, either way).
DONE_NAMES = {"Completed", "Promoted", "RolledBack"}


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def candidate(run: Any) -> Candidate:
    """A flow run as the queue sees it."""
    state = run.state
    params = run.parameters or {}
    created = _parse_time(run.created) or datetime.now(UTC)
    # Cancelled before its process ran the flow: the engine refuses to start a Cancelling
    # run, and Prefect may never mark it Cancelled (a cancel that lands while the worker
    # submits it is missed); it will never act, so it holds no place in any queue or lock.
    never = state is not None and state.type is StateType.CANCELLING and run.start_time is None
    return Candidate(
        run_id=str(run.id), name=run.name, commit=str(params.get("commit", "")).lower(),
        created=created, live=state is not None and state.type in LIVE and not never,
        completed=state is not None and (state.type is StateType.COMPLETED
                                         or state.name in DONE_NAMES),
        pushed_at=_parse_time(params.get("pushed_at")), started=run.start_time is not None,
    )  # fmt: skip


def candidate_for(commit: str, pushed_at: Any = None) -> Candidate:
    """A commit that is not a run (production's), so the queue can compare against it."""
    return Candidate(run_id=f"commit:{commit}", name=f"production ({commit[:12]})",
                     commit=commit.lower(), created=datetime.min.replace(tzinfo=UTC), live=False,
                     pushed_at=_parse_time(pushed_at))  # fmt: skip


def sibling_runs(flow_name: str, app: str, *, within_days: int = 7) -> list[Candidate]:
    """The runs of `flow_name` for `app` of the last days (this run included)."""
    flows = FlowFilter(name=FlowFilterName(any_=[flow_name]))
    since = datetime.now(UTC) - timedelta(days=within_days)
    newest = FlowRunSort.EXPECTED_START_TIME_DESC
    with get_client(sync_client=True) as client:
        unstarted = client.read_flow_runs(flow_filter=flows, sort=newest, limit=200,
                                          flow_run_filter=FlowRunFilter(
                                              start_time=FlowRunFilterStartTime(is_null_=True)))
        started = client.read_flow_runs(flow_filter=flows, sort=newest, limit=200,
                                        flow_run_filter=FlowRunFilter(
                                            start_time=FlowRunFilterStartTime(after_=since)))
    runs = {r.id: r for r in [*unstarted, *started] if (r.parameters or {}).get("app") == app}
    return [candidate(r) for r in runs.values()]


def current_flow_run() -> FlowRun:
    """The flow run the caller runs in (code of the flow itself, not of a task run).

    Raises RuntimeError elsewhere: in a task run's context, which has no flow run object,
    or when the flow context carries none."""
    ctx = get_run_context()
    if not isinstance(ctx, FlowRunContext) or ctx.flow_run is None:
        raise RuntimeError(f"no flow run in this context ({type(ctx).__name__})")
    return ctx.flow_run


def this_run() -> Candidate:
    """The calling flow run as the queue sees it."""
    run = current_flow_run()
    with get_client(sync_client=True) as client:
        return candidate(client.read_flow_run(run.id))


def stop_requested() -> str | None:
    """Why this run was asked to stop (a Cancelling or Cancelled state in its history, e.g.
    a person cancelled it while it was still queued), or None."""
    run_id = current_flow_run().id
    with get_client(sync_client=True) as client:
        states = client.read_flow_run_states(run_id)
    for state in states:
        if state.type in (StateType.CANCELLING, StateType.CANCELLED):
            return state.message or f"a person cancelled the run ({state.name})"
    return None
