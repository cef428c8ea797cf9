"""Real goldengoose processes on 127.0.0.1: free port via port 0 + port file, readiness by
polling /healthz with a deadline, stopped by PID in the fixture finalizer."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
GG_DIR = ROOT / "examples" / "goldengoose"
SERVER_PY = GG_DIR / "server.py"
START_DEADLINE = 15.0


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test environment minus any GOLDENGOOSE_* knob a developer may have exported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOLDENGOOSE_")}
    env.pop("PYTHONPATH", None)
    env.update(extra or {})
    return env


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


@dataclass
class Running:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        return http_get(self.port, path)

    def samples(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """Every sample of /metrics keyed by (name, labels)."""
        status, _, body = self.get("/metrics")
        assert status == 200
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(body.decode())
            for s in family.samples
        }


def _wait_ready(proc: subprocess.Popen[bytes], port_file: Path, log: Path) -> int:
    deadline = time.monotonic() + START_DEADLINE
    port = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"goldengoose exited with {proc.returncode}:\n{log.read_text()}")
        if port is None and port_file.exists():
            port = int(port_file.read_text())
        if port is not None:
            try:
                if http_get(port, "/healthz", timeout=1.0)[0] == 200:
                    return port
            except OSError:
                pass
        time.sleep(0.02)
    pytest.fail(f"goldengoose not ready within {START_DEADLINE} s:\n{log.read_text()}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


StartServer = Callable[..., Running]


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """start_server(*flags, env={...}, script=None, cwd=None) -> Running.

    Without ``script`` the server runs as ``python -m examples.goldengoose`` from the repo
    root; with it, as ``python <script>`` from ``cwd`` (the artifact layout).
    """
    procs: list[subprocess.Popen[bytes]] = []

    def start(
        *flags: str,
        env: Mapping[str, str] | None = None,
        script: Path | None = None,
        cwd: Path | None = None,
    ) -> Running:
        n = len(procs)
        port_file, log = tmp_path / f"server{n}.port", tmp_path / f"server{n}.log"
        launcher: Sequence[str] = (
            ["-m", "examples.goldengoose"] if script is None else [str(script)]
        )
        cmd = [sys.executable, *launcher, "--port", "0", "--port-file", str(port_file), *flags]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                cmd, cwd=cwd or ROOT, env=clean_env(env), stdout=out, stderr=subprocess.STDOUT
            )
        procs.append(proc)
        return Running(proc, _wait_ready(proc, port_file, log), log)

    yield start
    for proc in procs:
        stop(proc)
