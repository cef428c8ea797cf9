"""The load driver against real servers, and the fault knobs measured through it."""

from __future__ import annotations

import asyncio
import http.client
import json
import math
import re
import statistics
import subprocess
import sys
import time

import pytest

from examples.goldengoose.load import LoadResult, drive, run_load

from .conftest import ROOT, Running, StartServer, clean_env


def histogram_quantile(q: float, srv: Running) -> float:
    """Prometheus' histogram_quantile over the server's own duration histogram (seconds)."""
    buckets = sorted(
        (float(dict(labels)["le"]), value)
        for (name, labels), value in srv.samples().items()
        if name == "goldengoose_request_duration_seconds_bucket"
    )
    total = buckets[-1][1]
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    raise AssertionError("unreachable")


def load_both(
    a: Running, b: Running, *, rate: float, duration: float
) -> tuple[LoadResult, LoadResult]:
    """Load two servers at once so machine noise hits both alike."""

    async def both() -> tuple[LoadResult, LoadResult]:
        return await asyncio.gather(
            run_load(a.url, rate=rate, duration=duration),
            run_load(b.url, rate=rate, duration=duration),
        )

    return asyncio.run(both())


@pytest.mark.parametrize(("rate", "duration"), [(150, 2.0), (33.3, 0.9)])
def test_sends_exactly_round_rate_times_duration(
    start_server: StartServer, rate: float, duration: float
) -> None:
    srv = start_server()
    began = time.monotonic()
    result = drive(srv.url, rate=rate, duration=duration, timeout=2.0)
    wall = time.monotonic() - began
    planned = round(rate * duration)
    assert (result.planned, result.sent, result.ok, result.answered) == (planned,) * 4
    assert result.errors == {} and result.transport_errors == {} and result.cancelled == 0
    assert wall < duration + 2.0 + 1.0  # the default deadline; in practice ~duration
    # Schedule held: idle it is within 0.1%; the slack absorbs CPU contention from neighbours.
    assert result.elapsed < duration + 1.0
    assert abs(result.achieved_rate - rate) / rate < 0.10
    samples = srv.samples()
    served = sum(v for (n, _), v in samples.items() if n == "goldengoose_requests_total")
    assert served == planned  # the server counted exactly what the driver sent


def test_hard_deadline_cancels_outstanding_requests(start_server: StartServer) -> None:
    srv = start_server("--base-latency-ms", "3000")
    began = time.monotonic()
    result = drive(srv.url, rate=20, duration=0.5, timeout=10, deadline=1.0)
    wall = time.monotonic() - began
    assert wall < 1.0 + 0.5
    assert result.sent == 10 and result.cancelled == 10 and result.answered == 0


def test_hard_deadline_stops_the_schedule(start_server: StartServer) -> None:
    srv = start_server()
    began = time.monotonic()
    result = drive(srv.url, rate=10, duration=5, deadline=1.0)
    assert time.monotonic() - began < 1.5
    # Sends due at 0.0, 0.1, ... 0.9 s; the one due at the deadline (1.0 s) is never sent.
    assert (result.planned, result.sent) == (50, 10)
    assert result.ok + result.cancelled == result.sent and result.ok >= 9


def test_request_timeouts_are_transport_errors(start_server: StartServer) -> None:
    srv = start_server("--base-latency-ms", "800")
    result = drive(srv.url, rate=20, duration=0.25, timeout=0.2)
    assert result.sent == 5 and result.answered == 0
    assert sum(result.transport_errors.values()) == 5, result.transport_errors


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/",
        "http://10.0.0.1:8080/",
        "http://127.0.0.1.nip.io/",
        "http://0.0.0.0:8080/",
        "http://[::2]:8080/",
        "ftp://127.0.0.1/",
        "http://127.0.0.1:notaport/",
    ],
)
def test_refuses_non_loopback_urls(url: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(url))):
        drive(url, rate=1, duration=1)


