"""The one reader of a chain's runs, events and artifacts, for the demo and the benches.

Everything comes back as frozen records (``FlowRun``, ``RunState``, ``TaskRun``, ``Event``,
``Artifact``, ``LogLine``) and our own events as their typed models (``Recorded[ReleaseEnded]``,
``Recorded[BuildSucceeded]``), never as the REST API's dicts: a caller does not know (or
care) whether they come from Prefect's REST API, as today, or from the project's store.

``PrefectReader`` only reads. ``PrefectAdmin`` holds the few writes the demo and the benches
make to their own private chains (cancel a leftover run, pause schedules, switch an
automation off); it is not part of the reader's surface.

Every failure to talk to the server (transport, an HTTP error status, a body that is not
JSON) raises ``ApiError``, an ``OSError``, so a poll loop catches one exception type.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar, cast

import httpx

from canary.values.events import BuildSucceeded, ReleaseEnded, app_resource, parse_event
from canary.values.outcome import Outcome

__all__ = [
    "ACTIVE",
    "FINAL",
    "ApiError",
    "Artifact",
    "Event",
    "FlowRun",
    "LogLine",
    "PrefectAdmin",
    "PrefectReader",
    "Recorded",
    "RunState",
    "TaskRun",
    "epoch",
]

#: Prefect's state types of a run that has ended, and of one that has not yet.
FINAL = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})
ACTIVE = frozenset({"SCHEDULED", "PENDING", "RUNNING", "CANCELLING", "PAUSED"})

_Json = Mapping[str, object]
M = TypeVar("M", ReleaseEnded, BuildSucceeded)


class ApiError(OSError):
    """The server could not be reached, answered an error, or answered something not JSON."""


def epoch(text: object) -> float | None:
    """Epoch seconds of an API timestamp (ISO 8601, ``Z`` allowed); None when absent or bad.

    Args:
        text: The timestamp as the API gives it (a string, or None).

    Returns:
        Seconds since the epoch, or None.
    """
    if not isinstance(text, str) or not text:
        return None
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    return None


def _obj(raw: object) -> _Json:
    return cast(_Json, raw) if isinstance(raw, Mapping) else {}


def _str(raw: _Json, key: str, default: str = "") -> str:
    value = raw.get(key)
    return value if isinstance(value, str) else default


def _opt_str(raw: _Json, key: str) -> str | None:
    value = raw.get(key)
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class FlowRun:
    """One flow run: its state, its commit parameter and when it was created, ran and ended."""

    id: str
    state_type: str
    state_name: str
    message: str = ""
    commit: str | None = None
    deployment_id: str | None = None
    created: float | None = None
    expected_start: float | None = None
    start: float | None = None
    end: float | None = None

    @classmethod
    def from_json(cls, raw: _Json) -> FlowRun:
        """The record of a flow run as ``/flow_runs/filter`` returns it."""
        state = _obj(raw.get("state"))
        return cls(
            id=_str(raw, "id"), state_type=_str(raw, "state_type"),
            state_name=_str(raw, "state_name") or _str(state, "name"),
            message=_str(state, "message"), commit=_opt_str(_obj(raw.get("parameters")), "commit"),
            deployment_id=_opt_str(raw, "deployment_id"), created=epoch(raw.get("created")),
            expected_start=epoch(raw.get("expected_start_time")),
            start=epoch(raw.get("start_time")), end=epoch(raw.get("end_time")),
        )  # fmt: skip

    @property
    def final(self) -> bool:
        """The run has ended (completed, failed, crashed or cancelled)."""
        return self.state_type in FINAL

    @property
    def failed(self) -> bool:
        """The run has ended and not completed (a failed build, a crash...)."""
        return self.final and self.state_type != "COMPLETED"

    @property
    def outcome(self) -> Outcome | None:
        """The release outcome its final state names, None for Prefect's own states."""
        return Outcome.from_state_name(self.state_name)


