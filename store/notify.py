"""Notifications through Prefect's own machinery: one notification block, one automation per
end (promoted, rolled back, aborted, build failed, production restored, held, stuck).

The server sends them (its Actions service), not the release: a slow or unreachable
receiver never delays or fails a release. Every automation's body is the line the event
carries (``{{ event.payload.message }}``, the stuck alarm's ``{{ event.payload.stuck }}``),
written by canary.values.messages; nothing else is templated.

The receiver's URL is a secret: it goes into the block only (a ``SecretStr``, or the
custom webhook's ``secrets``), never into an automation, a log line or a return value.
``configure`` replaces what an earlier call made (no duplicates); ``remove`` deletes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal, TypeAlias
from uuid import UUID

from prefect.blocks.abstract import NotificationBlock
from prefect.blocks.notifications import (
    CustomWebhookNotificationBlock,
    MicrosoftTeamsWebhook,
    SlackWebhook,
)
from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.exceptions import ObjectNotFound
from prefect.types import SecretDict
from pydantic import SecretStr

from canary.values import messages
from canary.values.events import (
    APP_RESOURCE_PREFIX,
    RUN_LABEL,
    BuildFailed,
    ProductionRestored,
    ReleaseHeld,
    ReleaseStarted,
)
from canary.values.outcome import Outcome
from store.client import client

__all__ = ["AUTOMATION_PREFIX", "BLOCK_NAME", "ENDS", "KINDS", "End", "Kind", "configure",
           "configured", "remove"]  # fmt: skip

Kind: TypeAlias = Literal["slack", "teams", "webhook"]
#: The receivers Prefect ships a block for, by our option's name.
KINDS: tuple[Kind, ...] = ("slack", "teams", "webhook")
#: The notification block's document name (one per chain) and our automations' prefix.
BLOCK_NAME = "canary-notify"
AUTOMATION_PREFIX = "canary-notify-"
_BLOCK_TYPES: dict[Kind, type[NotificationBlock]] = {
    "slack": SlackWebhook, "teams": MicrosoftTeamsWebhook,
    "webhook": CustomWebhookNotificationBlock,
}  # fmt: skip
#: The custom webhook's request timeout: the server's Actions service waits at most this.
WEBHOOK_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class End:
    """One end a person hears of: the event that says it, and the words of its subject.

    Attributes:
        key: The automation's name after the prefix (``rolled-back``).
        words: The end in words (the subject: ``canary release: rolled back``).
        event: The event that carries the line.
    """

    key: str
    words: str
    event: str


#: The ends sent as they happen (a skipped release is not news: it never started).
ENDS = (
    End("promoted", "promoted", Outcome.PROMOTED.event),
    End("rolled-back", "rolled back", Outcome.ROLLED_BACK.event),
    End("aborted", "aborted", Outcome.ABORTED.event),
    End("build-failed", "build failed", BuildFailed.name),
    End("production-restored", "production restored", ProductionRestored.name),
    End("held", "held for a person (on_failure: hold)", ReleaseHeld.name),
)
STUCK = "stuck"


def _block(kind: Kind, url: str) -> NotificationBlock:
    if kind == "slack":
        return SlackWebhook(url=SecretStr(url))
    if kind == "teams":
        return MicrosoftTeamsWebhook(url=SecretStr(url))
    # the URL sits in `secrets` and is substituted at send time: the block shows "{{url}}";
    # the subject is the event's id here (_subject): the receiver's key against a repeat
    return CustomWebhookNotificationBlock(
        name="canary", url="{{url}}", json_data={"event_id": "{{subject}}", "text": "{{body}}"},
        secrets=SecretDict({"url": url}), timeout=WEBHOOK_TIMEOUT_SECONDS,
    )  # fmt: skip


def _subject(kind: Kind, words: str) -> str:
    """Chat: ``canary release: <end>``; the generic webhook: the triggering event's id.

    Prefect retries a webhook delivery that raised (connection refused, a timeout) up to 3
    times, so a slow receiver may get a line twice: the id lets it drop the repeat.
    """
    return "{{ event.id }}" if kind == "webhook" else messages.subject(words)


def _match() -> dict[str, str]:
    return {"prefect.resource.id": f"{APP_RESOURCE_PREFIX}*"}


def _automations(kind: Kind, block_id: UUID, stuck_after: timedelta) -> list[AutomationCore]:
    made = [AutomationCore(
        name=f"{AUTOMATION_PREFIX}{end.key}",
        description=f"Send each {end.event} event's line through the block {BLOCK_NAME}",
        trigger=EventTrigger(expect={end.event}, match=_match(), posture=Posture.Reactive,
                             threshold=1, within=timedelta(0)),
        actions=[SendNotification(block_document_id=block_id, subject=_subject(kind, end.words),
                                  body="{{ event.payload.message }}")],
    ) for end in ENDS]  # fmt: skip
    made.append(AutomationCore(
        name=f"{AUTOMATION_PREFIX}{STUCK}",
        description=(f"A release with no end {stuck_after} after its {ReleaseStarted.name} "
                     "event (the lifetime plus a margin: scripts/register_blocks.py --stuck-after)"),
        trigger=EventTrigger(after={ReleaseStarted.name}, expect={o.event for o in Outcome},
                             for_each={"prefect.resource.id", RUN_LABEL}, match=_match(),
                             posture=Posture.Proactive, threshold=1, within=stuck_after),
        actions=[SendNotification(block_document_id=block_id, subject=_subject(kind, STUCK),
                                  body="{{ event.payload.stuck }}")],
    ))  # fmt: skip
    return made


def configured() -> list[str]:
    """Our notification automations on the server, by name (sorted).

    Returns:
        Their names.
    """
    with client() as prefect:
        found = prefect.read_automations()
    return sorted(a.name for a in found if a.name.startswith(AUTOMATION_PREFIX))


def _delete_automations() -> None:
    with client() as prefect:
        for automation in prefect.read_automations():
            if automation.name.startswith(AUTOMATION_PREFIX):
                prefect.delete_automation(automation.id)


def _delete_blocks(kinds: Iterable[Kind]) -> None:
    with client() as prefect:
        for kind in kinds:
            slug = _BLOCK_TYPES[kind].get_block_type_slug()
            try:
                found = prefect.read_block_document_by_name(BLOCK_NAME, slug, include_secrets=False)
            except ObjectNotFound:
                continue
            prefect.delete_block_document(found.id)


def configure(kind: Kind, url: str, *, stuck_after: timedelta) -> list[str]:
    """Send every end through a `kind` receiver at `url`, replacing an earlier setup.

    Args:
        kind: ``slack``, ``teams`` or ``webhook`` (Prefect's custom webhook: a JSON POST of
            ``{"event_id": <the event's id>, "text": <the line>}``).
        url: The receiver's URL (a secret: kept in the block only).
        stuck_after: How long after a release's start no end means stuck (at least 10 s:
            Prefect's floor for a proactive trigger).

    Returns:
        The automations' names.

    Raises:
        ValueError: An unknown kind, an empty URL or too short a stuck window.
    """
    if kind not in _BLOCK_TYPES:
        raise ValueError(f"unknown notification kind {kind!r}: one of {', '.join(KINDS)}")
    if not url.strip():
        raise ValueError("the notification URL is empty")
    if stuck_after < timedelta(seconds=10):
        raise ValueError("the stuck window must be at least 10 s (Prefect's proactive floor)")
    _delete_automations()
    _delete_blocks(k for k in KINDS if k != kind)
    try:
        block = _block(kind, url.strip())
    except (ValueError, TypeError) as exc:  # its text may quote the URL: never passed on
        raise ValueError(f"Prefect's {kind} block refused the URL ({type(exc).__name__})") from None
    block_id = block.save(BLOCK_NAME, overwrite=True)
    if not isinstance(block_id, UUID):  # Prefect dispatches to async from async code
        raise TypeError("notifications are configured from sync code only")
    with client() as prefect:
        for automation in _automations(kind, block_id, stuck_after):
            prefect.create_automation(automation)
    return configured()


def remove() -> None:
    """Delete our notification automations and block (``--notify none``); idempotent."""
    _delete_automations()
    _delete_blocks(KINDS)
