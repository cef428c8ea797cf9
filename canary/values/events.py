"""The events this project emits, as typed frozen models: one shape per event, everywhere.

Every producer (flows, recovery, the CLI) builds one of these models and emits
``model.name`` with ``model.resource()`` and ``model.payload()``; every consumer (history,
the CLI, the demo, the benches, tests) reads an event back with ``parse_event`` (or a
model's ``parse``), so a field is named once, here. Resource: ``canary.app.<app>``.

The models are plain values: emitting and reading them is the Prefect store's job.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import ClassVar, Literal, Self, TypeAlias

from pydantic import BaseModel, ConfigDict, ValidationError

from canary.values.outcome import Outcome

__all__ = [
    "APP_RESOURCE_PREFIX",
    "BuildFailed",
    "BuildSucceeded",
    "CanaryEvent",
    "FailingMetric",
    "HISTORY_EVENTS",
    "JSON",
    "PRODUCTION_CHANGES",
    "OperatorCommand",
    "ProductionRestored",
    "ReanalysisRegressed",
    "ReleaseEnded",
    "ReleaseEvent",
    "app_resource",
    "parse_event",
]

#: Every event's resource id is this prefix and the app's name.
APP_RESOURCE_PREFIX = "canary.app."

JSON: TypeAlias = "str | int | float | bool | None | list[JSON] | dict[str, JSON]"


def app_resource(app: str) -> dict[str, str]:
    """The resource an app's events are about (``canary.app.<app>``, labelled with the app).

    Args:
        app: The app's name.

    Returns:
        The resource mapping Prefect's events take.
    """
    return {"prefect.resource.id": f"{APP_RESOURCE_PREFIX}{app}", "app": app}


class CanaryEvent(BaseModel):
    """What every event of ours has: its name and the app it is about."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    #: The event's name (``canary.build.succeeded`` ...).
    name: ClassVar[str]
    app: str

    @property
    def event_name(self) -> str:
        """The name this event is emitted under (a release's end: its outcome's event)."""
        return self.name

    def resource(self) -> dict[str, str]:
        """The event's resource: the app."""
        return app_resource(self.app)

    def payload(self) -> dict[str, JSON]:
        """The event's payload: every field but the app (which is the resource), as JSON."""
        data: dict[str, JSON] = self.model_dump(mode="json", exclude={"app"})
        return data

    @classmethod
    def parse(cls, payload: Mapping[str, object], *, app: str) -> Self:
        """Read an event of this kind back from its payload.

        Args:
            payload: The event's payload as emitted (extra keys are ignored).
            app: The app the event's resource names.

        Returns:
            The model.

        Raises:
            ValueError: The payload does not have this event's shape.
        """
        try:
            return cls.model_validate({**payload, "app": app})
        except ValidationError as exc:
            raise ValueError(f"{cls.name} event for {app} has an unexpected payload: {exc}") from exc


class BuildSucceeded(CanaryEvent):
    """A build made an image: the canary release starts from this event."""

    name: ClassVar[str] = "canary.build.succeeded"
    image: str
    commit: str
    repo: str
    pushed_at: str | None = None
    version: str | None = None
    #: the commit's `.canary/` files, when it has them (the release reads them again)
    app_config: dict[str, str] | None = None


class BuildFailed(CanaryEvent):
    """A build failed; nothing was released."""

    name: ClassVar[str] = "canary.build.failed"
    commit: str
    repo: str
    reason: str


