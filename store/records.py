"""The records a chain's reader (store.reader) hands the demo and the benches.

Every record is frozen and plain (``FlowRun``, ``RunState``, ``TaskRun``, ``LogLine``,
``Artifact``, ``Event``; our own events typed as ``Recorded[ReleaseEnded]`` or
``Recorded[BuildSucceeded]``), made from the Prefect client's models here and nowhere else:
a caller never sees one of Prefect's types.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from prefect.client.schemas.objects import FlowRun as PrefectFlowRun
from prefect.client.schemas.objects import State
from prefect.events.schemas.events import ReceivedEvent

from canary.values.events import BuildSucceeded, ReleaseEnded
from canary.values.outcome import Outcome

__all__ = [
    "ACTIVE", "FINAL", "Artifact", "Event", "FlowRun", "LogLine", "Recorded", "RunState",
    "TaskRun", "epoch", "iso", "seconds", "text",
]  # fmt: skip

#: Prefect's state types of a run that has ended, and of one that has not yet.
FINAL = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})
ACTIVE = frozenset({"SCHEDULED", "PENDING", "RUNNING", "CANCELLING", "PAUSED"})

M = TypeVar("M", ReleaseEnded, BuildSucceeded)


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


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def seconds(moment: datetime | None) -> float | None:
    """Epoch seconds of one of the client's times (naive ones are UTC); None when absent.

    Args:
        moment: The time, or None.

    Returns:
        Seconds since the epoch, or None.
    """
    return None if moment is None else _utc(moment).timestamp()


def iso(moment: datetime) -> str:
    """One of the client's times as the REST API writes it (ISO 8601 in UTC, ``Z``).

    Args:
        moment: The time (naive ones are UTC).

    Returns:
        The text, e.g. ``2026-01-01T00:00:10.123456Z``.
    """
    return _utc(moment).isoformat().replace("+00:00", "Z")


def text(value: object) -> str:
    """An enum's value (a state type...) or a string as text.

    Args:
        value: The enum member, string or None.

    Returns:
        The text; "" for None.
    """
    found = getattr(value, "value", value)
    return found if isinstance(found, str) else ""


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
    def of(cls, run: PrefectFlowRun) -> FlowRun:
        """The record of a flow run as the Prefect client reads it.

        Args:
            run: The client's flow run.

        Returns:
            The record.
        """
        commit = run.parameters.get("commit")
        return cls(
            id=str(run.id), state_type=text(run.state_type),
            state_name=run.state_name or (run.state.name if run.state else None) or "",
            message=(run.state.message if run.state else None) or "",
            commit=commit if isinstance(commit, str) else None,
            deployment_id=str(run.deployment_id) if run.deployment_id else None,
            created=seconds(run.created), expected_start=seconds(run.expected_start_time),
            start=seconds(run.start_time), end=seconds(run.end_time),
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

    @classmethod
    def of(cls, state: State) -> RunState:
        """The record of one state of a flow run as the Prefect client reads it.

        Args:
            state: The client's state.

        Returns:
            The record.
        """
        return cls(text(state.type), state.name or "", iso(state.timestamp))

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
    def of(cls, event: ReceivedEvent) -> Event:
        """The record of an event as the Prefect client reads it.

        Args:
            event: The client's event.

        Returns:
            The record.
        """
        resource = {str(k): str(v) for k, v in event.resource.root.items()}
        payload: dict[str, object] = dict(event.payload)
        return cls(event.event, resource, payload, seconds(event.occurred), seconds(event.received))

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
