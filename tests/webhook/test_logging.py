"""Logs say what happened to each delivery, and never contain the secret or the body."""

from __future__ import annotations

import json
import logging

import pytest

from tests.webhook.helpers import BODY_ONLY_MARKER, MESSAGE_MARKER, SECRET, deliver, push_payload
from webhook.settings import Settings

pytestmark = pytest.mark.anyio

LEAKS = (SECRET, BODY_ONLY_MARKER, MESSAGE_MARKER)


async def test_no_secret_or_body_in_logs_on_any_path(make_relay, fake_prefect, caplog, capsys):
    caplog.set_level(logging.DEBUG)  # every logger, httpx/httpcore included
    async with make_relay(prefect_auth_header=f"Bearer {SECRET}") as relay:
        answers = [
            (await deliver(relay, delivery="d-accepted")).status_code,
            (await deliver(relay, event="ping")).status_code,
            (await deliver(relay, push_payload(ref="refs/heads/x"))).status_code,
            (await deliver(relay, signature="sha256=" + "0" * 64)).status_code,
            (await deliver(relay, body=b'{"broken": "' + MESSAGE_MARKER.encode())).status_code,
            (await deliver(relay, push_payload(after=MESSAGE_MARKER))).status_code,
            (await deliver(relay, push_payload(padding="x" * 2_000_000))).status_code,
        ]
        fake_prefect.status = 500
        answers.append((await deliver(relay)).status_code)
        fake_prefect.stop()
        answers.append((await deliver(relay)).status_code)
    assert answers == [202, 200, 202, 401, 400, 400, 413, 503, 503]

    captured = capsys.readouterr()
    for text in (caplog.text, captured.out, captured.err):
        for leak in LEAKS:
            assert leak not in text
    for record in caplog.records:
        rendered = record.getMessage() + repr(record.args)
        assert not any(leak in rendered for leak in LEAKS)

    relay_lines = [r.getMessage() for r in caplog.records if r.name == "webhook"]
    assert any("delivery=d-accepted event=push -> 202" in line for line in relay_lines)
    assert sum(" -> 401 " in line for line in relay_lines) == 1
    assert sum(" -> 503 " in line for line in relay_lines) == 2


async def test_hostile_header_values_are_sanitised_in_logs(relay, caplog):
    caplog.set_level(logging.INFO, logger="webhook")
    await deliver(relay, event="push\nFAKE LOG LINE", delivery="x" * 500)
    (line,) = [r.getMessage() for r in caplog.records if r.name == "webhook"]
    assert "\n" not in line and "x" * 81 not in line


def test_settings_repr_hides_secret_and_auth(fake_prefect):
    settings = Settings(
        secret=SECRET, prefect_api_url=fake_prefect.api_url, prefect_auth_header=f"Bearer {SECRET}"
    )
    assert SECRET not in repr(settings)
    assert SECRET not in json.dumps(settings.loggable_api_url)


def test_loggable_api_url_drops_credentials():
    settings = Settings(
        secret=SECRET, prefect_api_url="https://user:hunter2@prefect.example:8443/api/"
    )
    assert settings.loggable_api_url == "https://prefect.example:8443/api"
    assert settings.events_url == "https://user:hunter2@prefect.example:8443/api/events"
