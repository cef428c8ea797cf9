"""Session fixtures for the real-Prometheus tests: two goldengoose apps under load, scraped.

Timeline (about 20 s, paid once): start a baseline (1.0.0) and a canary (1.1.0) goldengoose,
start Prometheus scraping both every second, wait until both targets are up, then drive
30 rps x 12 s at each app in a background thread. Tests that only need Prometheus run while
the load is still going; tests that need the traffic call ``stack.wait_for_load()``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import pytest

from tests.support.prometheus import DEFAULT_BINARY, PrometheusServer

REPO = Path(__file__).resolve().parents[2]
LOAD_RATE = 30.0
LOAD_SECONDS = 12.0
RULES = """\
groups:
  - name: goldengoose
    interval: 1s
    rules:
      - record: goldengoose:requests:rate5s
        expr: sum by (code, version, track) (rate(goldengoose_requests_total[5s]))
"""


@dataclass
class App:
    track: str
    version: str
    process: subprocess.Popen[bytes]
    port: int
    log: IO[bytes]

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()


def start_app(track: str, version: str, workdir: Path) -> App:
    port_file = workdir / f"{track}.port"
    faults = workdir / "no-faults.json"
    faults.write_text("{}")
    log = open(workdir / f"{track}.log", "wb")  # noqa: SIM115 (closed by App.stop)
    process = subprocess.Popen(
        [sys.executable, "-m", "examples.goldengoose", "--port", "0", "--port-file", str(port_file),
         "--track", track, "--version", version, "--base-latency-ms", "5", "--jitter-ms", "4",
         "--seed", "7", "--faults-file", str(faults)],
        cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
    )  # fmt: skip
    deadline = time.monotonic() + 15
    while not (port_file.exists() and port_file.read_text().strip()):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait(timeout=10)
            log.close()
            text = (workdir / f"{track}.log").read_text(errors="replace")[-500:]
            raise RuntimeError(f"goldengoose {track} did not start: {text}")
        time.sleep(0.05)
    return App(track, version, process, int(port_file.read_text().strip()), log)


@dataclass
class Stack:
    prometheus: PrometheusServer
    baseline: App
    canary: App
    load_start: datetime | None = None
    load_end: datetime | None = None
    load_results: list[object] = field(default_factory=list)
    load_errors: list[BaseException] = field(default_factory=list)
    _thread: threading.Thread | None = None

    def start_load(self) -> None:
        from examples.goldengoose.load import drive

        def one(app: App) -> None:
            try:
                url = f"http://{app.target}/"
                self.load_results.append(drive(url, rate=LOAD_RATE, duration=LOAD_SECONDS,
                                               deadline=LOAD_SECONDS + 5))  # fmt: skip
            except BaseException as exc:  # reported by wait_for_load
                self.load_errors.append(exc)

        def both() -> None:
            workers = [
                threading.Thread(target=one, args=(app,)) for app in (self.baseline, self.canary)
            ]
            self.load_start = datetime.now(UTC)
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            self.load_end = datetime.now(UTC)

        self._thread = threading.Thread(target=both, name="goldengoose-load", daemon=True)
        self._thread.start()

    def wait_for_load(self) -> tuple[datetime, datetime]:
        """Block until the load is over and Prometheus has scraped past its end."""
        assert self._thread is not None
        self._thread.join(timeout=LOAD_SECONDS + 30)
        if self.load_errors:
            raise self.load_errors[0]
        for result in self.load_results:
            assert result.ok >= 0.9 * result.planned, f"load fell short: {result}"  # type: ignore[attr-defined]
        assert self.load_start and self.load_end, "load did not finish"
        end = self.load_end.timestamp()
        self.prometheus.wait_for(
            "timestamp(goldengoose:requests:rate5s)",  # value = time of the latest sample
            lambda r: len(r) >= 4 and min(float(x["value"][1]) for x in r) > end + 1,
            timeout=15,
        )
        return self.load_start, self.load_end


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    if not os.access(DEFAULT_BINARY, os.X_OK):
        pytest.skip(
            f"Prometheus binary {DEFAULT_BINARY} is missing; run `make setup` to install it"
        )
    workdir = Path(tempfile.mkdtemp(prefix="metrics-stack-"))
    apps: list[App] = []
    prometheus = None
    try:
        apps.append(start_app("baseline", "1.0.0", workdir))
        apps.append(start_app("canary", "1.1.0", workdir))
        prometheus = PrometheusServer(
            targets={"goldengoose": [a.target for a in apps]}, rules=RULES, scrape_interval="1s"
        ).start()
        prometheus.wait_for('up{job="goldengoose"} == 1', lambda r: len(r) == 2, timeout=20)
        stack = Stack(prometheus, apps[0], apps[1])
        stack.start_load()
        yield stack
        if stack._thread is not None:
            stack._thread.join(timeout=LOAD_SECONDS + 30)
    finally:
        if prometheus is not None:
            prometheus.cleanup()
        for app in apps:
            app.stop()
        shutil.rmtree(workdir, ignore_errors=True)
