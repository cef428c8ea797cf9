"""`make demo` as a newcomer runs it, whole: v2 promoted and v3 rolled back, then stopped.

The README promises it; the pieces are unit-tested in test_demo.py, and this runs the real
thing (`python -m demo`, what `make demo DB=postgres` calls) on free ports in a home of its
own, on the PostgreSQL backend (the embedded SQLite one is what every other demo piece and
CANARY_TEST_DB=sqlite cover). A demo that misreads an outcome, a broken step or a chain
that does not come up fails here instead of in a newcomer's first five minutes.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys

import pytest

from canary.platforms.local import procs
from demo.chain import ROOT
from tests.support.live_chain import require_binaries

pytestmark = pytest.mark.live


def _answers(port: int) -> bool:
    """Something accepts connections on the port. Not procs.port_in_use: a stopped server's
    closed connections keep the port unbindable (TIME_WAIT) for a minute."""
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_the_demo_promotes_v2_rolls_back_v3_and_stops_clean(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    require_binaries()
    ports = procs.free_ports(6)
    flags = dict(zip(["--prefect-port", "--relay-port", "--app-port", "--stats-port",
                      "--prometheus-port", "--db-port"], ports, strict=True))  # fmt: skip
    # a short home: HAProxy's admin socket lives under it (a unix socket path has at most
    # 107 bytes), and an xdist worker's temporary directory is already deeper
    args = ["--home", str(tmp_path_factory.mktemp("demo")), "--db", "postgres", "--load-duration", "400",
            "--release-timeout", "300", *(f"{k}={v}" for k, v in flags.items())]  # fmt: skip
    demo = [sys.executable, "-m", "demo"]
    try:
        done = subprocess.run([*demo, "run", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=900, check=False)  # fmt: skip
    finally:
        stopped = subprocess.run([*demo, "stop", *args], cwd=ROOT, capture_output=True,
                                 text=True, timeout=180, check=False)  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-6000:]
    assert "OK: v2 (good) was promoted and v3 (latency regression) rolled back" in out
    # the summary table: release, commit, version, outcome, expected, ...
    rows = {cells[0]: cells for cells in (re.split(r" {2,}", line) for line in out.splitlines()
                                          if line.startswith(("v2 ", "v3 ")))}  # fmt: skip
    assert rows["v2"][3:5] == ["promoted", "promoted"], rows
    assert rows["v3"][3:5] == ["rolled back", "rolled back"], rows
    assert "PostgreSQL: 127.0.0.1:" in out  # the server really ran on the demo's own cluster
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    alive = [p for p in ports if _answers(p)]
    assert not alive, f"still answering after `demo stop`: ports {alive}"
