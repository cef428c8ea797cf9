"""The relay's /metrics against a REAL Prefect server, with a REAL Prometheus scraping it.

The relay (`python -m webhook`) starts first, while nothing listens at its Prefect URL: it
still answers webhooks (503: not recorded) and /metrics (the stream is down). Then
`prefect server start` comes up on that very port and the relay's stream reconnects by
itself. A release's events (start, looks, end), posted to the server as the flow emits
them, show on /metrics and in Prometheus (and fire the rollback alert of
deployments/prometheus/canary-alerts.yaml). Every wait polls with a deadline.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from canary.values.events import (
    CanaryEvent,
    LookMetric,
    ReleaseEnded,
    ReleaseLook,
)
from canary.values.outcome import Outcome
from tests.support.events import release_started
from tests.support.polling import poll
from tests.support.prefect_server import PrefectServer, free_port
from tests.support.prometheus import PrometheusServer
from tests.webhook.helpers import SECRET, RelayProcess, push_payload
from webhook.signing import sign

pytestmark = pytest.mark.slow

APP = "goldengoose"
RULES = Path(__file__).parents[2] / "deployments" / "prometheus" / "canary-alerts.yaml"
EVIDENCE = Path("/work/evidence23-telemetry.txt")


@dataclass
class Down:
    """What the relay answered while Prefect was down."""

    metrics: httpx.Response
    ping: httpx.Response
    push: httpx.Response
    push_seconds: float


@dataclass
class Chain:
    relay: RelayProcess
    server: PrefectServer
    down: Down


def delivery(url: str, kind: str, payload: dict) -> httpx.Response:
    body = json.dumps(payload).encode()
    return httpx.post(f"{url}/github", content=body, timeout=15, headers={
        "content-type": "application/json", "x-github-event": kind,
        "x-github-delivery": str(uuid.uuid4()), "x-hub-signature-256": sign(SECRET, body)})  # fmt: skip


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    tmp = tmp_path_factory.mktemp("release-metrics")
    port = free_port()
    relay = RelayProcess({"GITHUB_WEBHOOK_SECRET": SECRET, "PREFECT_HOME": str(tmp / "relay-home"),
                          "PREFECT_API_URL": f"http://127.0.0.1:{port}/api"}, tmp / "relay.log")  # fmt: skip
    try:
        metrics = httpx.get(f"{relay.url}/metrics", timeout=5)
        ping = delivery(relay.url, "ping", {"zen": "hi", "hook_id": 1})
        started = time.monotonic()
        push = delivery(relay.url, "push", push_payload())
        down = Down(metrics, ping, push, time.monotonic() - started)
        with PrefectServer(port=port, startup_timeout=120) as server:
            yield Chain(relay, server, down)
    finally:
        relay.stop()


def samples(relay: RelayProcess) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample on the relay's /metrics, by name and labels."""
    answer = httpx.get(f"{relay.url}/metrics", timeout=5)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(answer.text) for s in family.samples}  # fmt: skip


def value(relay: RelayProcess, name: str, **labels: str) -> float | None:
    return samples(relay).get((name, frozenset(labels.items())))


def post(server: PrefectServer, event: CanaryEvent, occurred: datetime) -> None:
    """The event as the flow emits it (store.events.emit): name, resource, payload."""
    body = [{"id": str(uuid.uuid4()), "occurred": occurred.isoformat(), "event": event.event_name,
             "resource": event.resource(), "payload": event.payload()}]  # fmt: skip
    httpx.post(f"{server.api_url}/events", json=body, timeout=10).raise_for_status()


def release(server: PrefectServer, commit: str, outcome: Outcome, start: datetime,
            shares: list[tuple[int, int, int]]) -> None:  # fmt: skip
    """A release's events: started, one look per share, its end 12 s after the start."""
    post(server, release_started(APP, commit, lifetime_seconds=60), start)
    for i, (primary, baseline, canary) in enumerate(shares, 1):
        latency = LookMetric(metric="latency", classification="Pass", estimate=0.036 * i,
                             lower=0.03 * i, upper=0.04 * i, threshold=0.0385)  # fmt: skip
        errors = LookMetric(metric="error-rate", classification="Pass", estimate=1.0, lower=0.5,
                            upper=1.8, threshold=1.0)  # fmt: skip
        post(server, ReleaseLook(app=APP, look=i, looks=len(shares), primary=primary,
                                 baseline=baseline, canary=canary, score=100.0, action="continue",
                                 metrics=(latency, errors)), start + timedelta(seconds=4 * i))  # fmt: skip
    post(server, ReleaseEnded(app=APP, outcome=outcome, commit=commit, reason="test"),
         start + timedelta(seconds=12))  # fmt: skip


def test_a_relay_whose_prefect_is_down_answers_webhooks_and_metrics(chain: Chain) -> None:
    down = chain.down
    assert down.metrics.status_code == 200
    assert "canary_telemetry_stream_up 0.0" in down.metrics.text
    assert down.ping.status_code == 200 and down.ping.json() == {"status": "pong"}
    assert down.push.status_code == 503, down.push.text  # not recorded: GitHub redelivers
    assert down.push_seconds < 5, down.push_seconds
    assert chain.relay.process.poll() is None  # still running


