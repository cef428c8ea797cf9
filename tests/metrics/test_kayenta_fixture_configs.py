"""Kayenta's own Prometheus canary configs, run unchanged against a real Prometheus.

A small exporter serves the series those configs query (the names and labels of Kayenta's
integration tests: `integration_test_cpu{namespace, scope}`, the muted-metric pair,
`node_cpu{mode}` on GCE-style instances, `container_cpu_usage_seconds_total`), with fresh
noise at every scrape: baseline and canary alike, except `integration_failing_metric`, whose
canary runs 60 % higher. Each config is loaded from the fixture file as it is, its queries
built Kayenta's way, fetched over a real window and judged.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from canary.config import CanaryConfig
from canary.judge import Classification, Verdict, judge
from canary.metrics.collect import collect_pairs
from canary.metrics.prometheus import PrometheusMetricSource
from canary.values.scope import MetricScope
from tests.config.kayenta_fixtures import CONFIGS
from tests.support.prometheus import DEFAULT_BINARY, PrometheusServer

pytestmark = [pytest.mark.slow, pytest.mark.needs("kayenta")]

NAMESPACE, LOCATION = "prod-namespace", "us-central1"
SCOPES = {"baseline": "myapp-baseline", "canary": "myapp-canary"}
PROMETHEUS_CONFIGS = sorted(p.name for p in CONFIGS.glob("*prometheus*.json"))
SCOPE_LABEL = "gce_instance"  # Kayenta's kayenta.prometheus.scopeLabel, set for this setup


class Exporter(BaseHTTPRequestHandler):
    rng = random.Random(5)
    lock = threading.Lock()

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        with self.lock:
            body = self.render().encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass

    @classmethod
    def render(cls) -> str:
        lines = []
        for side, scope in SCOPES.items():
            def noisy(mean: float) -> float:
                return mean * (1 + cls.rng.gauss(0, 0.05))

            failing = 1.6 if side == "canary" else 1.0
            common = f'namespace="{NAMESPACE}",scope="{scope}"'
            lines.append(f'integration_test_cpu{{{common},pod_name="{scope}"}} {noisy(50):.4f}')
            lines.append(f"integration_failing_metric{{{common}}} {noisy(20 * failing):.4f}")
            lines.append(f"integration_successful_metric{{{common}}} {noisy(20):.4f}")
            instance = f"{scope}-ab1c"
            zone = f"projects/p/zones/{LOCATION}-b"
            for mode in ("user", "system", "idle"):
                lines.append(f'node_cpu{{mode="{mode}",{SCOPE_LABEL}="{instance}",zone="{zone}"}} '
                             f"{noisy(30):.4f}")  # fmt: skip
        lines.append(f'container_cpu_usage_seconds_total{{container_name="myapp"}} {noisy(9):.4f}')
        return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def window() -> Iterator[tuple[PrometheusServer, datetime, datetime]]:
    if not Path(DEFAULT_BINARY).exists():
        pytest.skip(f"{DEFAULT_BINARY} missing: run `make setup`")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Exporter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    workdir = Path(tempfile.mkdtemp(prefix="kayenta-fixtures-"))
    target = f"127.0.0.1:{server.server_address[1]}"
    prometheus = None
    try:
        # job "node": the scratch config's labelBindings ask for job="node".
        prometheus = PrometheusServer(targets={"node": [target]}, workdir=workdir).start()
        prometheus.wait_for('up{job="node"} == 1', lambda r: len(r) == 1, timeout=30)
        start = datetime.now(UTC)
        prometheus.wait_for(  # 15 scrapes after the start (polled, not slept)
            "count_over_time(integration_test_cpu[1h])",
            lambda r: len(r) == 2 and min(float(x["value"][1]) for x in r) >= 15,
            timeout=60,
        )
        yield prometheus, start, datetime.now(UTC) - timedelta(seconds=1)
    finally:
        if prometheus is not None:
            prometheus.cleanup()
        server.shutdown()
        server.server_close()
        shutil.rmtree(workdir, ignore_errors=True)


def _scope(side: str, start: datetime, end: datetime, *, resource_type: str | None) -> MetricScope:
    return MetricScope(scope=SCOPES[side], location=LOCATION, start=start, end=end, step=1,
                       resource_type=resource_type,
                       extended_scope_params={"namespace": NAMESPACE, "container_name": "myapp"})  # fmt: skip


@pytest.mark.parametrize("name", PROMETHEUS_CONFIGS)
def test_kayenta_prometheus_config_runs_unchanged(name: str, window) -> None:
    prometheus, start, end = window
    config = CanaryConfig.load(CONFIGS / name)
    # Configs without a template need the resource type from the scope (as in Kayenta).
    resource_type = None if config.templates else "gce_instance"
    source = PrometheusMetricSource(prometheus.url, scope_label=SCOPE_LABEL)
    pairs = collect_pairs(source, config,
                          _scope("baseline", start, end, resource_type=resource_type),
                          _scope("canary", start, end, resource_type=resource_type))  # fmt: skip
    for pair in pairs:  # real series reached the judge, both sides
        assert (pair.control_values == pair.control_values).sum() >= 10, (name, pair.name)
        assert (pair.experiment_values == pair.experiment_values).sum() >= 10, (name, pair.name)
    result = judge(config, pairs, thresholds={"pass": 75, "marginal": 50})
    labels = {m.name: m.result.classification for m in result.metrics}
    if "muted" in name:
        # Kayenta's own muted-metric test: the failing (critical!) metric is High but muted.
        assert labels == {"Failing metric": Classification.HIGH,
                          "Successful metric": Classification.PASS}  # fmt: skip
    else:
        assert set(labels.values()) == {Classification.PASS}, result.rows()
    assert result.verdict is Verdict.PASS and result.summary_score == 100.0


def test_every_prometheus_fixture_is_covered() -> None:
    assert len(PROMETHEUS_CONFIGS) == 6, PROMETHEUS_CONFIGS

