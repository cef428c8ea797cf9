"""Count metrics on real counters: goldengoose apps, a bounded load, a real Prometheus.

A baseline and a canary (answering a quarter of its requests with 500) serve a known
number of requests, every one at a fixed latency just above a bucket bound. Halfway
through, the canary is restarted on the same port, so its counters reset inside the
window. The counts read back with the production metric source must equal, request for
request, what the client sent and what the apps' own /metrics said.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from canary.config import CanaryConfig
from canary.metrics.collect import fetch_counts_pair
from canary.metrics.prometheus import PrometheusMetricSource
from canary.values.counts import HistogramCounts, RatioCounts
from canary.values.scope import MetricScope
from examples.goldengoose.server import LATENCY_BUCKETS
from tests.support.prometheus import DEFAULT_BINARY, PrometheusServer

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
WARMUP, THREADS, PER_THREAD = 5, 4, 15  # per app: 5 before the window, 2 x 60 inside it
#: Every request sleeps just above the first bound >= 90 ms, ~8 ms below the next bound.
LOW = next(b for b in LATENCY_BUCKETS if b >= 0.09)
HIGH = LATENCY_BUCKETS[LATENCY_BUCKETS.index(LOW) + 1]
LATENCY_MS = LOW * 1000 + 0.5
CONFIG = CanaryConfig.model_validate({
    "judge": {"name": "sequential-v1"},
    "metrics": [
        {"name": "errors", "query": {"type": "prometheus", "ratio": {
            "events": 'goldengoose_requests_total{track="${scope}",code=~"5.."}',
            "total": 'goldengoose_requests_total{track="${scope}"}'}},
         "analysisConfigurations": {"canary": {}}},
        {"name": "latency", "query": {"type": "prometheus", "histogram": {
            "buckets": 'goldengoose_request_duration_seconds_bucket{track="${scope}"}'}},
         "analysisConfigurations": {"canary": {}}},
    ],
})  # fmt: skip
ERRORS, LATENCY = CONFIG.metrics
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class App:
    track: str
    flags: list[str]
    workdir: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    #: (status, client-side seconds) of every request sent inside the window
    answers: list[tuple[int, float]] = field(default_factory=list)

    def start(self) -> None:
        """Start (or restart, on the same port) this app; wait for its port file."""
        port_file = self.workdir / f"{self.track}.port"
        port_file.unlink(missing_ok=True)
        (self.workdir / "faults.json").write_text("{}")
        with open(self.workdir / f"{self.track}.log", "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "examples.goldengoose", "--host", "127.0.0.1",
                 "--port", str(self.port), "--port-file", str(port_file), "--track", self.track,
                 "--version", "1.0.0", "--base-latency-ms", str(LATENCY_MS), "--seed", "3",
                 "--faults-file", str(self.workdir / "faults.json"), *self.flags],
                cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
            )  # fmt: skip
        deadline = time.monotonic() + 15
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"goldengoose {self.track} did not start on port {self.port}")
            time.sleep(0.05)
        self.port = int(port_file.read_text())

    def stop(self) -> None:
        """Stop the process this object started (by its handle), if it still runs."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hit(self, count: int) -> list[tuple[int, float]]:
        """`count` sequential GET / requests: (status, seconds until the body was read)."""
        answers = []
        for _ in range(count):
            began = time.perf_counter()
            try:
                with _NO_PROXY.open(self.url + "/", timeout=10) as answer:
                    answer.read()
                    status = answer.status
            except urllib.error.HTTPError as exc:
                exc.read()
                status = exc.code
            answers.append((status, time.perf_counter() - began))
        return answers

    def own_counts(self) -> tuple[Counter[str], float]:
        """The app's own /metrics: requests by code, and its latency histogram's count."""
        with _NO_PROXY.open(self.url + "/metrics", timeout=10) as answer:
            text = answer.read().decode()
        codes: Counter[str] = Counter()
        observed = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "goldengoose_requests_total":
                    codes[sample.labels["code"]] += sample.value
                elif sample.name == "goldengoose_request_duration_seconds_count":
                    observed += sample.value
        return codes, observed


@dataclass
class Run:
    prometheus: PrometheusServer
    baseline: App
    canary: App
    start: datetime
    end: datetime
    #: requests by code each app said it served inside the window (over both lifetimes)
    served: dict[str, Counter[str]]
    observed: dict[str, float]
    seconds: float

    def scope(self, track: str | None) -> MetricScope:
        return MetricScope(scope=track, start=self.start, end=self.end, step=1)