def test_cli_runs_and_refuses(start_server: StartServer) -> None:
    srv = start_server("--track", "canary")
    cmd = [sys.executable, "-m", "examples.goldengoose.load", "--rate", "40", "--duration", "0.5"]
    done = subprocess.run(
        [*cmd, "--url", srv.url, "--json"], cwd=ROOT, env=clean_env(),
        capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["sent"], summary["ok"], summary["tracks"]) == (20, 20, {"canary": 20})
    refused = subprocess.run(
        [*cmd, "--url", "http://192.0.2.1/"], cwd=ROOT, env=clean_env(),
        capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    assert refused.returncode == 2 and "http://192.0.2.1/" in refused.stderr


def test_error_ratio_gives_that_share_of_500s(start_server: StartServer) -> None:
    srv = start_server("--error-ratio", "0.2")
    n, p = 500, 0.2
    result = drive(srv.url, rate=400, duration=n / 400)
    assert result.answered == n
    failed = result.errors.get(500, 0)
    # Binomial(500, 0.2): mean 100, sd 8.9; 4 sigma -> [64, 136] (false alarm ~6e-5).
    assert abs(failed - n * p) <= 4 * math.sqrt(n * p * (1 - p)), failed
    assert set(result.errors) <= {500}
    samples = srv.samples()
    by_code = {
        dict(lbl)["code"]: v
        for (nm, lbl), v in samples.items()
        if nm == "goldengoose_requests_total"
    }
    assert by_code == {"200": result.ok, "500": failed}


def test_added_latency_shifts_the_median_by_that_much(start_server: StartServer) -> None:
    base = start_server("--base-latency-ms", "5", "--version", "1.0.0")
    slow = start_server("--base-latency-ms", "5", "--added-latency-ms", "50", "--version", "1.1.0")
    a, b = load_both(base, slow, rate=100, duration=1.5)
    assert a.ok == b.ok == 150
    shift_ms = (b.p50 - a.p50) * 1000
    assert 40 < shift_ms < 60, (a.p50, b.p50)  # +50 ms, 10 ms slack for sleep/scheduling noise
    # The server histogram's buckets resolve the same shift (as PromQL histogram_quantile).
    hist_shift_ms = (histogram_quantile(0.5, slow) - histogram_quantile(0.5, base)) * 1000
    assert 40 < hist_shift_ms < 60, hist_shift_ms


def test_variance_mode_keeps_the_median_and_widens_the_spread(start_server: StartServer) -> None:
    steady = start_server("--base-latency-ms", "50")
    wide = start_server("--base-latency-ms", "50", "--spread-ms", "40")
    # The steady server answers in 50 ms with a p10-p90 spread of ~1 ms when the machine is
    # idle; CPU contention (a busy suite) inflates its median and spread, and not the two
    # servers' alike. So up to six measurements, stopping at the first quiet one (the steady
    # spread under 10 ms), and the quietest one is judged, its measured contention added to
    # the median's bound.
    def spread_ms(result: LoadResult) -> float:
        return (result.percentile(90) - result.percentile(10)) * 1000

    tries = [load_both(steady, wide, rate=200, duration=2.0)]
    while len(tries) < 6 and spread_ms(tries[-1][0]) > 10:
        tries.append(load_both(steady, wide, rate=200, duration=2.0))
    a, b = min(tries, key=lambda pair: spread_ms(pair[0]))
    assert a.ok == b.ok == 400
    contention_ms = max(0.0, a.p50 - 0.050) * 1000
    # U(10, 90) ms median over 400 draws has sd 80/(2*sqrt(400)) = 2 ms: 10 ms is 5 sigma.
    assert abs(b.p50 - a.p50) * 1000 < 10 + contention_ms, (a.p50, b.p50, len(tries))
    steady_spread, wide_spread = spread_ms(a), spread_ms(b)
    # p10-p90 of U(10, 90) ms is 64 ms (sd of that estimate ~4 ms); the steady server's is
    # ~1 ms when the machine is idle and grows with CPU contention, which hits both alike.
    assert wide_spread > 50 and wide_spread - steady_spread > 40, (steady_spread, wide_spread)


def test_keep_alive_is_not_stalled_by_nagle(start_server: StartServer) -> None:
    srv = start_server()
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    took = []
    try:
        conn.request("GET", "/")
        conn.getresponse().read()
        sock = conn.sock
        for _ in range(30):
            began = time.perf_counter()
            conn.request("GET", "/")
            resp = conn.getresponse()
            resp.read()
            took.append(time.perf_counter() - began)
            assert resp.status == 200
        assert conn.sock is sock  # one connection reused throughout
    finally:
        conn.close()
    # A Nagle/delayed-ACK stall costs ~40 ms per response; unloaded the server answers in ~1 ms.
    assert statistics.median(took) < 0.010, took
    result = drive(srv.url, rate=100, duration=1.0)
    assert result.ok == 100 and result.p50 < 0.010, result.p50
