"""The server as a real process: endpoints, labels, metrics exposition, artifact layout."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from examples.goldengoose.load import drive

from .conftest import SERVER_PY, StartServer, clean_env


def test_healthz_answers_ok_with_identity_headers(start_server: StartServer) -> None:
    srv = start_server("--track", "canary", "--version", "9.9.9")
    status, headers, body = srv.get("/healthz")
    assert (status, body) == (200, b"ok\n")
    assert headers["X-Goldengoose-Track"] == "canary"
    assert headers["X-Goldengoose-Version"] == "9.9.9"


def test_root_answers_version_and_track(start_server: StartServer) -> None:
    srv = start_server(env={"GOLDENGOOSE_TRACK": "baseline", "GOLDENGOOSE_VERSION": "1.4.0"})
    status, headers, body = srv.get("/")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"app": "goldengoose", "version": "1.4.0", "track": "baseline"}
    assert headers["X-Goldengoose-Track"] == "baseline"
    assert srv.get("/nope")[0] == 404


def test_metrics_after_load_carry_version_and_track(start_server: StartServer) -> None:
    srv = start_server("--track", "baseline", "--version", "1.2.3")
    # Requests that must not be counted: /healthz (already polled), /metrics, a 404.
    srv.get("/metrics")
    srv.get("/missing")
    result = drive(srv.url, rate=60, duration=0.5)
    assert result.ok == 30
    assert result.tracks == {"baseline": 30} and result.versions == {"1.2.3": 30}

    status, headers, _ = srv.get("/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    samples = srv.samples()
    labels = {("version", "1.2.3"), ("track", "baseline")}

    def value(name: str, **extra: str) -> float:
        return samples[(name, frozenset(labels | set(extra.items())))]

    assert value("goldengoose_requests_total", code="200") == 30
    assert value("goldengoose_requests_total", code="500") == 0  # present before any error
    assert value("goldengoose_request_duration_seconds_count") == 30
    assert 0 < value("goldengoose_request_duration_seconds_sum") < 30 * 0.05
    assert value("goldengoose_build_info") == 1
    for le in ("0.001", "0.00109", "0.005604", "0.04833", "0.4167", "4.654", "+Inf"):
        assert (
            "goldengoose_request_duration_seconds_bucket",
            frozenset(labels | {("le", le)}),
        ) in samples
    assert value("goldengoose_request_duration_seconds_bucket", le="+Inf") == 30
    # Its own registry: no process/python collectors, no *_created series.
    names = {name for name, _ in samples}
    assert all(n.startswith("goldengoose_") for n in names), names
    assert not any(n.endswith("_created") for n in names)


def test_artifact_copy_runs_alone_with_version_file_and_faults(
    start_server: StartServer, tmp_path: Path
) -> None:
    """A checkout of the directory alone: VERSION sets the version, faults.json a fault."""
    app = tmp_path / "artifact"
    app.mkdir()
    shutil.copy(SERVER_PY, app / "server.py")
    (app / "VERSION").write_text("2.0.0\n")
    (app / "faults.json").write_text(json.dumps({"error_ratio": 1.0}))

    srv = start_server(script=Path("server.py"), cwd=app)
    status, headers, body = srv.get("/")
    assert status == 500
    assert headers["X-Goldengoose-Version"] == "2.0.0"
    assert json.loads(body)["version"] == "2.0.0"

    # Precedence: flag > environment > faults.json / VERSION.
    srv2 = start_server(
        "--version", "2.0.2", script=Path("server.py"), cwd=app,
        env={"GOLDENGOOSE_VERSION": "2.0.1", "GOLDENGOOSE_ERROR_RATIO": "0"},
    )  # fmt: skip
    status, headers, _ = srv2.get("/")
    assert (status, headers["X-Goldengoose-Version"]) == (200, "2.0.2")


def test_sigterm_stops_the_server_cleanly(start_server: StartServer) -> None:
    srv = start_server()
    os.kill(srv.proc.pid, signal.SIGTERM)
    assert srv.proc.wait(timeout=5) == 0
    assert "listening on 127.0.0.1 port" in srv.log.read_text()


def test_port_in_use_fails_with_a_message(start_server: StartServer) -> None:
    srv = start_server()
    done = subprocess.run(
        [sys.executable, str(SERVER_PY), "--port", str(srv.port)],
        env=clean_env(), capture_output=True, text=True, timeout=10,
    )  # fmt: skip
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{srv.port}" in done.stderr
