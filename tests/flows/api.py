"""Reading back what a flow run left on the test server: events, artifacts, task runs.

Events pass through the server's persister and task-run states through its recorder, so
both arrive late (up to a flush interval): poll them with a deadline. Artifacts are
written synchronously by the flow and can be read at once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
)
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

T = TypeVar("T")
DEADLINE = 20.0


def poll(read: Callable[[], T], ok: Callable[[T], bool], deadline: float = DEADLINE) -> T:
    """read() until ok(result) or the deadline passes; the last result either way."""
    end = time.monotonic() + deadline
    while True:
        result = read()
        if ok(result) or time.monotonic() > end:
            return result
        time.sleep(0.25)


def events(name: str, app: str, *, at_least: int = 1) -> list[Any]:
    """Events `name` about resource canary.app.<app>, oldest first (waits for `at_least`)."""

    def read() -> list[Any]:
        flt = EventFilter(
            event=EventNameFilter(name=[name]),
            resource=EventResourceFilter(id=[f"canary.app.{app}"]),
        )
        with get_client(sync_client=True) as client:
            page = client.read_events(filter=flt, limit=50)
        return sorted(page.events, key=lambda e: e.occurred)

    return poll(read, lambda found: len(found) >= at_least)


def artifacts(flow_run_id: UUID) -> list[Any]:
    flt = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=flt)


def artifacts_of(flow_run_id: UUID, type_: str) -> list[Any]:
    found = [a for a in artifacts(flow_run_id) if a.type == type_]
    return sorted(found, key=lambda a: a.created)


def table_rows(artifact: Any) -> list[dict[str, Any]]:
    data = artifact.data
    return json.loads(data) if isinstance(data, str) else data


def task_runs(flow_run_id: UUID, *, until: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The flow run's task runs by name, polled until `until(runs)` holds."""

    def read() -> dict[str, Any]:
        flt = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(flow_run_filter=flt, limit=200)
        return {run.name: run for run in runs}

    return poll(read, until)


def finished(*names: str) -> Callable[[dict[str, Any]], bool]:
    """A task_runs() condition: every named task run is in a final state."""

    def ok(runs: dict[str, Any]) -> bool:
        return all(n in runs and runs[n].state and runs[n].state.is_final() for n in names)

    return ok


def concurrency_limit(name: str) -> Any:
    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(name)


def logs_matching(text: str) -> list[str]:
    """Messages of the run logs on the server that contain `text` (logs arrive in batches)."""
    from prefect.client.schemas.filters import LogFilter
    from prefect.client.schemas.sorting import LogSort

    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(), limit=200, sort=LogSort.TIMESTAMP_DESC)
    return [log.message for log in logs if text in log.message]


def task_runs_in_order(flow_run_id: UUID, *, last: str) -> list[Any]:
    """The flow run's task runs in the order they started (a name may recur), polled until
    every one of them, `last` among them, is in a final state."""

    def read() -> list[Any]:
        flt = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(flow_run_filter=flt, limit=200)
        return sorted(runs, key=lambda run: (run.start_time or run.expected_start_time, run.name))

    def done(runs: list[Any]) -> bool:
        return any(run.name == last for run in runs) and all(
            run.state is not None and run.state.is_final() for run in runs)

    return poll(read, done)