class FailingMetric(BaseModel):
    """One metric that failed the last look: its name, result and effect in words."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    metric: str
    result: str
    critical: bool = False
    effect: str = ""


class ReleaseEnded(CanaryEvent):
    """A release ended: promoted, rolled back, aborted or skipped, and why.

    Its name is the outcome's event (``canary.release.<outcome>``).
    """

    name: ClassVar[str] = "canary.release.*"
    outcome: Outcome
    image: str | None = None
    commit: str | None = None
    reason: str = ""
    #: the release report's first line
    headline: str | None = None
    #: the last look's score (None: no verdict, e.g. skipped or the analysis never ran)
    score: float | None = None
    report: str | None = None
    url: str | None = None
    failing: tuple[FailingMetric, ...] = ()
    judgements: int | None = None
    previous_image: str | None = None
    #: analysis time until the decision, and the analysis time the spec planned
    decision_seconds: float | None = None
    lifetime_seconds: float | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    control_scope: str | None = None
    experiment_scope: str | None = None
    pushed_at: str | None = None
    #: a person decided (canary promote/abort, a manual judgement or gate)
    by_person: bool = False
    #: the judge of the release's canary config (None: not known, e.g. a recovery's report)
    judge: str | None = None
    #: set when recovery (not the release's own run) reported the end
    recovered_run: str | None = None

    @property
    def event_name(self) -> str:
        """The name this event is emitted under: ``canary.release.<outcome>``."""
        return self.outcome.event

    def resource(self) -> dict[str, str]:
        """The app, named with the headline: Prefect's event feed shows a resource's name
        (``prefect.resource.name``) on every event's card, so the feed reads
        "goldengoose 4b2b528: rolled back: latency +215% p50 (...)". The id and the app
        label stay the app's: filters and automations match those."""
        said = self.headline or f"{self.outcome.value}: {self.reason}".rstrip(": ")
        commit = f" {self.commit[:7]}" if self.commit else ""
        return {**super().resource(), "prefect.resource.name": f"{self.app}{commit}: {said}"}

    @classmethod
    def from_event(cls, event: str, payload: Mapping[str, object], *, app: str) -> ReleaseEnded:
        """Read a ``canary.release.<outcome>`` event (older payloads carry no ``outcome``).

        Args:
            event: The event's name, which names the outcome.
            payload: Its payload.
            app: The app its resource names.

        Returns:
            The model.

        Raises:
            ValueError: The name is not a release end, or the payload has the wrong shape.
        """
        outcome = Outcome.from_event(event)
        if outcome is None:
            raise ValueError(f"{event!r} is not a release-end event (canary.release.<outcome>)")
        return cls.parse({**payload, "outcome": outcome.value}, app=app)


class ProductionRestored(CanaryEvent):
    """An operator put an earlier image back in production (``restore-production``)."""

    name: ClassVar[str] = "canary.production.restored"
    image: str | None
    previous_image: str | None = None


class OperatorCommand(CanaryEvent):
    """A person's command to a running release: promote it now, or abort it."""

    name: ClassVar[str] = "canary.release.command"
    action: Literal["promote", "abort"]
    run: str
    by: str = "an operator"
    at: datetime | None = None


class ReanalysisRegressed(CanaryEvent):
    """A scheduled re-analysis found production regressed (it may trigger a restore).

    Its payload keeps the app too (older consumers read it there).
    """

    name: ClassVar[str] = "canary.reanalysis.regressed"
    mode: str
    verdict: str
    outcome: str = "regressed"
    score: float | None = None
    image: str | None = None
    previous_image: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    control_offset_seconds: float = 0.0

    def payload(self) -> dict[str, JSON]:
        """The event's payload: every field, the app included."""
        return {"app": self.app, **super().payload()}


ReleaseEvent: TypeAlias = (BuildSucceeded | BuildFailed | ReleaseEnded | ProductionRestored
                           | OperatorCommand | ReanalysisRegressed)

_Named: TypeAlias = (BuildSucceeded | BuildFailed | ProductionRestored | OperatorCommand
                     | ReanalysisRegressed)
_BY_NAME: dict[str, type[_Named]] = {
    model.name: model
    for model in (BuildSucceeded, BuildFailed, ProductionRestored, OperatorCommand, ReanalysisRegressed)
}


def parse_event(event: str, resource_id: str, payload: Mapping[str, object]) -> ReleaseEvent | None:
    """Any of our events, typed, from its name, resource id and payload.

    Args:
        event: The event's name.
        resource_id: Its resource id (``canary.app.<app>``).
        payload: Its payload.

    Returns:
        The model, or None for an event that is not ours (another name or resource).

    Raises:
        ValueError: The event is ours but its payload has the wrong shape.
    """
    if not resource_id.startswith(APP_RESOURCE_PREFIX):
        return None
    app = resource_id.removeprefix(APP_RESOURCE_PREFIX)
    if Outcome.from_event(event) is not None:
        return ReleaseEnded.from_event(event, payload, app=app)
    model = _BY_NAME.get(event)
    return None if model is None else model.parse(payload, app=app)


#: The events that say an app has a release history (what re-analysis and reconcile fan out
#: over), and the ones that change production.
HISTORY_EVENTS = (*(o.event for o in Outcome), ProductionRestored.name)
PRODUCTION_CHANGES = (Outcome.PROMOTED.event, ProductionRestored.name)