def test_the_release_metrics_follow_a_release_and_prometheus_scrapes_them(chain: Chain) -> None:
    relay, server = chain.relay, chain.server
    # the stream reconnected by itself once Prefect came up (backoff: at most 30 s)
    poll("the relay follows Prefect's events",
         lambda: value(relay, "canary_telemetry_stream_up") == 1.0, timeout=60)  # fmt: skip
    rules = RULES.read_text()
    with PrometheusServer(targets={"canary-releases": [f"127.0.0.1:{relay.port}"]},
                          rules=rules) as prom:  # fmt: skip
        prom.wait_for('up{job="canary-releases"}', lambda r: r and r[0]["value"][1] == "1")
        t0 = datetime.now(UTC) - timedelta(seconds=30)
        release(server, "a" * 40, Outcome.PROMOTED, t0, [(90, 5, 5), (50, 25, 25)])
        promoted = f'canary_releases_total{{app="{APP}",outcome="promoted"}}'
        poll("the promotion on /metrics",
             lambda: value(relay, "canary_releases_total", app=APP, outcome="promoted") == 1.0)  # fmt: skip
        # Prometheus has the rollback counter at 0 before the rollback (for increase())
        prom.wait_for(promoted, lambda r: bool(r) and r[0]["value"][1] == "1")
        prom.wait_for(f'canary_releases_total{{app="{APP}",outcome="rolled_back"}}',
                      lambda r: bool(r) and r[0]["value"][1] == "0")  # fmt: skip
        release(server, "b" * 40, Outcome.ROLLED_BACK, t0 + timedelta(seconds=15),
                [(90, 5, 5), (75, 12, 13)])  # fmt: skip
        poll("the rollback on /metrics",
             lambda: value(relay, "canary_releases_total", app=APP, outcome="rolled_back") == 1.0)  # fmt: skip
        got = samples(relay)
        text = httpx.get(f"{relay.url}/metrics", timeout=5).text

        def at(name: str, **labels: str) -> float | None:
            return got.get((name, frozenset({"app": APP, **labels}.items())))

        assert at("canary_releases_total", outcome="promoted") == 1.0
        assert at("canary_releases_total", outcome="aborted") == 0.0
        assert at("canary_releases_total", outcome="skipped") == 0.0
        assert at("canary_release_in_progress") == 0.0
        # the release ended: all traffic on production again
        assert [at("canary_release_weight", track=t) for t in ("primary", "baseline", "canary")] == [100, 0, 0]
        # one duration per outcome: 12 s from the start event to the end event
        for outcome in ("promoted", "rolled_back"):
            assert at("canary_release_duration_seconds_count", outcome=outcome) == 1.0
            assert at("canary_release_duration_seconds_sum", outcome=outcome) == pytest.approx(12.0)
            assert at("canary_release_duration_seconds_bucket", outcome=outcome, le="15.0") == 1.0
            assert at("canary_release_duration_seconds_bucket", outcome=outcome, le="+Inf") == 1.0
        # the last look's numbers, side by side
        assert [at(f"canary_metric_{k}", metric="latency") for k in ("estimate", "lower", "upper", "threshold")] == \
            [pytest.approx(0.072), pytest.approx(0.06), pytest.approx(0.08), pytest.approx(0.0385)]  # fmt: skip
        # Prometheus has them too, and the rollback alert fires
        prom.wait_for(f'canary_releases_total{{app="{APP}",outcome="rolled_back"}}',
                      lambda r: bool(r) and r[0]["value"][1] == "1")  # fmt: skip
        prom.wait_for(promoted, lambda r: bool(r) and r[0]["value"][1] == "1")
        prom.wait_for('ALERTS{alertname="CanaryReleaseRolledBack",alertstate="firing"}',
                      lambda r: bool(r) and r[0]["metric"]["app"] == APP, timeout=30)  # fmt: skip
        assert prom.query('ALERTS{alertname="CanaryReleaseStuck"}') == []
    EVIDENCE.write_text(
        "# GET /metrics of the webhook relay (tests/webhook/test_release_metrics.py), after a\n"
        "# promoted and a rolled-back release of goldengoose posted to a real Prefect server\n"
        + text
    )


def test_a_release_in_progress_shows_its_shares(chain: Chain) -> None:
    relay, server = chain.relay, chain.server
    poll("the relay follows Prefect's events",
         lambda: value(relay, "canary_telemetry_stream_up") == 1.0, timeout=60)  # fmt: skip
    app, start = "shop", datetime.now(UTC) - timedelta(seconds=5)
    post(server, release_started(app, "c" * 40), start)
    post(server, ReleaseLook(app=app, look=1, looks=4, primary=50, baseline=25, canary=25),
         start + timedelta(seconds=2))  # fmt: skip
    poll("the look's shares on /metrics",
         lambda: value(relay, "canary_release_weight", app=app, track="canary") == 25.0)  # fmt: skip
    assert value(relay, "canary_release_in_progress", app=app) == 1.0
    assert value(relay, "canary_release_weight", app=app, track="primary") == 50.0
