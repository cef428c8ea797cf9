"""The judge on real series: goldengoose apps under real load, scraped by a real Prometheus.

One baseline and three canaries run side by side for ~25 s: an identical build (A/A), a
build with +50 ms latency and a build answering 5 % of requests with 500. Prometheus relabels
each target's `track` so the shipped goldengoose canary config can select each one as a
scope. Every interval is fetched with the production metric source and judged with the
production config (deployments/canary-configs/goldengoose.yaml).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from canary.config import CanaryConfig
from canary.errors import MetricsError
from canary.judge import Classification, Verdict, judge
from canary.judge.guards import check_split
from canary.metrics.collect import collect_counts, collect_pairs, count_requests
from canary.metrics.prometheus import PrometheusMetricSource
from canary.values.scope import MetricScope
from tests.support.prometheus import DEFAULT_BINARY, PrometheusServer

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CONFIG = CanaryConfig.load(REPO / "deployments" / "canary-configs" / "goldengoose-kayenta.yaml")
ALPHA = 1e-6  # see the module docstring: the A/A flake rate this test accepts
_DEFAULT = yaml.safe_load((REPO / "deployments" / "canary-configs" / "goldengoose.yaml").read_text())
for _metric in _DEFAULT["metrics"]:
    _metric["analysisConfigurations"]["canary"]["alpha"] = ALPHA
_DEFAULT["guards"]["splitAlpha"] = ALPHA
SEQUENTIAL = CanaryConfig.from_yaml_data(_DEFAULT, source="goldengoose.yaml (alpha 1e-6)")
THRESHOLDS = {"pass": 95, "marginal": 75}
RATE, SECONDS = 40.0, 24.0
# scope name -> extra goldengoose flags (the baseline and "aa" run the very same build)
APPS = {
    "baseline": [],
    "aa": [],
    "slow": ["--added-latency-ms", "50"],
    "errors": ["--error-ratio", "0.05"],
}


@dataclass
class Running:
    prometheus: PrometheusServer
    start: datetime
    end: datetime

    def scope(self, name: str) -> MetricScope:
        return MetricScope(scope=name, start=self.start, end=self.end, step=1,
                           extended_scope_params={"rate_window": "5s"})


def _start_app(name: str, flags: list[str], workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port_file = workdir / f"{name}.port"
    (workdir / "faults.json").write_text("{}")
    process = subprocess.Popen(
        [sys.executable, "-m", "examples.goldengoose", "--port", "0", "--port-file", str(port_file),
         "--version", "1.0.0", "--track", "canary", "--base-latency-ms", "5", "--jitter-ms", "4",
         "--seed", "11", "--faults-file", str(workdir / "faults.json"), *flags],
        cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=open(workdir / f"{name}.log", "wb"),  # noqa: SIM115 (closed with the process)
    )  # fmt: skip
    deadline = time.monotonic() + 15
    while not (port_file.exists() and port_file.read_text().strip()):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"goldengoose {name} did not start: {(workdir / f'{name}.log').read_text()}")
        time.sleep(0.05)
    return process, int(port_file.read_text())


@pytest.fixture(scope="module")
def running() -> Iterator[Running]:
    if not Path(DEFAULT_BINARY).exists():
        pytest.skip(f"{DEFAULT_BINARY} missing: run `make setup`")
    from examples.goldengoose.load import drive

    workdir = Path(tempfile.mkdtemp(prefix="judge-prom-"))
    procs: list[subprocess.Popen[bytes]] = []
    prometheus = None
    try:
        ports = {}
        for name, flags in APPS.items():
            proc, ports[name] = _start_app(name, flags, workdir)
            procs.append(proc)
        targets = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
        prometheus = PrometheusServer(
            targets={"goldengoose": list(targets.values())},
            labels={t: {"track": name} for name, t in targets.items()},  # overrides the app's
        ).start()
        prometheus.wait_for('up{job="goldengoose"} == 1', lambda r: len(r) == len(APPS), timeout=30)
        results: dict[str, object] = {}
        threads = [
            threading.Thread(target=lambda n=n, t=t: results.__setitem__(
                n, drive(f"http://{t}/", rate=RATE, duration=SECONDS, deadline=SECONDS + 10)))
            for n, t in targets.items()
        ]  # fmt: skip
        start = datetime.now(UTC)
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=SECONDS + 20)
        end = datetime.now(UTC)
        assert all(r.ok + sum(r.errors.values()) >= 0.9 * r.planned for r in results.values()), results  # type: ignore[attr-defined]
        # Poll until Prometheus has scraped past the end of the load (no sleep-and-hope).
        prometheus.wait_for(
            'timestamp(up{job="goldengoose"})',
            lambda r: len(r) == len(APPS) and min(float(x["value"][1]) for x in r) > end.timestamp() + 1,
            timeout=20,
        )
        # Judge the steady part: skip the first rate window after the load started.
        yield Running(prometheus, start + timedelta(seconds=6), end)
    finally:
        if prometheus is not None:
            prometheus.cleanup()
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def _judge(running: Running, canary: str):
    source = PrometheusMetricSource(running.prometheus.url)
    pairs = collect_pairs(source, CONFIG, running.scope("baseline"), running.scope(canary))
    for pair in pairs:  # real data reached the judge, not NaN placeholders
        assert (pair.control_values == pair.control_values).sum() >= 10, pair.name
    return judge(CONFIG, pairs, thresholds=THRESHOLDS)


def _labels(result) -> dict[str, Classification]:
    return {m.name: m.result.classification for m in result.metrics}


def _judge_counts(running: Running, canary: str):
    source = PrometheusMetricSource(running.prometheus.url)
    control, experiment = running.scope("baseline"), running.scope(canary)
    pairs = collect_pairs(source, SEQUENTIAL, control, experiment)  # the muted Flagger checks
    counts = collect_counts(source, SEQUENTIAL, control, experiment)
    requests = count_requests(source, SEQUENTIAL, control, experiment)
    assert requests is not None and min(requests) >= 500, requests  # real traffic was counted
    guards = (check_split(*requests, alpha=ALPHA),)
    return judge(SEQUENTIAL, pairs, thresholds=THRESHOLDS, counts=counts, guards=guards)


def test_identical_builds_pass_the_request_level_judge(running: Running) -> None:
    result = _judge_counts(running, "aa")
    labels = _labels(result)
    assert labels["error-rate"] is Classification.PASS and labels["latency"] is Classification.PASS
    assert result.summary_score == 100.0 and not result.failed_guards, result.rows()
    # The muted Flagger checks are still judged and reported: a healthy canary meets them.
    assert labels["flagger-request-success-rate"] is Classification.PASS
    assert labels["flagger-request-duration-p99"] is Classification.PASS


def test_request_level_judge_catches_latency_and_errors(running: Running) -> None:
    slow = {m.name: m for m in _judge_counts(running, "slow").metrics}
    assert slow["latency"].classification is Classification.HIGH, slow["latency"].result.reason
    assert slow["latency"].critical and slow["latency"].decided
    assert slow["error-rate"].classification is Classification.PASS
    errors = {m.name: m for m in _judge_counts(running, "errors").metrics}
    assert errors["error-rate"].classification is Classification.HIGH, errors["error-rate"].result.reason
    assert errors["error-rate"].result.ratio_lower > 1  # proven higher, even at alpha 1e-6


def test_added_latency_is_high_on_latency_and_fails(running: Running) -> None:
    result = _judge(running, "slow")
    labels = _labels(result)
    assert labels["latency-p50"] is Classification.HIGH, result.rows()
    assert labels["latency-p99"] is Classification.HIGH, result.rows()
    assert labels["error-ratio"] is Classification.PASS
    assert dict(result.group_scores)["latency"] == 0.0
    assert result.verdict is Verdict.FAIL, result.summary_score


def test_errors_fail_through_the_critical_metric(running: Running) -> None:
    result = _judge(running, "errors")
    by_name = {m.name: m.result for m in result.metrics}
    assert by_name["error-ratio"].classification is Classification.HIGH, result.rows()
    assert by_name["error-ratio"].critical is True
    assert by_name["success-rate"].classification is Classification.LOW
    assert result.summary_score == 0.0 and result.verdict is Verdict.FAIL
    assert "error-ratio" in (result.scores.reason or "")


def test_prometheus_stopped_mid_analysis_is_transient_never_a_verdict(running: Running) -> None:
    """Stop a (second) Prometheus after the first metric: the error surfaces, no judgement."""
    clone = PrometheusServer(
        targets={"goldengoose": []}, workdir=Path(tempfile.mkdtemp(prefix="prom-stop-"))
    ).start()
    source = PrometheusMetricSource(clone.url, timeout=3)
    seen: list[str] = []

    def stop_after_first(metric, index, total):
        seen.append(metric.name)
        if index == 1:
            clone.stop()

    try:
        with pytest.raises(MetricsError) as caught:
            collect_pairs(source, CONFIG, running.scope("baseline"), running.scope("aa"),
                          progress=stop_after_first)
    finally:
        clone.cleanup()
    assert caught.value.transient is True
    assert seen == [CONFIG.metrics[0].name]  # nothing after the outage was judged or skipped
