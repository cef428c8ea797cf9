"""The PrometheusSource Prefect block: headers built right, secrets never shown (no server)."""

from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError

from blocks.prometheus import PrometheusSource
from canary.metrics.prometheus import PrometheusMetricSource

TOKEN = "tok-9f8e7d"
PASSWORD = "pw-1a2b3c"


def test_slug():
    assert PrometheusSource.get_block_type_slug() == "prometheus-source"


def test_bearer_token_header():
    block = PrometheusSource(url="http://prom:9090", bearer_token=TOKEN,
                             extra_headers={"X-Scope-OrgID": "team-a"})  # fmt: skip
    assert block.headers() == {"Authorization": f"Bearer {TOKEN}", "X-Scope-OrgID": "team-a"}
    source = block.source()
    assert isinstance(source, PrometheusMetricSource)
    assert source._client.headers == block.headers()
    assert source._session.verify is True


def test_basic_auth_header_and_options():
    block = PrometheusSource(url="https://prom", basic_auth_username="canary",
                             basic_auth_password=PASSWORD, verify_tls=False, timeout_seconds=3)  # fmt: skip
    expected = base64.b64encode(f"canary:{PASSWORD}".encode()).decode()
    assert block.headers() == {"Authorization": f"Basic {expected}"}
    source = block.source(align="grid")
    assert source._session.verify is False and source._timeout == 3
    assert source._align == "grid"


def test_no_credentials_no_auth_header():
    assert PrometheusSource(url="http://prom:9090").headers() == {}


@pytest.mark.parametrize(
    "fields",
    [
        {"bearer_token": TOKEN, "basic_auth_username": "u", "basic_auth_password": PASSWORD},
        {"basic_auth_username": "u"},
        {"basic_auth_password": PASSWORD},
        {"bearer_token": TOKEN, "extra_headers": {"authorization": "x"}},
        {"timeout_seconds": 0},
    ],
)
def test_invalid_combinations(fields):
    with pytest.raises(ValidationError):
        PrometheusSource(url="http://prom:9090", **fields)


def test_secrets_never_shown():
    blocks = [
        PrometheusSource(url="http://prom:9090", bearer_token=TOKEN),
        PrometheusSource(
            url="http://prom:9090", basic_auth_username="u", basic_auth_password=PASSWORD
        ),
    ]
    for block in blocks:
        shown = [repr(block), str(block), str(block.model_dump()), block.model_dump_json(),
                 repr(block.source())]  # fmt: skip
        for text in shown:
            assert TOKEN not in text and PASSWORD not in text
