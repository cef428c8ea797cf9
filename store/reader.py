"""The one reader of a chain's runs, events and artifacts, for the demo and the benches.

Everything comes back as the frozen records of store.records (``FlowRun``, ``RunState``,
``TaskRun``, ``Event``, ``Artifact``, ``LogLine``) and our own events as their typed models
(``Recorded[ReleaseEnded]``, ``Recorded[BuildSucceeded]``), never as Prefect's models: a
caller does not know (or care) how the store talks to the server. Every call goes through
the store's one Prefect client (store.client.client).

``PrefectReader`` only reads. ``PrefectAdmin`` holds the few writes the demo and the benches
make to their own private chains (cancel a leftover run, pause schedules, switch an
automation off); it is not part of the reader's surface.

Every failure to talk to the server (unreachable, an HTTP error status, an answer that is
not what the client expects) raises ``ApiError``, an ``OSError`` (and an ``ApiUnreachable``),
so a poll loop catches one exception type.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TypeVar
from uuid import UUID

import httpx
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import DeploymentUpdate
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    DeploymentFilter,
    DeploymentFilterName,
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.sorting import ArtifactSort, FlowRunSort, LogSort, TaskRunSort
from prefect.events.filters import EventAnyResourceFilter, EventFilter, EventNameFilter
from prefect.exceptions import PrefectException
from prefect.settings import (
    PREFECT_API_REQUEST_TIMEOUT,
    PREFECT_CLIENT_MAX_RETRIES,
    temporary_settings,
)
from prefect.states import Cancelled

from canary.values.events import BuildSucceeded, ReleaseEnded, app_resource, parse_event
from canary.values.outcome import Outcome
from store.client import ApiUnreachable, client
from store.records import (
    Artifact,
    Event,
    FlowRun,
    LogLine,
    Recorded,
    RunState,
    TaskRun,
    iso,
    seconds,
    text,
)

__all__ = ["ApiError", "PrefectAdmin", "PrefectReader"]

M = TypeVar("M", ReleaseEnded, BuildSucceeded)


class ApiError(ApiUnreachable, OSError):
    """The server could not be reached, answered an error, or answered something unexpected."""


class _Server:
    """One Prefect server at one URL, every call a client of the store's; failures are ApiErrors.

    Each request is tried once (no retries of Prefect's own, as the REST reader before it):
    a poll loop asks again on its next turn, and an unreachable server fails at once.

    Args:
        api_url: The Prefect API's URL.
        timeout: Seconds one request may take.
    """

    def __init__(self, api_url: str, timeout: float) -> None:
        self.url = api_url.rstrip("/")
        self.timeout = timeout

    @contextmanager
    def client(self) -> Iterator[SyncPrefectClient]:
        """The store's Prefect client for one call (store.client.client).

        Yields:
            The client.

        Raises:
            ApiError: The call failed: unreachable, an error status, an unexpected answer.
        """
        try:
            settings = {PREFECT_API_REQUEST_TIMEOUT: self.timeout, PREFECT_CLIENT_MAX_RETRIES: 0}
            with temporary_settings(settings), client(self.url) as prefect:
                yield prefect
        except ApiError:
            raise
        except (ApiUnreachable, httpx.HTTPError, PrefectException, ValueError) as exc:
            raise ApiError(f"{self.url}: {exc}") from exc


def _run_filter(run_id: str) -> FlowRunFilter:
    return FlowRunFilter(id=FlowRunFilterId(any_=[UUID(run_id)]))


class PrefectReader:
    """Reads a chain's flow runs, task runs, logs, artifacts and events (read only).

    Args:
        api_url: The Prefect API's URL (``http://127.0.0.1:4200/api``).
        timeout: Seconds one request may take.
    """

    def __init__(self, api_url: str, *, timeout: float = 10.0) -> None:
        self._server = _Server(api_url, timeout)

    def runs(self, deployments: Sequence[str], *, limit: int = 100) -> list[FlowRun]:
        """The newest runs of the named deployments, newest expected start first."""
        with self._server.client() as prefect:
            found = prefect.read_flow_runs(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=list(deployments))),
                sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=limit,
            )  # fmt: skip
        return [FlowRun.of(run) for run in found]

    def run_for(self, deployment: str, commit: str) -> FlowRun | None:
        """The newest run of `deployment` for `commit` (its ``commit`` parameter), if any."""
        return next((r for r in self.runs([deployment]) if r.commit == commit), None)

    def run_states(self, run_id: str) -> list[RunState]:
        """Every state the flow run went through, oldest first."""
        with self._server.client() as prefect:
            states = [RunState.of(s) for s in prefect.read_flow_run_states(UUID(run_id))]
        return sorted(states, key=lambda s: s.at or 0.0)

    def task_runs(self, run_id: str, *, limit: int = 200) -> list[TaskRun]:
        """The flow run's task runs, by expected start."""
        with self._server.client() as prefect:
            found = prefect.read_task_runs(flow_run_filter=_run_filter(run_id),
                                           sort=TaskRunSort.EXPECTED_START_TIME_ASC, limit=limit)  # fmt: skip
        return [TaskRun(str(t.id), t.name, text(t.state_type),
                        seconds(t.start_time), seconds(t.end_time)) for t in found]  # fmt: skip

    def logs(self, run_id: str, *, limit: int = 200) -> list[LogLine]:
        """The flow run's log lines, oldest first."""
        query = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[UUID(run_id)]))
        with self._server.client() as prefect:
            found = prefect.read_logs(log_filter=query, limit=limit, sort=LogSort.TIMESTAMP_ASC)
        return [LogLine(iso(line.timestamp), line.message) for line in found]

    def latest_artifact(self, run_id: str, key: str) -> Artifact | None:
        """The flow run's newest artifact under `key`, if any."""
        query = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(run_id)]),
                               key=ArtifactFilterKey(any_=[key]))  # fmt: skip
        with self._server.client() as prefect:
            found = prefect.read_artifacts(artifact_filter=query, sort=ArtifactSort.CREATED_DESC,
                                           limit=1)  # fmt: skip
        return Artifact(found[0].key or "", found[0].description or "") if found else None

    def deployment_names(self) -> dict[str, str]:
        """Deployment id -> name, for every deployment."""
        with self._server.client() as prefect:
            return {str(d.id): d.name for d in prefect.read_deployments(limit=200)}

    def events(self, names: Iterable[str], *, app: str | None = None, limit: int = 50) -> list[Event]:
        """Stored events with one of `names` (about `app`, when given), as the server orders them."""
        query = EventFilter(event=EventNameFilter(name=list(names)))
        if app is not None:
            query.any_resource = EventAnyResourceFilter(id=[app_resource(app)["prefect.resource.id"]])
        with self._server.client() as prefect:
            page = prefect.read_events(filter=query, limit=limit)
        return [Event.of(e) for e in page.events]

    def worker_online(self, pool: str) -> bool:
        """Whether a worker of the work pool `pool` is online."""
        with self._server.client() as prefect:
            workers = prefect.read_workers_for_work_pool(pool)
        return any(text(w.status) == "ONLINE" for w in workers)

    def release_end(self, app: str, commit: str) -> Recorded[ReleaseEnded] | None:
        """How the release of `commit` ended (its ``canary.release.<outcome>`` event), if it has."""
        return self._ours(ReleaseEnded, [o.event for o in Outcome], app, commit)

    def build_succeeded(self, app: str, commit: str) -> Recorded[BuildSucceeded] | None:
        """The ``canary.build.succeeded`` event of `commit`, once stored."""
        return self._ours(BuildSucceeded, [BuildSucceeded.name], app, commit)

    def _ours(self, kind: type[M], names: list[str], app: str, commit: str) -> Recorded[M] | None:
        for event in self.events(names, app=app):
            try:
                model = parse_event(event.name, event.resource_id, event.payload)
            except ValueError:
                continue  # not the shape we emit: not an event of ours
            if isinstance(model, kind) and model.commit == commit:
                return Recorded(model, event.occurred, event.received)
        return None