@dataclass(frozen=True)
class RunState:
    """One state a flow run went through: its type, name and when (ISO and epoch)."""

    type: str
    name: str
    timestamp: str

    @property
    def at(self) -> float | None:
        """The state's time in epoch seconds."""
        return epoch(self.timestamp)


@dataclass(frozen=True)
class TaskRun:
    """One task run of a flow run: its name, state type, start and end (epoch seconds)."""

    id: str
    name: str
    state_type: str
    start: float | None = None
    end: float | None = None


@dataclass(frozen=True)
class LogLine:
    """One log line of a flow run: its ISO timestamp and message."""

    timestamp: str
    message: str


@dataclass(frozen=True)
class Artifact:
    """One artifact: its key and its description (a table's or a markdown's caption)."""

    key: str
    description: str


@dataclass(frozen=True)
class Event:
    """One event as the server stored it: name, resource, payload, when it occurred."""

    name: str
    resource: Mapping[str, str]
    payload: Mapping[str, object]
    occurred: float | None = None
    received: float | None = None

    @classmethod
    def from_json(cls, raw: _Json) -> Event:
        """The record of an event as ``/events/filter`` returns it."""
        resource = {str(k): str(v) for k, v in _obj(raw.get("resource")).items()}
        return cls(_str(raw, "event"), resource, _obj(raw.get("payload")),
                   epoch(raw.get("occurred")), epoch(raw.get("received")))  # fmt: skip

    @property
    def resource_id(self) -> str:
        """The resource's id (``canary.app.<app>`` for ours)."""
        return self.resource.get("prefect.resource.id", "")


@dataclass(frozen=True)
class Recorded(Generic[M]):
    """One of our events, typed, with when it occurred and reached the server."""

    model: M
    occurred: float | None
    received: float | None


class _Http:
    """JSON over one kept-alive connection; every failure is an ``ApiError``."""

    def __init__(self, api_url: str, timeout: float) -> None:
        self.client = httpx.Client(base_url=api_url, timeout=timeout)

    def call(self, method: str, path: str, body: object = None) -> object:
        try:
            answer = self.client.request(method, path, json=body)
            answer.raise_for_status()
            return answer.json() if answer.content else None
        except (httpx.HTTPError, ValueError) as exc:
            raise ApiError(f"{method} {path}: {exc}") from exc

    def rows(self, method: str, path: str, body: object = None) -> list[_Json]:
        found = self.call(method, path, body)
        return [_obj(row) for row in found] if isinstance(found, list) else []


