"""What Prefect knows about flow runs: typed records, the queue's view, and the few writes
an operator makes (cancel, create, resume, mark crashed).

The runs of one app are found by their flow and their ``app`` parameter, not by name: a run
gets its flow_run_name (``<flow>-<app>-...``) only when its process starts, so a run still
Scheduled or Pending carries a random name. Their parameters say the commit and when it
was pushed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterName,
    FlowRunFilterStartTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.flow_runs import resume_flow_run
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import Cancelling, Crashed

from canary.queue import Candidate
from store.client import client

__all__ = [
    "DONE_NAMES", "LIVE", "RunRecord", "cancel", "candidate", "candidate_for", "create_run",
    "mark_crashed", "record", "resume", "run", "runs", "sibling_runs", "task_run_names",
]  # fmt: skip

#: Not final: the run may still act.
LIVE = frozenset({StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED,
                  StateType.CANCELLING})  # fmt: skip
_LIVE_NAMES = frozenset(t.value for t in LIVE)
#: State names of runs whose work is done (a release that ended, either way).
DONE_NAMES = frozenset({"Completed", "Promoted", "RolledBack"})

Parameters = dict[str, object]


@dataclass(frozen=True)
class RunRecord:
    """One flow run as this project reads it.

    Attributes:
        id: The run's id.
        name: Its name (random until its process starts).
        flow: The flow's id (Prefect's runs carry no flow name).
        state_name: Its state's name (``Running``, ``Promoted``, ``Crashed``...; ``?``: none).
        state_type: Its state's type as Prefect spells it (``RUNNING``...; ``?``: none).
        message: Its state's message.
        pause_key: The key of the input it waits for, when paused.
        parameters: Its parameters.
        created: When it was created.
        started: When it started (None: not yet).
        ended: When it ended (None: not yet).
        tags: Its tags.
    """

    id: str
    name: str
    flow: str
    state_name: str
    state_type: str
    message: str | None
    parameters: Parameters
    created: datetime | None = None
    started: datetime | None = None
    ended: datetime | None = None
    pause_key: str | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def app(self) -> str:
        """The run's ``app`` parameter ("" when it has none)."""
        return str(self.parameters.get("app") or "")

    @property
    def commit(self) -> str:
        """The run's ``commit`` parameter ("" when it has none)."""
        return str(self.parameters.get("commit") or "")

    @property
    def version(self) -> str | None:
        """The run's ``version`` parameter."""
        value = self.parameters.get("version")
        return None if value is None else str(value)

    @property
    def live(self) -> bool:
        """True while the run may still act (not in a final state)."""
        return self.state_type in _LIVE_NAMES

    @property
    def seconds(self) -> float | None:
        """How long it ran (so far), None before it started."""
        if self.started is None:
            return None
        return ((self.ended or datetime.now(UTC)) - self.started).total_seconds()


def _aware(value: object) -> datetime | None:
    if isinstance(value, datetime):
        moment = datetime.fromtimestamp(value.timestamp(), UTC) if value.tzinfo else value
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def record(flow_run: FlowRun) -> RunRecord:
    """A Prefect flow run as a record.

    Args:
        flow_run: The run, as the client read it.

    Returns:
        The record.
    """
    state = flow_run.state
    details = state.state_details if state is not None else None
    return RunRecord(
        id=str(flow_run.id), name=flow_run.name, flow=str(flow_run.flow_id),
        state_name=(state.name or "?") if state else "?",
        state_type=state.type.value if state else "?",
        message=state.message if state else None,
        parameters=dict(flow_run.parameters or {}), created=_aware(flow_run.created),
        started=_aware(flow_run.start_time), ended=_aware(flow_run.end_time),
        pause_key=getattr(details, "pause_key", None), tags=tuple(flow_run.tags or ()),
    )  # fmt: skip


def candidate(run_record: RunRecord) -> Candidate:
    """A flow run as the queue sees it.

    Args:
        run_record: The run.

    Returns:
        The queue's candidate.
    """
    # Cancelled before its process ran the flow: the engine refuses to start a Cancelling
    # run, and Prefect may never mark it Cancelled (a cancel that lands while the worker
    # submits it is missed); it will never act, so it holds no place in any queue or lock.
    never = run_record.state_type == StateType.CANCELLING.value and run_record.started is None
    return Candidate(
        run_id=run_record.id, name=run_record.name, commit=run_record.commit.lower(),
        created=run_record.created or datetime.now(UTC), live=run_record.live and not never,
        completed=(run_record.state_type == StateType.COMPLETED.value
                   or run_record.state_name in DONE_NAMES),
        pushed_at=_aware(run_record.parameters.get("pushed_at")),
        started=run_record.started is not None,
    )  # fmt: skip


def candidate_for(commit: str, pushed_at: object = None) -> Candidate:
    """A commit that is not a run (production's), so the queue can compare against it.

    Args:
        commit: The commit.
        pushed_at: When it was pushed (a datetime or ISO text), if known.

    Returns:
        The queue's candidate.
    """
    return Candidate(run_id=f"commit:{commit}", name=f"production ({commit[:12]})",
                     commit=commit.lower(), created=datetime.min.replace(tzinfo=UTC), live=False,
                     pushed_at=_aware(pushed_at))  # fmt: skip


