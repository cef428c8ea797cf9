"""Prometheus really scrapes the local workloads, labelled by track and version (file_sd)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from canary.platforms.local import prometheus
from examples.goldengoose.load import drive
from tests.platforms.local.conftest import APP, Platform


def poll(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def up_by_track(url: str) -> dict[str, tuple[str, str]]:
    series = prometheus.query(url, f'up{{job="apps", app="{APP}"}} == 1')
    return {s["metric"]["track"]: (s["metric"]["version"], s["metric"]["instance"]) for s in series}


@pytest.mark.slow
def test_prometheus_scrapes_workloads_with_track_and_version(platform: Platform) -> None:
    p = platform
    p.workloads.deploy(APP, "baseline", p.images.v1)
    p.workloads.deploy(APP, "canary", p.images.v2)
    p.workloads.wait_ready(APP, "baseline", 15)
    p.workloads.wait_ready(APP, "canary", 15)
    targets = prometheus.read_targets(p.stack.targets_dir, APP)
    assert sorted(t["labels"]["track"] for t in targets) == ["baseline", "canary", "primary"]

    t0 = time.monotonic()
    up = poll(
        lambda: (u := up_by_track(p.stack.prometheus_url)) and len(u) == 3 and u,
        timeout=30,
        what="three scraped goldengoose targets",
    )
    print(f"all three targets up in Prometheus after {time.monotonic() - t0:.1f}s")
    ports = {w.track: w.port for w in p.workloads.list(APP)}
    assert up == {
        "primary": ("1.0.0", f"127.0.0.1:{ports['primary']}"),
        "baseline": ("1.0.0", f"127.0.0.1:{ports['baseline']}"),
        "canary": ("2.0.0", f"127.0.0.1:{ports['canary']}"),
    }

    # The app's own series carry the same labels (honor_labels: no exported_track twins).
    drive(p.url, rate=100, duration=0.5)
    q = f'goldengoose_requests_total{{app="{APP}", code="200"}}'
    series = poll(
        lambda: [
            s for s in prometheus.query(p.stack.prometheus_url, q) if float(s["value"][1]) > 0
        ],
        timeout=15,
        what="request counters",
    )
    assert {(s["metric"]["track"], s["metric"]["version"]) for s in series} <= {
        ("primary", "1.0.0"),
        ("baseline", "1.0.0"),
        ("canary", "2.0.0"),
    }
    assert not any("exported_track" in s["metric"] for s in series)
    haproxy = prometheus.query(p.stack.prometheus_url, 'up{job="haproxy"}')
    assert haproxy and haproxy[0]["value"][1] == "1"

    # Workloads going away leave the targets file, and Prometheus' active targets, at once.
    p.workloads.remove(APP, "canary")
    assert [t["labels"]["track"] for t in prometheus.read_targets(p.stack.targets_dir, APP)] == [
        "primary",
        "baseline",
    ]

    def canary_target_gone() -> bool:
        active = prometheus.query(p.stack.prometheus_url, f'up{{app="{APP}", track="canary"}}')
        return not active or all(s["value"][1] == "0" for s in active)

    poll(canary_target_gone, timeout=15, what="the canary target to go")
