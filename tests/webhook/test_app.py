"""Every answer the relay gives, in-process, against a fake Prefect on a real socket."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.webhook.helpers import AFTER, BEFORE, SECRET, deliver, push_payload
from webhook.github import DELIVERY_NAMESPACE, MESSAGE_LIMIT
from webhook.signing import sign

pytestmark = pytest.mark.anyio

DELIVERY = "72d3162e-cc78-11e3-81ab-4c9367dc0958"  # GitHub's delivery GUIDs are UUIDs


async def test_healthz(relay):
    response = await relay.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ping_answers_200_and_emits_nothing(relay, fake_prefect):
    response = await deliver(relay, {"zen": "Design for failure.", "hook_id": 1}, event="ping")
    assert response.status_code == 200
    assert response.json() == {"status": "pong"}
    assert fake_prefect.events == []


async def test_push_to_default_branch_is_relayed_after_prefect_accepted(relay, fake_prefect):
    response = await deliver(relay, delivery=DELIVERY)
    assert response.status_code == 202
    body = response.json()
    assert {k: body[k] for k in ("status", "event", "event_id")} == {
        "status": "accepted", "event": "github.push", "event_id": DELIVERY}
    assert body["next"].startswith("a build of ") and "`canary history " in body["next"]
    # The answer came after the POST to Prefect completed: the event is already there.
    assert [e["id"] for e in fake_prefect.events] == [DELIVERY]


async def test_event_has_the_exact_shape(relay, fake_prefect):
    before_call = datetime.now(UTC)
    await deliver(relay, delivery=DELIVERY)
    (event,) = fake_prefect.events
    occurred = datetime.fromisoformat(event.pop("occurred"))
    assert occurred.utcoffset() == timedelta(0)
    assert before_call <= occurred <= datetime.now(UTC)
    assert event == {
        "id": DELIVERY,
        "event": "github.push",
        "resource": {
            "prefect.resource.id": "github.repo.acme.goldengoose",
            "prefect.resource.name": "acme/goldengoose",
            "owner": "acme",
            "repo": "goldengoose",
        },
        "related": [
            {
                "prefect.resource.id": "github.user.ada",
                "prefect.resource.role": "pusher",
                "prefect.resource.name": "ada",
            }
        ],
        "payload": {
            "ref": "refs/heads/main",
            "branch": "main",
            "before": BEFORE,
            "after": AFTER,
            "clone_url": "https://github.com/acme/goldengoose.git",
            "repository": "acme/goldengoose",
            "default_branch": "main",
            "pusher": "ada",
            "head_commit_message": "Add canary knobs MSG-MARKER-2b8e41",
            "delivery": DELIVERY,
        },
    }


async def test_long_commit_message_is_truncated(relay, fake_prefect):
    payload = push_payload(head_commit={"id": AFTER, "message": "x" * 5000})
    assert (await deliver(relay, payload)).status_code == 202
    message = fake_prefect.events[0]["payload"]["head_commit_message"]
    assert len(message) == MESSAGE_LIMIT
    assert message.endswith("…")


async def test_redelivery_yields_the_same_event_id(relay, fake_prefect):
    first = await deliver(relay, delivery=DELIVERY)
    again = await deliver(relay, delivery=DELIVERY)
    other = await deliver(relay, delivery=str(uuid.uuid4()))
    assert first.json()["event_id"] == again.json()["event_id"] == DELIVERY
    assert other.json()["event_id"] != DELIVERY
    assert [e["id"] for e in fake_prefect.events][:2] == [DELIVERY, DELIVERY]


async def test_non_uuid_delivery_maps_deterministically(relay, fake_prefect):
    first = await deliver(relay, delivery="local-delivery-1")
    again = await deliver(relay, delivery="local-delivery-1")
    expected = str(uuid.uuid5(DELIVERY_NAMESPACE, "local-delivery-1"))
    assert first.json()["event_id"] == again.json()["event_id"] == expected


async def test_uppercase_sha_is_accepted_and_normalised(relay, fake_prefect):
    response = await deliver(relay, push_payload(after=AFTER.upper()))
    assert response.status_code == 202
    assert fake_prefect.events[0]["payload"]["after"] == AFTER


async def test_pusher_falls_back_to_sender_and_may_be_absent(relay, fake_prefect):
    await deliver(relay, push_payload(pusher={}))
    payload = push_payload()
    del payload["pusher"], payload["sender"]
    await deliver(relay, payload)
    with_sender, anonymous = fake_prefect.events
    assert with_sender["payload"]["pusher"] == "ada"
    assert anonymous["payload"]["pusher"] is None and anonymous["related"] == []


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (push_payload(ref="refs/heads/feature/x"), "branch is not tracked"),
        (push_payload(ref="refs/tags/v1.0.0"), "not a branch push"),
        (push_payload(after="0" * 40, deleted=True, head_commit=None), "branch deletion"),
    ],
    ids=["other-branch", "tag", "branch-deletion"],
)
async def test_untracked_pushes_are_ignored(relay, fake_prefect, payload, reason):
    response = await deliver(relay, payload)
    assert response.status_code == 202
    assert response.json() == {"status": "ignored", "reason": reason}
    assert fake_prefect.events == []


@pytest.mark.parametrize("kind", ["pull_request", "issues", "create", "workflow_run"])
async def test_other_event_types_are_ignored(relay, fake_prefect, kind):
    response = await deliver(relay, {"action": "opened"}, event=kind)
    assert response.status_code == 202
    assert response.json()["status"] == "ignored"
    assert fake_prefect.events == []


async def test_configured_branches_replace_the_default_branch(make_relay, fake_prefect):
    async with make_relay(branches=("develop", "release/*")) as relay:
        release = await deliver(relay, push_payload(ref="refs/heads/release/1.2"))
        develop = await deliver(relay, push_payload(ref="refs/heads/develop"))
        main = await deliver(relay, push_payload(ref="refs/heads/main"))
    assert (release.status_code, develop.status_code, main.status_code) == (202, 202, 202)
    assert main.json()["status"] == "ignored"
    assert [e["payload"]["branch"] for e in fake_prefect.events] == ["release/1.2", "develop"]


async def test_default_branch_comes_from_each_payload(relay, fake_prefect):
    payload = push_payload(ref="refs/heads/trunk", repository={"default_branch": "trunk"})
    assert (await deliver(relay, payload)).json()["status"] == "accepted"
    assert fake_prefect.events[0]["payload"]["default_branch"] == "trunk"


@pytest.mark.parametrize(
    "signature",
    [None, "", "sha256=" + "0" * 64, "sha1=abcdef", "garbage", "sha256=zz\u00e9".encode("latin-1")],
    ids=["missing", "empty", "wrong-digest", "sha1", "garbage", "non-ascii"],
)
async def test_missing_or_bad_signature_is_401(relay, fake_prefect, signature):
    body = json.dumps(push_payload()).encode()
    headers = {
        "content-type": "application/json",
        "x-github-event": "push",
        "x-github-delivery": DELIVERY,
    }
    if signature is not None:
        headers["x-hub-signature-256"] = signature
    response = await relay.post("/github", content=body, headers=headers)
    assert response.status_code == 401
    assert fake_prefect.events == []


async def test_signature_by_another_secret_or_over_another_body_is_401(relay, fake_prefect):
    body = json.dumps(push_payload()).encode()
    wrong_secret = await deliver(relay, body=body, secret="not-the-secret")
    tampered = await deliver(relay, body=body + b" ", signature=sign(SECRET, body))
    assert (wrong_secret.status_code, tampered.status_code) == (401, 401)
    assert fake_prefect.events == []


async def test_ping_needs_a_signature_too(relay):
    response = await deliver(relay, {"zen": "x"}, event="ping", signature="sha256=00")
    assert response.status_code == 401


async def test_body_over_one_mib_is_413(relay, fake_prefect):
    payload = push_payload(padding="x" * (1024 * 1024))
    response = await deliver(relay, payload)
    assert response.status_code == 413
    assert fake_prefect.events == []


async def test_body_of_exactly_the_limit_is_accepted(make_relay, fake_prefect):
    body = json.dumps(push_payload()).encode()
    async with make_relay(max_body_bytes=len(body)) as relay:
        assert (await deliver(relay, body=body)).status_code == 202
        assert (await deliver(relay, body=body + b" ")).status_code == 413


async def test_streamed_body_is_cut_off_at_the_limit(relay, fake_prefect):
    """Without a Content-Length (chunked), the relay stops reading once over 1 MiB."""
    sent = 0
    chunk = b"x" * 65536

    async def endless():
        nonlocal sent
        yield b'{"padding": "'
        for _ in range(1000):  # would be 64 MiB if read to the end
            sent += len(chunk)
            yield chunk

    body = endless()
    headers = {
        "content-type": "application/json",
        "x-github-event": "push",
        "x-github-delivery": DELIVERY,
        "x-hub-signature-256": "sha256=00",
    }
    response = await relay.post("/github", content=body, headers=headers)
    assert response.status_code == 413
    assert sent <= 1024 * 1024 + 2 * len(chunk)
    assert fake_prefect.events == []


async def test_declared_oversize_is_refused_before_reading(relay):
    headers = {"content-length": str(50 * 1024 * 1024), "x-github-event": "push"}

    async def tiny():
        yield b"{}"

    response = await relay.post("/github", content=tiny(), headers=headers)
    assert response.status_code == 413


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"\xff\xfe\x00", b"[" * 100_000, b""],
    ids=["syntax", "not-utf8", "too-deep", "empty"],
)
async def test_malformed_json_is_400(relay, fake_prefect, body):
    response = await deliver(relay, body=body)
    assert response.status_code == 400
    assert "JSON" in response.json()["error"]
    assert fake_prefect.events == []


def _without(key: str, *, inside: str | None = None) -> dict:
    payload = push_payload()
    del (payload[inside] if inside else payload)[key]
    return payload


@pytest.mark.parametrize(
    "payload",
    [
        [],
        "a string",
        _without("repository"),
        _without("after"),
        _without("ref"),
        _without("full_name", inside="repository"),
        push_payload(repository={"full_name": "no-slash"}),
        push_payload(repository={"full_name": "acme/gold goose"}),
        push_payload(repository=None) | {"repository": "acme/goldengoose"},
        push_payload(after="abc123"),
        push_payload(after="g" * 40),
        push_payload(after=None),
        push_payload(before="1234"),
        push_payload(ref=7),
    ],
    ids=[
        "array",
        "string",
        "no-repository",
        "no-after",
        "no-ref",
        "no-full-name",
        "full-name-no-slash",
        "full-name-space",
        "repository-not-object",
        "after-short",
        "after-not-hex",
        "after-null",
        "before-short",
        "ref-not-string",
    ],
)
async def test_push_without_required_fields_is_400(relay, fake_prefect, payload):
    response = await deliver(relay, payload)
    assert response.status_code == 400, response.text
    assert fake_prefect.events == []


async def test_push_without_delivery_or_event_header_is_400(relay, fake_prefect):
    body = json.dumps(push_payload()).encode()
    base = {"content-type": "application/json", "x-hub-signature-256": sign(SECRET, body)}
    no_delivery = await relay.post(
        "/github", content=body, headers=base | {"x-github-event": "push"}
    )
    no_event = await relay.post(
        "/github", content=body, headers=base | {"x-github-delivery": DELIVERY}
    )
    assert (no_delivery.status_code, no_event.status_code) == (400, 400)
    assert fake_prefect.events == []


async def test_form_encoded_delivery_is_accepted(relay, fake_prefect):
    from urllib.parse import urlencode

    body = urlencode({"payload": json.dumps(push_payload())}).encode()
    response = await deliver(
        relay,
        body=body,
        delivery=DELIVERY,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 202
    assert fake_prefect.events[0]["id"] == DELIVERY


@pytest.mark.parametrize("status", [500, 503, 422, 401, 302])
async def test_prefect_non_2xx_is_503_and_redelivery_then_succeeds(relay, fake_prefect, status):
    fake_prefect.status = status
    failed = await deliver(relay, delivery=DELIVERY)
    assert failed.status_code == 503
    assert failed.json()["event_id"] == DELIVERY
    assert failed.headers["retry-after"] == "30"
    assert fake_prefect.events == []

    fake_prefect.status = 204  # Prefect recovered; GitHub (or a person) redelivers
    redelivered = await deliver(relay, delivery=DELIVERY)
    assert redelivered.status_code == 202
    assert [e["id"] for e in fake_prefect.events] == [DELIVERY]


async def test_prefect_down_is_503(make_relay, down_url):
    async with make_relay(prefect_api_url=down_url) as relay:
        response = await deliver(relay, delivery=DELIVERY)
    assert response.status_code == 503
    assert "unreachable" in response.json()["error"]


async def test_prefect_stopped_mid_life_is_503(relay, fake_prefect):
    assert (await deliver(relay)).status_code == 202
    fake_prefect.stop()
    assert (await deliver(relay)).status_code == 503


async def test_prefect_too_slow_is_503(make_relay, fake_prefect):
    fake_prefect.delay = 1.0
    async with make_relay(prefect_timeout_s=0.3) as relay:
        response = await deliver(relay)
    assert response.status_code == 503
    assert "ReadTimeout" in response.json()["error"]


async def test_prefect_auth_header_is_sent(make_relay, fake_prefect):
    async with make_relay(prefect_auth_header="Basic dXNlcjpwYXNz") as relay:
        await deliver(relay)
    assert fake_prefect.headers[0]["Authorization"] == "Basic dXNlcjpwYXNz"


async def test_works_without_lifespan(fake_prefect):
    """Served by something that skips lifespan, the relay still posts (one-off client)."""
    from webhook.app import create_app
    from webhook.settings import Settings

    app = create_app(Settings(secret=SECRET, prefect_api_url=fake_prefect.api_url))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://relay") as client:
        response = await deliver(client, delivery=DELIVERY)
    assert response.status_code == 202
    assert [e["id"] for e in fake_prefect.events] == [DELIVERY]


async def test_wrong_method_and_path(relay):
    assert (await relay.get("/github")).status_code == 405
    assert (await relay.post("/hooks")).status_code == 404
