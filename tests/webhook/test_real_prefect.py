"""Against a REAL Prefect server: a redelivered push is stored as exactly one event.

Both the server (`prefect server start`) and the relay (`python -m webhook`) run as real
subprocesses on free ports and are stopped by PID. Prefect persists events in batches (about
every 5 s), so the check polls POST /api/events/filter with a deadline.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.support.prefect_server import PrefectServer
from tests.webhook.helpers import SECRET, RelayProcess, push_payload
from webhook.signing import sign

pytestmark = pytest.mark.slow

EVENTS_DEADLINE_S = 30.0


@pytest.fixture(scope="module")
def prefect_server():
    with PrefectServer(startup_timeout=120) as server:
        print(f"\nprefect server healthy after {server.startup_seconds:.1f} s (pid {server.pid})")
        yield server


def post(url: str, payload: dict, delivery: str, *, secret: str = SECRET) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = {
        "content-type": "application/json",
        "x-github-event": "push",
        "x-github-delivery": delivery,
        "x-hub-signature-256": sign(secret, body),
    }
    return httpx.post(url, content=body, headers=headers, timeout=15)


def stored_events(server: PrefectServer, resource_id: str, since: datetime) -> list[dict]:
    body = {
        "filter": {
            "occurred": {
                "since": since.isoformat(),
                "until": (datetime.now(UTC) + timedelta(minutes=1)).isoformat(),
            },
            "event": {"name": ["github.push"]},
            "resource": {"id": [resource_id]},
        },
        "limit": 50,
    }
    response = httpx.post(f"{server.api_url}/events/filter", json=body, timeout=10)
    response.raise_for_status()
    return response.json()["events"]


def test_redelivered_push_is_one_event_in_prefect(prefect_server, tmp_path):
    relay = RelayProcess(
        {"GITHUB_WEBHOOK_SECRET": SECRET, "PREFECT_API_URL": prefect_server.api_url},
        tmp_path / "relay.log",
    )
    try:
        since = datetime.now(UTC) - timedelta(seconds=5)
        repo = f"acme/goose{uuid.uuid4().hex[:8]}"  # unique resource: nothing else matches
        resource_id = "github.repo." + repo.replace("/", ".")
        payload = push_payload(repository={"full_name": repo})
        url = f"{relay.url}/github"
        delivery, control = str(uuid.uuid4()), str(uuid.uuid4())

        latencies = []
        answers = []
        for d in (delivery, delivery, control):
            started = time.perf_counter()
            response = post(url, payload, d)
            latencies.append(time.perf_counter() - started)
            answers.append((response.status_code, response.json().get("event_id")))
        # Rejected and ignored deliveries must not add events either.
        assert post(url, payload, str(uuid.uuid4()), secret="wrong").status_code == 401
        other_branch = push_payload(repository={"full_name": repo}, ref="refs/heads/topic")
        assert post(url, other_branch, str(uuid.uuid4())).json()["status"] == "ignored"
        assert answers == [(202, delivery), (202, delivery), (202, control)]

        deadline = time.monotonic() + EVENTS_DEADLINE_S
        while True:
            events = stored_events(prefect_server, resource_id, since)
            ids = [e["id"] for e in events]
            if delivery in ids and control in ids:
                break
            assert time.monotonic() < deadline, f"events not stored in time; got {ids}"
            time.sleep(0.5)
        waited = EVENTS_DEADLINE_S - (deadline - time.monotonic())

        assert ids.count(delivery) == 1
        assert sorted(ids) == sorted([delivery, control])
        stored = next(e for e in events if e["id"] == delivery)
        assert stored["resource"]["prefect.resource.id"] == resource_id
        assert stored["resource"]["owner"] == "acme"
        assert stored["payload"]["after"] == payload["after"]
        assert stored["related"][0]["prefect.resource.role"] == "pusher"
        print(
            f"relay start {relay.startup_seconds:.2f} s; POST->202 "
            + ", ".join(f"{s * 1000:.0f} ms" for s in latencies)
            + f"; events visible after {waited:.1f} s"
        )
    finally:
        relay.stop()
    assert SECRET not in relay.log()
