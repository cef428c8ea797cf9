"""The Prefect Cloud webhook template produces the relay's event (rendered locally with Jinja).

Prefect Cloud renders webhook templates with Jinja2; here a sandboxed Jinja2 environment
stands in for it (Cloud itself is not reachable from tests). The template must yield the
same event as the relay for the same delivery, apart from `occurred`, which Cloud fills in.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from jinja2.sandbox import SandboxedEnvironment

from tests.webhook.helpers import AFTER, push_payload
from webhook.github import build_event, parse_push

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "webhook" / "cloud_template.j2"
DELIVERY = "72d3162e-cc78-11e3-81ab-4c9367dc0958"


def render(payload: dict, kind: str = "push") -> dict:
    env = SandboxedEnvironment()
    headers = httpx.Headers(
        {"X-GitHub-Event": kind, "X-GitHub-Delivery": DELIVERY, "Content-Type": "application/json"}
    )
    text = env.from_string(TEMPLATE.read_text()).render(
        method="POST", headers=headers, body=payload
    )
    return json.loads(text)


@pytest.mark.parametrize(
    "payload",
    [
        push_payload(),
        push_payload(head_commit={"id": AFTER, "message": 'quotes " and \\ and\nnewlines ' * 60}),
        push_payload(pusher={}),
        push_payload(ref="refs/heads/trunk", repository={"default_branch": "trunk"}),
    ],
    ids=["plain", "long-escaped-message", "pusher-from-sender", "other-default-branch"],
)
def test_template_matches_the_relay_event(payload):
    expected = build_event(parse_push(payload), DELIVERY)
    del expected["occurred"]
    assert render(payload) == expected


@pytest.mark.parametrize(
    "payload",
    [
        push_payload(ref="refs/heads/feature"),
        push_payload(ref="refs/tags/v1"),
        push_payload(after="0" * 40, head_commit=None, deleted=True),
    ],
    ids=["other-branch", "tag", "deletion"],
)
def test_untracked_pushes_get_another_event_name(payload):
    assert render(payload)["event"] == "github.push.ignored"


def test_ping_renders_a_harmless_event():
    event = render({"zen": "Keep it logically awesome.", "hook_id": 1}, kind="ping")
    assert event == {
        "id": DELIVERY,
        "event": "github.ping",
        "resource": {"prefect.resource.id": "github.webhook"},
    }


def test_docs_show_the_tested_template():
    docs = (ROOT / "docs" / "webhook.md").read_text()
    blocks = re.findall(r"```jinja\n(.*?)```", docs, flags=re.DOTALL)
    assert TEMPLATE.read_text() in blocks
