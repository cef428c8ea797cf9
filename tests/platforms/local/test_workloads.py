"""Process workloads without a router: start failures, readiness deadline, stubborn processes."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import pytest

from canary.errors import ConfigError, PlatformError
from canary.platforms.local import procs, workloads
from canary.platforms.local.builder import GitBuilder
from canary.platforms.local.workloads import MARKER, ProcessWorkloads
from canary.ports import Workloads
from tests.platforms.local.conftest import git, make_app_repo

# Serves /healthz but shrugs off SIGTERM: only the SIGKILL after the grace period stops it.
STUBBORN = (
    "import signal, sys, http.server as h; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "h.HTTPServer(('127.0.0.1', int(sys.argv[1])), h.SimpleHTTPRequestHandler).serve_forever()"
)


@pytest.fixture
def env(tmp_path: Path):
    repo = make_app_repo(tmp_path / "app")
    state = tmp_path / "st"
    builder = GitBuilder(state, app="goldengoose", python=sys.executable)
    wl = ProcessWorkloads(state, python=sys.executable, stop_timeout=0.5)
    assert isinstance(wl, Workloads)

    def image(spec: str | None) -> str:
        if spec is not None:
            (repo / "canary.yaml").write_text(spec)
            git(repo, "add", "-A")
            git(repo, "commit", "-qm", "spec")
        return builder.build(str(repo), "HEAD")

    try:
        yield wl, image
    finally:
        wl.stop_all("goldengoose")
        left = procs.find_marked({MARKER: str(state.resolve())})
        for rec in left:
            procs.stop(rec)
        assert not left


def test_a_process_that_exits_at_start_fails_with_its_log(env) -> None:
    wl, image = env
    wl.deploy(
        "goldengoose", "canary", image("command: [python, -c, 'raise SystemExit(\"boom\")']\n")
    )
    with pytest.raises(PlatformError, match=r"exited during start.*\n.*boom") as info:
        wl.wait_ready("goldengoose", "canary", 10)
    assert not info.value.transient


def test_readiness_has_a_deadline(env) -> None:
    wl, image = env
    wl.deploy("goldengoose", "canary", image("health: /not-there\n"))
    t0 = time.monotonic()
    with pytest.raises(
        PlatformError,
        match=r"not ready on http://127.0.0.1:\d+/not-there after 1s \(last: HTTP Error 404",
    ):
        wl.wait_ready("goldengoose", "canary", 1.0)
    assert time.monotonic() - t0 < 3
    wl.remove("goldengoose", "canary")
    assert wl.list("goldengoose") == []


def test_a_process_ignoring_sigterm_is_killed_after_the_grace(env) -> None:
    wl, image = env
    wl.deploy(
        "goldengoose",
        "canary",
        image(f"command: [python, -c, {STUBBORN!r}, '{{port}}']\nhealth: /\n"),
    )
    wl.wait_ready("goldengoose", "canary", 10)
    w = wl.get("goldengoose", "canary")
    assert w is not None and w.ready and w.alive()
    t0 = time.monotonic()
    wl.remove("goldengoose", "canary")
    assert not w.alive() and 0.4 < time.monotonic() - t0 < 5
    wl.remove("goldengoose", "canary")  # idempotent


def test_a_stolen_port_is_retried_on_another(env, monkeypatch: pytest.MonkeyPatch) -> None:
    wl, image = env
    img = image(None)
    thief = socket.socket()
    thief.bind(("127.0.0.1", 0))
    thief.listen()
    stolen = thief.getsockname()[1]
    picks, real = iter([stolen]), procs.free_port
    monkeypatch.setattr(workloads.procs, "free_port", lambda: next(picks, None) or real())
    try:
        wl.deploy("goldengoose", "canary", img)
        wl.wait_ready("goldengoose", "canary", 10)
    finally:
        thief.close()
    w = wl.get("goldengoose", "canary")
    assert w is not None and w.port != stolen and w.alive() and len(wl.list("goldengoose")) == 1


def test_deploy_is_idempotent_and_checks_its_input(env) -> None:
    wl, image = env
    img = image(None)
    wl.deploy("goldengoose", "baseline", img)
    pid = wl.get("goldengoose", "baseline").pid
    wl.deploy("goldengoose", "baseline", img)
    assert [w.pid for w in wl.list("goldengoose")] == [pid]
    with pytest.raises(ConfigError, match="promote for production"):
        wl.deploy("goldengoose", "primary", img)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not in the artifact store"):
        wl.deploy("goldengoose", "canary", "local/goldengoose@sha1:" + "0" * 40)
    with pytest.raises(PlatformError, match="no canary workload"):
        wl.wait_ready("goldengoose", "canary", 1)


def test_promote_without_a_router_replaces_production(env) -> None:
    wl, image = env
    v1 = image(None)
    wl.promote("goldengoose", v1)
    old = wl.get("goldengoose", "primary")
    v2 = image("ready_timeout: 9\n")
    wl.promote("goldengoose", v2)
    new = wl.get("goldengoose", "primary")
    assert new.image == v2 and new.pid != old.pid and not old.alive()
    assert [w.role for w in wl.list("goldengoose")] == ["primary"]
