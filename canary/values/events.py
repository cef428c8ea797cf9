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

from canary.values import messages
from canary.values.outcome import Outcome

__all__ = [
    "APP_RESOURCE_PREFIX",
    "RUN_LABEL",
    "BuildFailed",
    "BuildSucceeded",
    "CanaryEvent",
    "FailingMetric",
    "HISTORY_EVENTS",
    "JSON",
    "LookMetric",
    "PRODUCTION_CHANGES",
    "OperatorCommand",
    "ProductionRestored",
    "ReanalysisRegressed",
    "ReleaseEnded",
    "ReleaseEvent",
    "ReleaseHeld",
    "ReleaseLook",
    "ReleaseStarted",
    "app_resource",
    "parse_event",
]

#: Every event's resource id is this prefix and the app's name.
APP_RESOURCE_PREFIX = "canary.app."
#: The resource label naming the release run a start or an end is about (the stuck alarm
#: pairs them by it: a next release of the same app opens its own window).
RUN_LABEL = "canary.run"

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
    #: the notification's line (canary.values.messages.build_failed)
    message: str = ""

    def payload(self) -> dict[str, JSON]:
        """The event's payload; the message from the fields when the producer gave none."""
        return {**super().payload(), "message": self.message or messages.build_failed(
            app=self.app, commit=self.commit, reason=self.reason, seconds=None, run=None)}


class ReleaseStarted(CanaryEvent):
    """A release holds its app's lock and starts: baseline and canary are next, and the
    stuck alarm's window opens (a release's end is one of ReleaseEnded's names)."""

    name: ClassVar[str] = "canary.release.started"
    commit: str
    image: str
    run: str
    version: str | None = None
    url: str | None = None
    started_at: datetime
    #: the analysis time the spec planned (None: the spec plans none)
    lifetime_seconds: float | None = None
    #: the line the stuck alarm sends when no end follows (canary.values.messages.stuck)
    stuck: str = ""

    def resource(self) -> dict[str, str]:
        """The app, labelled with the release run (RUN_LABEL)."""
        return {**super().resource(), RUN_LABEL: self.run}

    def payload(self) -> dict[str, JSON]:
        """The event's payload, the stuck alarm's line included."""
        return {**super().payload(), "stuck": self.stuck or messages.stuck(
            app=self.app, version=self.version, commit=self.commit, started=self.started_at,
            lifetime_seconds=self.lifetime_seconds, run=self.url)}  # fmt: skip


class LookMetric(BaseModel):
    """One judged metric at a look: its estimate, interval ends and decision threshold,
    in the estimate's unit (None: the judge gave no such number)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    metric: str
    classification: str
    estimate: float | None = None
    lower: float | None = None
    upper: float | None = None
    threshold: float | None = None


class ReleaseLook(CanaryEvent):
    """A look of a running release: the traffic shares read back and each metric judged."""

    name: ClassVar[str] = "canary.release.look"
    look: int
    looks: int
    #: the shares (percent) the router carried, read back: primary, baseline, canary
    primary: int
    baseline: int
    canary: int
    score: float | None = None
    action: str = ""
    metrics: tuple[LookMetric, ...] = ()


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
    #: a person promoted it although its analysis failed (``on_failure: hold``, approved)
    overridden: bool = False
    #: the judge of the release's canary config (None: not known, e.g. a recovery's report)
    judge: str | None = None
    #: set when recovery (not the release's own run) reported the end
    recovered_run: str | None = None
    #: the release's version (its run's `version` parameter) and its run's id
    version: str | None = None
    run: str | None = None
    #: the notification's line (canary.values.messages.ended)
    message: str = ""

    def payload(self) -> dict[str, JSON]:
        """The event's payload; the message from the fields when the producer gave none."""
        word = messages.outcome_words(self.outcome.value)
        return {**super().payload(), "message": self.message or messages.ended(
            app=self.app, version=self.version, commit=self.commit,
            headline=self.headline or f"{word}: {self.reason}", seconds=None, report=None,
            run=self.url)}  # fmt: skip

    @property
    def event_name(self) -> str:
        """The name this event is emitted under: ``canary.release.<outcome>``."""
        return self.outcome.event

    def resource(self) -> dict[str, str]:
        """The app, named with the headline, labelled with the release run when it is known
        (RUN_LABEL). Prefect's event feed shows a resource's name
        (``prefect.resource.name``) on every event's card, so the feed reads
        "goldengoose 4b2b528: rolled back: latency +215% p50 (...)". The id and the app
        label stay the app's: filters and automations match those."""
        said = self.headline or f"{self.outcome.value}: {self.reason}".rstrip(": ")
        commit = f" {self.commit[:7]}" if self.commit else ""
        run = {RUN_LABEL: self.run} if self.run else {}  # the stuck alarm's per-run match
        return {**super().resource(), "prefect.resource.name": f"{self.app}{commit}: {said}", **run}

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


class ReleaseHeld(CanaryEvent):
    """A release's analysis failed and the spec says ``on_failure: hold``: it waits for a
    person (``canary approve`` promotes anyway, ``canary reject`` or the timeout rolls
    back), its traffic split unchanged meanwhile."""

    name: ClassVar[str] = "canary.release.held"
    image: str
    commit: str
    version: str | None = None
    #: why the analysis failed, in words (the decision's reason)
    reason: str
    failing: tuple[FailingMetric, ...] = ()
    #: the split that stays while held (percent)
    canary_share: int | None = None
    timeout_seconds: int
    url: str | None = None
    #: one line that answers first, for a notification
    message: str


class ProductionRestored(CanaryEvent):
    """An image was put back in production (``restore-production``): by the automation on a
    regression, or by a person (``canary rollback``: ``manual``, ``by`` who)."""

    name: ClassVar[str] = "canary.production.restored"
    image: str | None
    previous_image: str | None = None
    #: the commit of the image put back, when known (``canary rollback`` names it)
    commit: str | None = None
    #: a person asked for it (``canary rollback``), not an automation
    manual: bool = False
    by: str | None = None
    #: the restore-production run that did it
    run: str | None = None
    #: the notification's line (canary.values.messages.restored)
    message: str = ""

    def payload(self) -> dict[str, JSON]:
        """The event's payload; the message from the fields when the producer gave none."""
        return {**super().payload(), "message": self.message or messages.restored(
            app=self.app, image=self.image, previous=self.previous_image,
            by=f"by {self.by}" if self.by else "by hand", run=None)}  # fmt: skip


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
    #: only a regression: a window without data is never one (it emits no event at all)
    outcome: Literal["regressed"] = "regressed"
    #: why, in words (the last score against the thresholds)
    reason: str = ""
    score: float | None = None
    image: str | None = None
    previous_image: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    control_offset_seconds: float = 0.0

    def payload(self) -> dict[str, JSON]:
        """The event's payload: every field, the app included."""
        return {"app": self.app, **super().payload()}


ReleaseEvent: TypeAlias = (BuildSucceeded | BuildFailed | ReleaseStarted | ReleaseLook
                           | ReleaseEnded | ReleaseHeld | ProductionRestored | OperatorCommand
                           | ReanalysisRegressed)

_Named: TypeAlias = (BuildSucceeded | BuildFailed | ReleaseStarted | ReleaseLook | ReleaseHeld
                     | ProductionRestored | OperatorCommand | ReanalysisRegressed)
_BY_NAME: dict[str, type[_Named]] = {
    model.name: model
    for model in (BuildSucceeded, BuildFailed, ReleaseStarted, ReleaseLook, ReleaseHeld,
                  ProductionRestored, OperatorCommand, ReanalysisRegressed)
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
