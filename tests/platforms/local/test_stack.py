"""The stack CLI and the LocalPlatform block: idempotent start/stop, pid files, status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from blocks.local import LocalPlatform
from canary.platforms.local import procs
from canary.ports import Builder, TrafficRouter, Workloads
from tests.platforms.local.conftest import HAPROXY, PROMETHEUS, ROOT


def cli(state: Path, block: LocalPlatform, *args: str) -> dict[str, Any]:
    argv = [
        sys.executable,
        "-m",
        "canary.platforms.local",
        "--state-dir",
        str(state),
        "--haproxy",
        HAPROXY,
        "--prometheus",
        PROMETHEUS,
        "--stats-port",
        str(block.haproxy_stats_port),
        "--prometheus-port",
        str(block.prometheus_port),
        *args,
    ]
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.slow
def test_block_start_and_cli_are_idempotent(tmp_path: Path) -> None:
    state = tmp_path / "st"
    app_port, stats_port, prometheus_port = procs.free_ports(3)
    block = LocalPlatform(
        state_dir=str(state),
        app_port=app_port,
        haproxy_stats_port=stats_port,
        prometheus_port=prometheus_port,
        haproxy_bin=HAPROXY,
        prometheus_bin=PROMETHEUS,
    )
    assert isinstance(block.builder(), Builder)
    assert isinstance(block.workloads(), Workloads)
    assert isinstance(block.router(), TrafficRouter)
    records: list[procs.ProcessRecord] = []
    try:
        assert block.start() == {"haproxy": "started", "prometheus": "started"}
        for name in ("haproxy", "prometheus"):
            doc = json.loads((state / "stack" / f"{name}.pid.json").read_text())
            records.append(procs.ProcessRecord.from_json(doc["process"]))
        assert cli(state, block, "start", "--app", f"goldengoose={block.app_port}") == {
            "haproxy": "running",
            "prometheus": "running",
        }
        status = cli(state, block, "status")
        assert status["haproxy"]["running"] and status["prometheus"]["running"]
        assert status["apps"]["goldengoose"]["frontend"] == block.app_port
        assert status["apps"]["goldengoose"]["weights"]["primary"] == 100
        assert block.router().read_weights("goldengoose").primary == 100
        assert cli(state, block, "stop") == {
            "haproxy": "stopped",
            "prometheus": "stopped",
            "workloads": {},
        }
        assert not any(procs.is_ours(r) for r in records)
        assert cli(state, block, "stop")["haproxy"] == "not running"
    finally:
        for rec in records:
            procs.stop(rec)


def test_a_stale_pid_file_is_never_signalled(tmp_path: Path) -> None:
    """A recorded pid that now belongs to someone else (here: this very test) is left alone."""
    me = procs.ProcessRecord(os.getpid(), 12345, (sys.executable,))  # wrong start time
    procs.write_json(tmp_path / "st" / "stack" / "haproxy.pid.json", {"process": me.to_json()})
    block = LocalPlatform(state_dir=str(tmp_path / "st"))
    out = block.stack().stop()
    assert out["haproxy"] == "not running" and out["prometheus"] == "not running"
    assert not procs.stop(me)  # and stop() itself refuses too


def test_block_validates_its_fields() -> None:
    with pytest.raises(ValidationError):
        LocalPlatform(app="bad name")
    with pytest.raises(ValidationError):
        LocalPlatform(app_port=70000)
    schema = LocalPlatform.model_json_schema()
    assert {"state_dir", "app", "app_port", "prometheus_port", "haproxy_bin"} <= set(
        schema["properties"]
    )
    assert LocalPlatform.get_block_type_slug() == "local-platform"


@pytest.mark.slow
def test_one_block_serves_several_apps_each_with_its_frontend(tmp_path: Path) -> None:
    """Many apps on one machine: each gets its HAProxy frontend and backends, and its
    router weights are its own."""
    state = tmp_path / "st"
    a_port, b_port, stats_port, prometheus_port = procs.free_ports(4)
    block = LocalPlatform(state_dir=str(state), app="app-a", app_port=a_port,
                          apps={"app-b": b_port}, haproxy_stats_port=stats_port,
                          prometheus_port=prometheus_port, haproxy_bin=HAPROXY,
                          prometheus_bin=PROMETHEUS)  # fmt: skip
    records: list[procs.ProcessRecord] = []
    try:
        block.start()
        for name in ("haproxy", "prometheus"):
            doc = json.loads((state / "stack" / f"{name}.pid.json").read_text())
            records.append(procs.ProcessRecord.from_json(doc["process"]))
        status = cli(state, block, "status")
        assert {a: s["frontend"] for a, s in status["apps"].items()} == {"app-a": a_port, "app-b": b_port}
        router = block.router()
        assert router.read_weights("app-a").primary == router.read_weights("app-b").primary == 100
    finally:
        block.stack().stop()
        for rec in records:
            procs.stop(rec)


def test_several_apps_are_validated() -> None:
    with pytest.raises(ValidationError, match="RFC 1123"):
        LocalPlatform(apps={"Bad_App": 18081})
    with pytest.raises(ValidationError, match="both use port 18080"):
        LocalPlatform(app_port=18080, apps={"other": 18080})
    with pytest.raises(ValidationError, match="must be 1-65535"):
        LocalPlatform(apps={"other": 0})


def test_prometheus_scrapes_the_relays_release_metrics_and_a_start_keeps_the_job(tmp_path: Path) -> None:
    """`make demo` starts the stack with --release-metrics; the block's own start (the
    bootstrap's) does not name it, and must not drop the job."""
    import shutil

    from canary.platforms.local import prometheus
    from canary.platforms.local.stack import LocalStack

    state = tmp_path / "st"
    LocalStack(state, release_metrics="127.0.0.1:8088").start(haproxy=False, prometheus=False)
    again = LocalStack(state)  # as the LocalPlatform block makes it
    again.start(haproxy=False, prometheus=False)
    assert again.release_metrics == "127.0.0.1:8088"
    assert LocalStack.from_state(state).release_metrics == "127.0.0.1:8088"
    text = prometheus.render_config(state / "targets", release_metrics=again.release_metrics)
    assert "  - job_name: canary-releases\n    static_configs:\n      - targets: ['127.0.0.1:8088']\n" in text
    assert "canary-releases" not in prometheus.render_config(state / "targets")
    promtool = shutil.which("promtool")
    if promtool is not None:
        (tmp_path / "prometheus.yml").write_text(text)
        done = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")],
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