def _load(apps: list[App]) -> float:
    """THREADS x PER_THREAD requests at each app, all at once; returns when all answered."""
    with ThreadPoolExecutor(THREADS * len(apps)) as pool:
        jobs = [(app, pool.submit(app.hit, PER_THREAD)) for app in apps for _ in range(THREADS)]
        for app, job in jobs:
            app.answers.extend(job.result(timeout=60))
    return time.time()


@pytest.fixture(scope="module")
def run() -> Iterator[Run]:
    if not Path(DEFAULT_BINARY).exists():
        pytest.skip(f"{DEFAULT_BINARY} missing: run `make setup`")
    began = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="counts-prom-"))
    baseline = App("baseline", [], workdir)
    canary = App("canary", ["--error-ratio", "0.25"], workdir)
    prometheus = None
    try:
        for app in (baseline, canary):
            app.start()
        targets = {app.track: f"127.0.0.1:{app.port}" for app in (baseline, canary)}
        prometheus = PrometheusServer(
            targets={"goldengoose": list(targets.values())},
            labels={target: {"track": track} for track, target in targets.items()},
        ).start()
        prometheus.wait_for('up{job="goldengoose"} == 1', lambda r: len(r) == 2, timeout=30)
        for app in (baseline, canary):  # before the window: must not be counted
            app.hit(WARMUP)
        warm = time.time()
        prometheus.wait_for_scrape_after("goldengoose_requests_total", warm, series=4)
        before = {app.track: app.own_counts() for app in (baseline, canary)}
        start = datetime.now(UTC)

        first = _load([baseline, canary])
        prometheus.wait_for_scrape_after('goldengoose_requests_total{track="canary"}', first,
                                         series=2)  # fmt: skip
        last_life = canary.own_counts()  # what the first process counted, all of it scraped
        canary.stop()
        canary.start()  # same port: the same series, its counters back at 0
        prometheus.wait_for(
            'sum(goldengoose_requests_total{track="canary"})',
            lambda r: len(r) == 1 and float(r[0]["value"][1]) == 0,
            timeout=20,
        )

        second = _load([baseline, canary])
        prometheus.wait_for_scrape_after("goldengoose_requests_total", second, series=4)
        end = datetime.now(UTC)

        after = {app.track: app.own_counts() for app in (baseline, canary)}
        served = {
            "baseline": after["baseline"][0] - before["baseline"][0],
            "canary": (last_life[0] - before["canary"][0]) + after["canary"][0],
        }
        observed = {
            "baseline": after["baseline"][1] - before["baseline"][1],
            "canary": last_life[1] - before["canary"][1] + after["canary"][1],
        }
        yield Run(prometheus, baseline, canary, start, end, served, observed,
                  time.monotonic() - began)  # fmt: skip
    finally:
        if prometheus is not None:
            prometheus.cleanup()
        for app in (baseline, canary):
            app.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _source(run: Run) -> PrometheusMetricSource:
    return PrometheusMetricSource(run.prometheus.url)


def test_ratio_counts_equal_the_requests_sent(run: Run) -> None:
    sent = {
        app.track: Counter(str(s) for s, _ in app.answers) for app in (run.baseline, run.canary)
    }
    assert (
        sum(sent["baseline"].values()) == sum(sent["canary"].values()) == 2 * THREADS * PER_THREAD
    )
    assert sent["baseline"]["500"] == 0 and 0 < sent["canary"]["500"] < sent["canary"]["200"]
    assert run.served == sent  # the apps agree with the client
    pair = fetch_counts_pair(_source(run), ERRORS, {}, run.scope("baseline"), run.scope("canary"))
    assert pair.missing == ()
    assert pair.control == RatioCounts(events=0, total=2 * THREADS * PER_THREAD)
    assert pair.experiment == RatioCounts(
        events=sent["canary"]["500"], total=2 * THREADS * PER_THREAD
    )


