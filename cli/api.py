"""The one Prefect API helper: releases, their runs, artifacts and events, through the Prefect
client. The operator CLI, `make demo` and the tests read Prefect through it.

Every call goes to PREFECT_API_URL; an unreachable server raises ApiUnreachable, which
says where it looked and what to do.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    ArtifactFilterType,
    DeploymentFilter,
    DeploymentFilterName,
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterName,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.sorting import ArtifactSort, FlowRunSort
from prefect.events.filters import (
    EventFilter,
    EventNameFilter,
    EventOccurredFilter,
    EventResourceFilter,
)
from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

__all__ = ["LIVE", "Api", "ApiUnreachable", "Release"]

LIVE = (StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED,
        StateType.CANCELLING)  # fmt: skip


class ApiUnreachable(RuntimeError):
    """The Prefect server did not answer."""


@dataclass(frozen=True)
class Release:
    """One canary-release run, as an operator sees it."""

    run_id: str
    name: str
    app: str
    commit: str
    version: str | None
    state: str
    state_type: str
    message: str | None
    started: datetime | None
    ended: datetime | None
    parameters: dict[str, Any]

    @property
    def live(self) -> bool:
        return self.state_type in {t.value for t in LIVE}

    @property
    def seconds(self) -> float | None:
        if self.started is None:
            return None
        end = self.ended or datetime.now(UTC)
        return (end - self.started).total_seconds()


def _release(run: Any) -> Release:
    params = dict(run.parameters or {})
    state = run.state
    return Release(
        run_id=str(run.id), name=run.name, app=str(params.get("app", "")),
        commit=str(params.get("commit", "")), version=params.get("version"),
        state=state.name if state else "?", state_type=state.type.value if state else "?",
        message=state.message if state else None, started=run.start_time, ended=run.end_time,
        parameters=params,
    )  # fmt: skip


class Api:
    """Reads (and the few writes an operator makes) against one Prefect server."""

    def __init__(self, api_url: str | None = None) -> None:
        self.api_url = (api_url or PREFECT_API_URL.value() or "").rstrip("/")
        if not self.api_url:
            raise ApiUnreachable("PREFECT_API_URL is not set: export it (e.g. "
                                 "http://127.0.0.1:4200/api for `make demo`)")  # fmt: skip
        ui = PREFECT_UI_URL.value()
        self.ui_url = (ui or self.api_url.removesuffix("/api")).rstrip("/")

    @contextmanager
    def client(self) -> Iterator[SyncPrefectClient]:
        from prefect.settings import temporary_settings

        try:
            with temporary_settings({PREFECT_API_URL: self.api_url}), \
                    get_client(sync_client=True) as client:
                yield client
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout) as exc:
            raise ApiUnreachable(f"the Prefect server at {self.api_url} did not answer ({type(exc).__name__}); "
                                 "is it running? (`make demo` starts one; check PREFECT_API_URL)") from None

    def check(self) -> None:
        with self.client() as client:
            client.api_healthcheck()
        try:
            httpx.get(f"{self.api_url}/health", timeout=5).raise_for_status()
        except httpx.HTTPError as exc:
            raise ApiUnreachable(f"the Prefect server at {self.api_url} did not answer ({type(exc).__name__}); "
                                 "is it running? (`make demo` starts one; check PREFECT_API_URL)") from None

    def run_url(self, run_id: str) -> str:
        return f"{self.ui_url}/runs/flow-run/{run_id}"

    # -- runs ---------------------------------------------------------------------------
    def releases(self, app: str | None = None, *, live: bool | None = None, limit: int = 200,
                 flow: str = "canary-release") -> list[Release]:  # fmt: skip
        """Runs of `flow` (newest first), of one app, live or final ones only."""
        run_filter = FlowRunFilter(
            name=FlowRunFilterName(like_=f"{flow}-{app}-" if app else f"{flow}-"),
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=list(LIVE))) if live else None,
        )  # fmt: skip
        with self.client() as client:
            runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow])),
                                         flow_run_filter=run_filter, sort=FlowRunSort.START_TIME_DESC,
                                         limit=limit)  # fmt: skip
        out = [_release(r) for r in runs if app is None or (r.parameters or {}).get("app") == app]
        if live is False:
            out = [r for r in out if not r.live]
        return out

    def run(self, run_id: str) -> Release:
        with self.client() as client:
            return _release(client.read_flow_run(UUID(run_id)))

    def run_state(self, run_id: str) -> Any:
        with self.client() as client:
            return client.read_flow_run(UUID(run_id)).state

    def task_run_names(self, run_id: str) -> list[str]:
        from prefect.client.schemas.filters import FlowRunFilterId

        with self.client() as client:
            tasks = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(run_id)])))
        return [t.name for t in tasks]

    def cancel(self, run_id: str, message: str) -> None:
        from prefect.states import Cancelling

        with self.client() as client:
            client.set_flow_run_state(UUID(run_id), Cancelling(message=message), force=True)

    def create_run(self, flow: str, deployment: str, parameters: dict[str, Any]) -> Release:
        with self.client() as client:
            dep = client.read_deployment_by_name(f"{flow}/{deployment}")
            run = client.create_flow_run_from_deployment(dep.id, parameters=parameters)
        return _release(run)

    def resume(self, run_id: str, run_input: dict[str, Any]) -> None:
        from prefect.flow_runs import resume_flow_run
        from prefect.settings import temporary_settings

        with temporary_settings({PREFECT_API_URL: self.api_url}):
            resume_flow_run(UUID(run_id), run_input=run_input)

    # -- artifacts ----------------------------------------------------------------------
    def artifacts(self, run_id: str, kind: str | None = None, key: str | None = None,
                  limit: int = 50) -> list[Any]:  # fmt: skip
        """The run's artifacts, newest first."""
        query = ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(run_id)]),
            type=ArtifactFilterType(any_=[kind]) if kind else None,
            key=ArtifactFilterKey(any_=[key]) if key else None,
        )  # fmt: skip
        with self.client() as client:
            return client.read_artifacts(artifact_filter=query, sort=ArtifactSort.CREATED_DESC,
                                         limit=limit)  # fmt: skip

    def latest_table(self, run_id: str) -> list[dict[str, Any]]:
        tables = self.artifacts(run_id, kind="table", limit=1)
        if not tables:
            return []
        data = tables[0].data
        return json.loads(data) if isinstance(data, str) else list(data or [])

    def progress(self, run_id: str) -> float | None:
        found = self.artifacts(run_id, kind="progress", limit=1)
        return float(found[0].data) if found else None

    # -- events -------------------------------------------------------------------------
    def events(self, app: str, prefixes: Sequence[str] = ("canary.release.",),
               *, days: int = 7, limit: int = 50) -> list[Any]:  # fmt: skip
        now = datetime.now(UTC)
        query = EventFilter(
            occurred=EventOccurredFilter(since=now - timedelta(days=days), until=now),
            event=EventNameFilter(prefix=list(prefixes)),
            resource=EventResourceFilter(id=[f"canary.app.{app}"]),
        )  # fmt: skip
        with self.client() as client:
            page = client.read_events(filter=query, limit=limit)
        return sorted(page.events, key=lambda e: e.occurred, reverse=True)

    def deployments(self, names: Sequence[str]) -> list[Any]:
        with self.client() as client:
            return client.read_deployments(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=list(names))))