class PrefectAdmin:
    """The few writes the demo and the benches make to a chain of their own.

    Args:
        api_url: The Prefect API's URL.
        timeout: Seconds one request may take.
    """

    def __init__(self, api_url: str, *, timeout: float = 10.0) -> None:
        self._server = _Server(api_url, timeout)

    def cancel(self, run_id: str, message: str) -> None:
        """Force a flow run into Cancelled (a leftover of an earlier demo)."""
        with self._server.client() as prefect:
            prefect.set_flow_run_state(run_id, Cancelled(message=message), force=True)

    def set_automation(self, name: str, *, enabled: bool) -> None:
        """Switch the named automation on or off.

        Raises:
            RuntimeError: No automation has that name.
        """
        with self._server.client() as prefect:
            found = prefect.read_automations_by_name(name)
            for automation in found:
                if enabled:
                    prefect.resume_automation(automation.id)
                else:
                    prefect.pause_automation(automation.id)
        if not found:
            raise RuntimeError(f"automation {name!r} not found")

    def set_job_variables(self, deployments: set[str], variables: Mapping[str, object]) -> None:
        """Merge `variables` into the job variables of the named deployments."""
        with self._server.client() as prefect:
            for dep in prefect.read_deployments(limit=200):
                if dep.name in deployments:
                    merged = {**dep.job_variables, **variables}
                    prefect.update_deployment(dep.id, DeploymentUpdate(job_variables=merged))

    def pause_scheduled(self, keep: set[str]) -> list[str]:
        """Pause deployments with schedules (the cron re-analysis) except those in `keep`.

        Returns:
            The names of the deployments paused.
        """
        paused = []
        with self._server.client() as prefect:
            for dep in prefect.read_deployments(limit=200):
                if dep.name not in keep and dep.schedules and not dep.paused:
                    prefect.pause_deployment(dep.id)
                    paused.append(dep.name)
        return paused