def test_histogram_counts_equal_the_latencies_seen(run: Run) -> None:
    pair = fetch_counts_pair(_source(run), LATENCY, {}, run.scope("baseline"), run.scope("canary"))
    assert pair.missing == ()
    for app, counts in ((run.baseline, pair.control), (run.canary, pair.experiment)):
        assert isinstance(counts, HistogramCounts)
        assert counts.upper_bounds == (*LATENCY_BUCKETS, float("inf"))
        assert counts.total == len(app.answers) == run.observed[app.track]
        by_bound = dict(zip(counts.upper_bounds, counts.buckets, strict=True))
        latencies = [seconds for _, seconds in app.answers]
        # The app answers every request LATENCY_MS after it arrives (0.5 ms above LOW): all
        # of them lie above LOW, and on an idle machine in (LOW, HIGH]. The client measures
        # at least what the server measured (the server's time is inside the client's), so
        # every request the client saw within HIGH is in the server's HIGH bucket; a loaded
        # machine can only push some server-side latencies past HIGH, never below LOW.
        assert by_bound[LOW] == sum(s <= LOW for s in latencies) == 0
        within = sum(s <= HIGH for s in latencies)
        assert within <= by_bound[HIGH] <= counts.total == len(latencies)
        assert by_bound[float("inf")] == counts.total


def test_restart_counts_both_lifetimes(run: Run) -> None:
    """The canary's counter went down inside the window, and nothing was lost or doubled."""
    span = int((run.end - run.start).total_seconds()) + 300
    raw = run.prometheus.api(
        "query", query=f'goldengoose_requests_total{{track="canary",code="200"}}[{span}s]',
        time=run.end.timestamp(),
    )["result"]  # fmt: skip
    (values,) = [[float(v) for _, v in series["values"]] for series in raw]
    drops = [(a, b) for a, b in zip(values, values[1:], strict=False) if b < a]
    assert len(drops) == 1 and drops[0][1] == 0, values  # one reset, scraped at 0
    ok_requests = sum(s == 200 for s, _ in run.canary.answers)
    assert values[-1] < ok_requests  # the last value alone undercounts: it is one lifetime
    counted = _source(run).counter_increase(
        'goldengoose_requests_total{track="canary",code="200"}', {}, run.scope("canary")
    )
    assert counted == {"": ok_requests} and run.served["canary"]["200"] == ok_requests


def test_counter_increase_per_track(run: Run) -> None:
    got = _source(run).counter_increase(
        'goldengoose_requests_total{job="goldengoose"}', {}, run.scope(None), by="track"
    )
    assert got == {"baseline": 2 * THREADS * PER_THREAD, "canary": 2 * THREADS * PER_THREAD}
    print(f"scenario: {run.seconds:.1f} s, {sum(got.values()):.0f} requests in the window")


# -- the CLI's checks on the same live data ---------------------------------------------------


def test_canary_validate_runs_every_query(run: Run, tmp_path: Path) -> None:
    """`canary validate CONFIG --prometheus URL`: every metric answers for the scope asked,
    and a selector that matches nothing is named."""
    import yaml

    from cli.check import validate

    config = REPO / "deployments" / "canary-configs" / "goldengoose.yaml"
    rows = validate(str(config), run.prometheus.url, scope="canary", minutes=10)
    by_check = {r["check"]: r for r in rows}
    assert by_check["error-rate @ canary"]["ok"] and by_check["latency @ canary"]["ok"], rows
    assert "requests in the window" in by_check["latency @ canary"]["detail"]
    data = yaml.safe_load(config.read_text())
    data["metrics"][1]["query"]["histogram"]["buckets"] = 'no_such_histogram_bucket{track="${scope}"}'
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(data))
    rows = {r["check"]: r for r in validate(str(broken), run.prometheus.url, scope="canary")}
    assert not rows["latency @ canary"]["ok"]
    assert rows["latency @ canary"]["detail"] == "the counters match no series"


def test_canary_backtest_judges_a_recorded_window_again(run: Run) -> None:
    """`canary backtest`: a recorded release (its event's window and scopes) judged again
    under a config; the old outcome next to the new verdict."""
    from types import SimpleNamespace

    from canary.values.events import ReleaseEnded
    from canary.values.outcome import Outcome
    from cli.check import backtest
    from store.events import StoredEvent

    ended = ReleaseEnded(app="goldengoose", outcome=Outcome.PROMOTED, commit="c" * 40,
                         window_start=run.start, window_end=run.end, control_scope="baseline",
                         experiment_scope="canary")  # fmt: skip
    event = StoredEvent(run.end, ended.event_name, ended)
    recorded = SimpleNamespace(events=lambda app, names: [event])
    config = REPO / "deployments" / "canary-configs" / "goldengoose.yaml"
    (row,) = backtest(recorded, "goldengoose", str(config), run.prometheus.url)
    # the canary answers 25 % of its requests with 500: the new judge rolls it back
    assert row["old"] == "promoted" and row["new"] == "rolled-back" and row["changed"], row
    assert "error-rate High" in row["why_new"]