class PrefectReader:
    """Reads a chain's flow runs, task runs, logs, artifacts and events (read only).

    Args:
        api_url: The Prefect API's URL (``http://127.0.0.1:4200/api``).
        timeout: Seconds one request may take.
    """

    def __init__(self, api_url: str, *, timeout: float = 10.0) -> None:
        self._http = _Http(api_url, timeout)

    def runs(self, deployments: Sequence[str], *, limit: int = 100) -> list[FlowRun]:
        """The newest runs of the named deployments, newest expected start first."""
        body = {"deployments": {"name": {"any_": list(deployments)}},
                "sort": "EXPECTED_START_TIME_DESC", "limit": limit}  # fmt: skip
        return [FlowRun.from_json(r) for r in self._http.rows("POST", "/flow_runs/filter", body)]

    def run_for(self, deployment: str, commit: str) -> FlowRun | None:
        """The newest run of `deployment` for `commit` (its ``commit`` parameter), if any."""
        return next((r for r in self.runs([deployment]) if r.commit == commit), None)

    def run_states(self, run_id: str) -> list[RunState]:
        """Every state the flow run went through, oldest first."""
        found = self._http.rows("GET", f"/flow_run_states/?flow_run_id={run_id}")
        states = [RunState(_str(s, "type"), _str(s, "name"), _str(s, "timestamp")) for s in found]
        return sorted(states, key=lambda s: s.at or 0.0)

    def task_runs(self, run_id: str, *, limit: int = 200) -> list[TaskRun]:
        """The flow run's task runs, by expected start."""
        body = {"flow_runs": {"id": {"any_": [run_id]}}, "sort": "EXPECTED_START_TIME_ASC",
                "limit": limit}  # fmt: skip
        return [TaskRun(_str(t, "id"), _str(t, "name"), _str(t, "state_type"),
                        epoch(t.get("start_time")), epoch(t.get("end_time")))
                for t in self._http.rows("POST", "/task_runs/filter", body)]  # fmt: skip

    def logs(self, run_id: str, *, limit: int = 200) -> list[LogLine]:
        """The flow run's log lines, oldest first."""
        body = {"logs": {"flow_run_id": {"any_": [run_id]}}, "sort": "TIMESTAMP_ASC", "limit": limit}
        found = self._http.rows("POST", "/logs/filter", body)
        return [LogLine(_str(r, "timestamp"), _str(r, "message")) for r in found]

    def latest_artifact(self, run_id: str, key: str) -> Artifact | None:
        """The flow run's newest artifact under `key`, if any."""
        body = {"artifacts": {"flow_run_id": {"any_": [run_id]}, "key": {"any_": [key]}},
                "sort": "CREATED_DESC", "limit": 1}  # fmt: skip
        found = self._http.rows("POST", "/artifacts/filter", body)
        return Artifact(_str(found[0], "key"), _str(found[0], "description")) if found else None

    def deployment_names(self) -> dict[str, str]:
        """Deployment id -> name, for every deployment."""
        found = self._http.rows("POST", "/deployments/filter", {"limit": 200})
        return {_str(d, "id"): _str(d, "name") for d in found}

    def events(self, names: Iterable[str], *, app: str | None = None, limit: int = 50) -> list[Event]:
        """Stored events with one of `names` (about `app`, when given), as the server orders them."""
        filt: dict[str, object] = {"event": {"name": list(names)}}
        if app is not None:
            filt["any_resource"] = {"id": [app_resource(app)["prefect.resource.id"]]}
        found = _obj(self._http.call("POST", "/events/filter", {"filter": filt, "limit": limit}))
        rows = found.get("events")
        return [Event.from_json(_obj(e)) for e in rows] if isinstance(rows, list) else []

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
        self._http = _Http(api_url, timeout)

    def cancel(self, run_id: str, message: str) -> None:
        """Force a flow run into Cancelled (a leftover of an earlier demo)."""
        self._http.call("POST", f"/flow_runs/{run_id}/set_state", {
            "state": {"type": "CANCELLED", "name": "Cancelled", "message": message},
            "force": True,
        })  # fmt: skip

    def set_automation(self, name: str, *, enabled: bool) -> None:
        """Switch the named automation on or off.

        Raises:
            RuntimeError: No automation has that name.
        """
        found = self._http.rows("POST", "/automations/filter",
                                {"automations": {"name": {"any_": [name]}}})  # fmt: skip
        if not found:
            raise RuntimeError(f"automation {name!r} not found")
        for automation in found:
            self._http.call("PATCH", f"/automations/{_str(automation, 'id')}", {"enabled": enabled})

    def set_job_variables(self, deployments: set[str], variables: Mapping[str, object]) -> None:
        """Merge `variables` into the job variables of the named deployments."""
        for dep in self._http.rows("POST", "/deployments/filter", {"limit": 200}):
            if dep.get("name") in deployments:
                merged = {**_obj(dep.get("job_variables")), **variables}
                self._http.call("PATCH", f"/deployments/{_str(dep, 'id')}", {"job_variables": merged})

    def pause_scheduled(self, keep: set[str]) -> list[str]:
        """Pause deployments with schedules (the cron re-analysis) except those in `keep`.

        Returns:
            The names of the deployments paused.
        """
        paused = []
        for dep in self._http.rows("POST", "/deployments/filter", {"limit": 200}):
            name = _str(dep, "name")
            if name not in keep and dep.get("schedules") and not dep.get("paused"):
                self._http.call("PATCH", f"/deployments/{_str(dep, 'id')}", {"paused": True})
                paused.append(name)
        return paused
