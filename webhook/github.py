"""GitHub push payload in, Prefect ``github.push`` event out: pure functions, no I/O.

Only the fields the build needs leave this module; the rest of GitHub's payload (commit
lists, file names, e-mail addresses) is dropped, which keeps events small and personal
data out of Prefect.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

EVENT_NAME = "github.push"
ZERO_SHA = "0" * 40
MESSAGE_LIMIT = 500  # characters of the head commit message kept in the event
ELLIPSIS = "…"

# Redeliveries of one delivery must map to one event id. GitHub's delivery GUIDs are UUIDs and
# are used as they are (so a Prefect Cloud webhook template can do the same); anything else is
# hashed into this fixed namespace. Changing it would re-trigger already relayed deliveries.
DELIVERY_NAMESPACE = uuid.UUID("5b0f4f52-3c1e-5d63-9a57-0c5a1e7d2f10")

_SHA = re.compile(r"[0-9a-fA-F]{40}")
_FULL_NAME = re.compile(r"([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+)")
_HEADS = "refs/heads/"


class BadPayload(ValueError):
    """The push payload lacks or mangles a field the event needs (answered with 400)."""


@dataclass(frozen=True)
class Push:
    owner: str
    name: str
    full_name: str
    ref: str
    before: str
    after: str
    clone_url: str | None
    default_branch: str | None
    pusher: str | None
    head_commit_message: str | None

    @property
    def branch(self) -> str | None:
        """The branch name, or None for a tag (or any non-branch) ref."""
        return self.ref[len(_HEADS) :] if self.ref.startswith(_HEADS) else None

    @property
    def deleted(self) -> bool:
        return self.after == ZERO_SHA


def event_id(delivery: str) -> uuid.UUID:
    """The Prefect event id for a GitHub delivery: the same for every redelivery of it."""
    try:
        return uuid.UUID(delivery)
    except ValueError:
        return uuid.uuid5(DELIVERY_NAMESPACE, delivery)


def parse_push(payload: Any) -> Push:
    """Validate the fields of a push payload that the event and the build rely on."""
    if not isinstance(payload, Mapping):
        raise BadPayload("the push payload must be a JSON object")
    repo = payload.get("repository")
    if not isinstance(repo, Mapping):
        raise BadPayload("the push has no repository object")
    full_name = repo.get("full_name")
    match = _FULL_NAME.fullmatch(full_name) if isinstance(full_name, str) else None
    if match is None:
        raise BadPayload("repository.full_name must look like 'owner/name'")
    ref = payload.get("ref")
    if not isinstance(ref, str) or not ref.startswith("refs/"):
        raise BadPayload("ref must be a string like 'refs/heads/main'")
    after = _sha(payload, "after")
    before = _sha(payload, "before")
    return Push(
        owner=match.group(1),
        name=match.group(2),
        full_name=full_name,
        ref=ref,
        before=before,
        after=after,
        clone_url=_optional_str(repo.get("clone_url")),
        default_branch=_optional_str(repo.get("default_branch")),
        pusher=_pusher(payload),
        head_commit_message=_head_commit_message(payload.get("head_commit")),
    )


def build_event(push: Push, delivery: str, occurred: datetime | None = None) -> dict[str, Any]:
    """The event JSON for POST /api/events (and the shape the Cloud template reproduces)."""
    occurred = occurred or datetime.now(UTC)
    resource = {
        "prefect.resource.id": f"github.repo.{push.owner}.{push.name}",
        "prefect.resource.name": push.full_name,
        "owner": push.owner,
        "repo": push.name,
    }
    related = []
    if push.pusher:
        related.append(
            {
                "prefect.resource.id": f"github.user.{push.pusher}",
                "prefect.resource.role": "pusher",
                "prefect.resource.name": push.pusher,
            }
        )
    return {
        "id": str(event_id(delivery)),
        "occurred": occurred.astimezone(UTC).isoformat(),
        "event": EVENT_NAME,
        "resource": resource,
        "related": related,
        "payload": {
            "ref": push.ref,
            "branch": push.branch,
            "before": push.before,
            "after": push.after,
            "clone_url": push.clone_url,
            "repository": push.full_name,
            "default_branch": push.default_branch,
            "pusher": push.pusher,
            "head_commit_message": push.head_commit_message,
            "delivery": delivery,
        },
    }


def truncate_message(message: str) -> str:
    """Same result as Jinja's ``truncate(500, true, "…", 0)`` used by the Cloud template."""
    if len(message) <= MESSAGE_LIMIT:
        return message
    return message[: MESSAGE_LIMIT - len(ELLIPSIS)] + ELLIPSIS


def _sha(payload: Mapping[str, Any], key: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not _SHA.fullmatch(value):
        raise BadPayload(f"{key} must be a 40-character hex commit SHA")
    return value.lower()


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _pusher(payload: Mapping[str, Any]) -> str | None:
    pusher = payload.get("pusher")
    if isinstance(pusher, Mapping) and _optional_str(pusher.get("name")):
        return pusher["name"]
    sender = payload.get("sender")
    if isinstance(sender, Mapping):
        return _optional_str(sender.get("login"))
    return None


def _head_commit_message(head_commit: Any) -> str | None:
    if not isinstance(head_commit, Mapping):
        return None
    message = head_commit.get("message")
    return truncate_message(message) if isinstance(message, str) else None