def sibling_runs(flow_name: str, app: str, *, within_days: int = 7,
                 api_url: str | None = None) -> list[Candidate]:  # fmt: skip
    """The runs of a flow for one app of the last days (the caller's included), as the
    queue sees them.

    Args:
        flow_name: The flow's name (``canary-release``).
        app: The app (the runs' ``app`` parameter).
        within_days: How far back started runs are read.
        api_url: An explicit API URL, or None.

    Returns:
        The queue's candidates.
    """
    flows = FlowFilter(name=FlowFilterName(any_=[flow_name]))
    since = datetime.now(UTC) - timedelta(days=within_days)
    newest = FlowRunSort.EXPECTED_START_TIME_DESC
    with client(api_url) as prefect:
        unstarted = prefect.read_flow_runs(flow_filter=flows, sort=newest, limit=200,
                                           flow_run_filter=FlowRunFilter(
                                               start_time=FlowRunFilterStartTime(is_null_=True)))
        started = prefect.read_flow_runs(flow_filter=flows, sort=newest, limit=200,
                                         flow_run_filter=FlowRunFilter(
                                             start_time=FlowRunFilterStartTime(after_=since)))
    found = {r.id: r for r in [*unstarted, *started] if (r.parameters or {}).get("app") == app}
    return [candidate(record(r)) for r in found.values()]


def runs(flow: str, app: str | None = None, *, live: bool | None = None, limit: int = 200,
         api_url: str | None = None) -> list[RunRecord]:  # fmt: skip
    """Started runs of a flow (named ``<flow>-<app>-...``), newest first.

    Args:
        flow: The flow's name.
        app: One app's runs only (None: every app's).
        live: True: live runs only; False: ended runs only; None: both.
        limit: At most this many runs are read.
        api_url: An explicit API URL, or None.

    Returns:
        The runs.
    """
    run_filter = FlowRunFilter(
        name=FlowRunFilterName(like_=f"{flow}-{app}-" if app else f"{flow}-"),
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=list(LIVE))) if live else None,
    )  # fmt: skip
    with client(api_url) as prefect:
        found = prefect.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow])),
                                       flow_run_filter=run_filter, sort=FlowRunSort.START_TIME_DESC,
                                       limit=limit)  # fmt: skip
    out = [record(r) for r in found if app is None or (r.parameters or {}).get("app") == app]
    return [r for r in out if not r.live] if live is False else out


def run(run_id: str | UUID, *, api_url: str | None = None) -> RunRecord:
    """One flow run.

    Args:
        run_id: Its id.
        api_url: An explicit API URL, or None.

    Returns:
        The run.
    """
    with client(api_url) as prefect:
        return record(prefect.read_flow_run(UUID(str(run_id))))


def task_run_names(run_id: str, *, api_url: str | None = None) -> list[str]:
    """The names of a flow run's task runs.

    Args:
        run_id: The flow run's id.
        api_url: An explicit API URL, or None.

    Returns:
        Their names.
    """
    with client(api_url) as prefect:
        found = prefect.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(run_id)])))
    return [t.name for t in found]


def cancel(run_id: str, message: str, *, api_url: str | None = None) -> None:
    """Ask a flow run to stop (state Cancelling).

    Args:
        run_id: Its id.
        message: Why, in words.
        api_url: An explicit API URL, or None.
    """
    with client(api_url) as prefect:
        prefect.set_flow_run_state(UUID(run_id), Cancelling(message=message), force=True)


def mark_crashed(run_id: str | UUID, message: str, *, api_url: str | None = None) -> RunRecord:
    """Mark a run whose process is gone Crashed, unless it already ended.

    Args:
        run_id: Its id.
        message: Why it is known to be gone.
        api_url: An explicit API URL, or None.

    Returns:
        The run, as it is now.
    """
    run_uuid = UUID(str(run_id))
    with client(api_url) as prefect:
        found = prefect.read_flow_run(run_uuid)
        if found.state is not None and not found.state.is_final():
            prefect.set_flow_run_state(run_uuid, Crashed(message=message), force=True)
            found = prefect.read_flow_run(run_uuid)
    return record(found)


def create_run(flow: str, deployment: str, parameters: Parameters, *,
               api_url: str | None = None) -> RunRecord:  # fmt: skip
    """Start a run of a deployment.

    Args:
        flow: The flow's name.
        deployment: The deployment's name.
        parameters: The run's parameters.
        api_url: An explicit API URL, or None.

    Returns:
        The new run.
    """
    with client(api_url) as prefect:
        found = prefect.read_deployment_by_name(f"{flow}/{deployment}")
        return record(prefect.create_flow_run_from_deployment(found.id, parameters=parameters))


def resume(run_id: str, run_input: dict[str, str], *, api_url: str | None = None) -> None:
    """Resume a paused run with a person's input.

    Args:
        run_id: Its id.
        run_input: The input the run waits for.
        api_url: An explicit API URL, or None.
    """
    if api_url is None:
        resume_flow_run(UUID(run_id), run_input=run_input)
        return
    with temporary_settings({PREFECT_API_URL: api_url}):
        resume_flow_run(UUID(run_id), run_input=run_input)
