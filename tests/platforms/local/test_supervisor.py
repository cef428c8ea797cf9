"""The supervisor on a real stack of its own: SIGKILL a part, watch it come back healthy.

The stack here is this module's (own state dir, own ports), so killing its HAProxy or
Prometheus never disturbs the session stack other tests share. Each test starts from a
healthy stack and a fresh restart budget, and leaves the stack healthy. Every wait is a poll
with a deadline; the kill-to-healthy times are printed (pytest -s shows them).
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from canary.errors import PlatformError
from canary.platforms.local import procs, prometheus
from canary.platforms.local.__main__ import DEMO_STATE, default_state_dir
from canary.platforms.local.__main__ import main as cli_main
from canary.platforms.local.builder import GitBuilder
from canary.platforms.local.stack import LocalStack
from canary.platforms.local.supervisor import Part, Supervisor, _Probe, health_now, read_status
from canary.platforms.local.workloads import MARKER, ProcessWorkloads
from canary.values.weights import Weights
from demo import __main__ as demo_cli
from examples.goldengoose.load import drive
from tests.platforms.local.conftest import APP, HAPROXY, PROMETHEUS, ROOT, Commits
from tests.support.polling import poll as wait_for

ALL_PRIMARY = {"primary": 100, "baseline": 0, "canary": 0, "handoff": 0}
TIMES: dict[str, float] = {}  # part -> seconds from SIGKILL to healthy, printed at the end


@dataclass
class Own:
    state: Path
    stack: LocalStack
    workloads: ProcessWorkloads
    v1: str

    @property
    def url(self) -> str:
        return self.stack.frontend_url(APP) + "/"

    def supervisor(self, **kwargs: object) -> Supervisor:
        sup = Supervisor(self.stack, backoff=0.05, **kwargs)  # type: ignore[arg-type]
        sup.reset()
        return sup

    def marked(self) -> list[procs.ProcessRecord]:
        return procs.find_marked({MARKER: str(self.state.resolve())})


def poll(what: str, check: Callable[[], object], timeout: float = 20.0) -> object:
    return wait_for(what, check, timeout, every=0.02)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def series_count(url: str) -> int:
    """Samples of the haproxy job's `up` in the last 10 minutes (0 if no answer)."""
    try:
        found = prometheus.query(url, 'count_over_time(up{job="haproxy"}[10m])', timeout=2)
    except Exception:
        return 0
    return int(float(found[0]["value"][1])) if found else 0


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory, commits: Commits) -> Iterator[Own]:
    state = tmp_path_factory.mktemp("sup")
    v1 = GitBuilder(state, app=APP, python=sys.executable).build(commits.repo, commits.v1)
    stats_port, prometheus_port = procs.free_ports(2)
    stack = LocalStack(state, haproxy_bin=HAPROXY, prometheus_bin=PROMETHEUS,
                       haproxy_stats_port=stats_port, prometheus_port=prometheus_port,
                       scrape_interval=0.5)  # fmt: skip
    stack.add_app(APP)
    o = Own(state, stack, stack.workloads(), v1)
    try:
        stack.start()
        o.workloads.promote(APP, v1)
        stack.router().rollback(APP)
        poll("first scrape", lambda: series_count(stack.prometheus_url), timeout=30)
        yield o
    finally:
        stack.stop()
        for rec in o.marked():
            procs.stop(rec)
        print("kill-to-healthy:", {k: f"{v:.2f}s" for k, v in TIMES.items()})
    assert not o.marked(), "workload processes outlived the module"


@pytest.fixture
def healthy(own: Own) -> Iterator[Own]:
    """A healthy stack before and after each test (the repairs may have moved pids/ports)."""
    assert own.stack.running("haproxy") and own.stack.running("prometheus")
    prod = own.workloads.get(APP, "primary")
    assert prod is not None and prod.alive()
    yield own
    own.stack.start()  # whatever a test broke comes back (idempotent when healthy)
    report = own.supervisor().check_and_repair()
    assert {p.health for p in report.values()} == {"running"}, report
    assert own.stack.router().raw_weights(APP) == ALL_PRIMARY


def kill(rec: procs.ProcessRecord | None) -> float:
    """SIGKILL `rec` and wait until it has ended (a zombie for its parent to reap, or gone):
    the supervisor reads a dead child's exit status with a short wait, which a loaded
    machine could otherwise outlast while the kernel is still tearing the process down."""
    assert rec is not None and procs.is_ours(rec)
    os.kill(rec.pid, signal.SIGKILL)
    t0 = time.monotonic()
    wait_for(f"pid {rec.pid} ended", lambda: _ended(rec.pid), 10, every=0.01)
    return t0


def _ended(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def log_lines(o: Own, needle: str) -> list[str]:
    text = (o.stack.dir / "supervisor.log").read_text()
    return [ln for ln in text.splitlines() if needle in ln]


# -- SIGKILL each part --------------------------------------------------------------------
@pytest.mark.slow
def test_a_killed_prometheus_comes_back_on_its_port_and_data(healthy: Own) -> None:
    o, sup = healthy, healthy.supervisor()
    old = o.stack.running("prometheus")
    samples = series_count(o.stack.prometheus_url)
    t0 = kill(old)

    def back() -> bool:
        part = sup.check_and_repair()["prometheus"]
        return part.health == "running" and series_count(o.stack.prometheus_url) >= samples

    poll("Prometheus restarted and answering", back)
    TIMES["prometheus"] = time.monotonic() - t0
    new = o.stack.running("prometheus")
    assert new is not None and new.pid != old.pid
    assert new.argv == old.argv  # the same --web.listen-address and --storage.tsdb.path
    part = sup.parts["prometheus"]
    assert (part.restarts, part.action) == (1, "restarted") and str(old.pid) in part.last_reason
    (line,) = log_lines(o, f"prometheus: pid {old.pid}")
    assert "restarting it (restart 1 of at most 3" in line and line[:4].isdigit()  # timestamped
    assert log_lines(o, f"prometheus: restarted as pid {new.pid}")


@pytest.mark.slow
def test_a_killed_haproxy_comes_back_100_percent_primary_on_live_production(healthy: Own) -> None:
    o, sup, router = healthy, healthy.supervisor(), healthy.stack.router()
    prod = o.workloads.get(APP, "primary")
    # Mid-release: a 50/50 split saved to the server-state file (as a reload does), then the
    # canary dies; a restart that trusted the saved state would send half the traffic to it.
    o.workloads.deploy(APP, "canary", o.v1)
    o.workloads.wait_ready(APP, "canary", 15)
    router.set_weights(APP, Weights(50, 0, 50))
    router.save_state()
    kill(o.workloads.get(APP, "canary").process)  # type: ignore[union-attr]
    killed_at = datetime.now(UTC)
    t0 = kill(o.stack.running("haproxy"))

    def back() -> bool:
        return sup.check_and_repair()["haproxy"].health == "running" and answers(o.url)

    poll("HAProxy restarted and serving", back)
    TIMES["haproxy"] = time.monotonic() - t0
    assert router.raw_weights(APP) == ALL_PRIMARY  # read back from the new admin socket
    assert router.servers(APP)["primary"].port == prod.port  # type: ignore[union-attr]
    result = drive(o.url, rate=200, duration=0.5)
    assert result.ok == result.planned and result.tracks == {"primary": result.ok}
    assert sup.parts["haproxy"].restarts == 1 and log_lines(o, "haproxy: restarted as pid")
    assert (o.stack.dir / "haproxy.state.previous").exists()  # the stale split, set aside
    # what a running release reads at its next look (canary.ports.RestartLog)
    from blocks.local import LocalPlatform

    (seen,) = LocalPlatform(state_dir=str(o.state), app=APP).for_app(APP).restarts(killed_at)
    assert seen.part == "haproxy" and seen.result == f"restarted as pid {sup.parts['haproxy'].pid}"
    o.workloads.remove(APP, "canary")


@pytest.mark.slow
def test_a_killed_production_is_restarted_routed_and_recorded(healthy: Own) -> None:
    o, sup, router = healthy, healthy.supervisor(), healthy.stack.router()
    old = o.workloads.get(APP, "primary")
    assert old is not None
    t0 = kill(old.process)

    def back() -> bool:
        part = sup.check_and_repair()[f"production/{APP}"]
        now = o.workloads.get(APP, "primary")
        return (part.health == "running" and now is not None and now.pid != old.pid
                and router.servers(APP)["primary"].port == now.port and answers(o.url))  # fmt: skip

    poll("production restarted and routed", back)
    TIMES["production"] = time.monotonic() - t0
    (new,) = o.workloads.list(APP)
    assert (new.role, new.image, new.version, new.ready) == ("primary", old.image, "1.0.0", True)
    assert new.alive() and new.port != old.port
    targets = prometheus.read_targets(o.stack.targets_dir, APP)
    assert [t["targets"] for t in targets] == [[f"127.0.0.1:{new.port}"]]
    result = drive(o.url, rate=200, duration=0.5)
    assert result.ok == result.planned and result.versions == {"1.0.0": result.ok}
    part = sup.parts[f"production/{APP}"]
    assert part.restarts == 1 and "was killed by SIGKILL" in part.last_reason  # our child here
    assert log_lines(o, f"production/{APP}: restarted as pid {new.pid}")


@pytest.mark.slow
def test_production_mid_promotion_is_left_to_the_release(healthy: Own) -> None:
    o, sup = healthy, healthy.supervisor()
    old = o.workloads.get(APP, "primary")
    nxt = o.workloads._start(APP, "primary-next", o.v1)  # a promotion under way
    kill(old.process)  # type: ignore[union-attr]
    for _ in range(3):
        part = sup.check_and_repair()[f"production/{APP}"]
        assert (part.health, part.restarts) == ("promoting", 0), part
    assert "primary-next" in part.detail and "reconcile" in part.detail
    procs.stop(nxt.process)  # the promotion gave up; now production is the supervisor's again
    o.workloads._forget(APP, nxt.pid)
    poll("production restarted after the promotion ended",
         lambda: sup.check_and_repair()[f"production/{APP}"].action == "restarted")  # fmt: skip


# -- the budget -----------------------------------------------------------------------------
@pytest.mark.slow
def test_a_part_that_keeps_failing_ends_failed_not_in_a_loop(healthy: Own, tmp_path: Path) -> None:
    o = healthy
    broken = tmp_path / "prometheus"
    broken.write_text("#!/bin/sh\necho 'broken on purpose' >&2\nexit 3\n")
    broken.chmod(0o755)
    stack = LocalStack.from_state(o.state, prometheus_bin=str(broken))
    assert stack.prometheus_port == o.stack.prometheus_port  # the rest as last started
    sup = Supervisor(stack, backoff=0.05, max_restarts=3)
    sup.reset()
    kill(o.stack.running("prometheus"))
    poll("prometheus failed", lambda: sup.check_and_repair()["prometheus"].health == "failed")
    part = sup.parts["prometheus"]
    assert part.restarts == 3 and "exited with 3" in part.last_error and "limit" in part.detail
    deadline = time.monotonic() + 1.0  # well past every backoff: still no fourth attempt
    while time.monotonic() < deadline:
        part = sup.check_and_repair()["prometheus"]
        assert (part.health, part.action, part.restarts) == ("failed", "left-alone", 3)
    assert len(log_lines(o, "prometheus: restart failed")) == 3
    assert len(log_lines(o, "prometheus: FAILED, giving up")) == 1
    # An operator fixes it: the supervisor notices, and the budget starts over.
    o.stack.start()
    assert sup.check_and_repair()["prometheus"].health == "running"
    assert sup.parts["prometheus"].attempts == [] and log_lines(o, "prometheus: healthy again")


def test_budget_and_backoff_without_processes(tmp_path: Path) -> None:
    """3 restarts per window, the n-th retry after backoff*2**(n-1); then failed, left alone."""
    now = [1000.0]
    sup = Supervisor(LocalStack(tmp_path / "st"), max_restarts=3, window=300, backoff=1.0,
                     clock=lambda: now[0])  # fmt: skip
    part, tries = Part("x"), []

    def restart() -> int:
        tries.append(now[0])
        raise PlatformError("no luck")

    def step(at: float) -> str:
        now[0] = at
        sup._step(part, lambda _: _Probe("dead", 1, "pid 1 is gone"), restart)
        return part.health

    assert step(1000.0) == "restarting" and tries == [1000.0]
    assert step(1000.5) == "restarting" and part.action == "waiting"  # 1 s backoff
    assert step(1001.0) == "restarting" and tries == [1000.0, 1001.0]
    assert step(1002.9) == "restarting" and len(tries) == 2  # 2 s backoff
    assert step(1003.0) == "failed" and len(tries) == 3
    assert step(1400.0) == "failed" and part.action == "left-alone" and len(tries) == 3
    assert health_now(True, part.to_json()) == "running"
    assert health_now(False, part.to_json()) == "failed"
    assert health_now(False, None) == "dead" and health_now(None, None) == "not running"


def test_every_restart_is_recorded_for_the_release_that_runs(tmp_path: Path) -> None:
    """stack/restarts.jsonl: one line per restart, worked or not; LocalApp.restarts (the
    RestartLog a release reads at each look) gives the router's, Prometheus' and the app's
    production's since a moment, oldest first, and never another app's."""
    from blocks.local import LocalPlatform
    from canary.ports import RestartLog

    now = [1000.0]
    stack = LocalStack(tmp_path / "st")
    sup = Supervisor(stack, backoff=0.0, clock=lambda: now[0])
    pids = iter([4712])

    def restart() -> int:
        pid = next(pids, None)
        if pid is None:
            raise PlatformError("port taken")
        return pid

    for at, name in ((1000.0, "haproxy"), (1001.0, f"production/{APP}"), (1002.0, "production/other")):
        now[0] = at
        sup._step(Part(name), lambda _: _Probe("dead", 4711, "pid 4711 was killed by SIGKILL"), restart)
    app = LocalPlatform(state_dir=str(tmp_path / "st"), app=APP).for_app(APP)
    assert isinstance(app, RestartLog)
    found = app.restarts(datetime.fromtimestamp(1000.5, UTC))
    assert [(r.part, r.at.timestamp(), r.why, r.result) for r in found] == [
        (f"production/{APP}", 1001.0, "pid 4711 was killed by SIGKILL", "restart failed: port taken")]
    (first, _) = app.restarts(datetime.fromtimestamp(0, UTC))
    assert (first.part, first.result) == ("haproxy", "restarted as pid 4712")
    assert first.words() == "haproxy restarted (pid 4711 was killed by SIGKILL; restarted as pid 4712)"
    (stack.dir / "restarts.jsonl").open("a").write('{"part": "haproxy", "at": 10')  # cut by a crash
    assert len(app.restarts(datetime.fromtimestamp(0, UTC))) == 2
    assert LocalPlatform(state_dir=str(tmp_path / "none"), app=APP).for_app(APP).restarts(
        datetime.fromtimestamp(0, UTC)) == []  # no supervisor ever ran there


# -- the long-running mode and the CLI -----------------------------------------------------
@pytest.mark.slow
def test_supervise_runs_as_a_process_restarts_and_stops_on_sigterm(
    healthy: Own, tmp_path: Path
) -> None:
    o = healthy
    Supervisor(o.stack).reset()
    cli = [sys.executable, "-m", "canary.platforms.local", "--state-dir", str(o.state)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([*cli, "supervise", "--interval", "0.5", "--backoff", "0.1"],
                            cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        poll("supervisor checking",
             lambda: (d := read_status(o.state)).get("running") and d.get("pid") == proc.pid
             and d.get("checked", 0) >= d.get("started", 1e99))  # fmt: skip
        assert o.stack.status()["supervisor"] == {"running": True, "pid": proc.pid}
        second = subprocess.run([*cli, "supervise", "--once"], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
        assert second.returncode == 1 and f"already supervised by pid {proc.pid}" in second.stderr
        old = o.workloads.get(APP, "primary")
        t0 = kill(old.process)  # type: ignore[union-attr]
        poll("production back through the supervising process", lambda: (
            (w := o.workloads.get(APP, "primary")) is not None and w.pid != old.pid  # type: ignore[union-attr]
            and w.ready and answers(o.url)))  # fmt: skip
        TIMES["production via supervise --interval 0.5"] = time.monotonic() - t0
        poll("the restart in supervisor.json", lambda: read_status(o.state)["parts"][
            f"production/{APP}"]["restarts"] == 1)  # fmt: skip
        assert_demo_status_shows_health(o, tmp_path, proc.pid)
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        stderr = proc.stderr.read()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    assert f"supervisor pid {proc.pid} stopped" in stderr, stderr
    doc = read_status(o.state)
    assert doc["running"] is False and doc["stopped"] >= doc["started"]
    assert not (o.stack.dir / "supervisor.pid.json").exists()


def assert_demo_status_shows_health(o: Own, tmp_path: Path, sup_pid: int) -> None:
    """`python -m demo status` of a demo home whose local stack is this module's."""
    home = tmp_path / "demo"
    home.mkdir()
    (home / "local").symlink_to(o.state)
    rec = procs.read_json(o.stack.dir / "supervisor.pid.json")["process"]
    procs.write_json(home / "chain.json", {"supervisor": rec})  # as the chain records it
    out = io.StringIO()
    assert demo_cli.status(demo_cli.parse_args(["status", "--home", str(home)]), out) == 0
    lines = {ln.split()[0] + (" " + ln.split()[1] if ln.split()[0] == APP else ""): ln
             for ln in out.getvalue().splitlines()[1:]}  # fmt: skip
    assert f"running (pid {sup_pid})" in lines["supervisor"]
    assert "checks every 0.5 s" in lines["supervisor"]
    for name in ("haproxy", "prometheus"):
        pid = o.stack.running(name).pid  # type: ignore[union-attr]
        assert f"running (pid {pid})" in lines[name] and "restarts 0" in lines[name], lines
    prod = o.workloads.get(APP, "primary")
    line = lines[f"{APP} primary"]
    assert f"running (pid {prod.pid})" in line and "restarts 1, last " in line, line  # type: ignore[union-attr]
    assert "is gone" in line, line


def test_the_state_dir_defaults_to_the_demos_and_a_missing_one_says_what_to_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = tmp_path / "checkout"
    assert default_state_dir(tmp_path, elsewhere) == Path(".state/local")
    (elsewhere / DEMO_STATE).mkdir(parents=True)
    assert default_state_dir(tmp_path, elsewhere) == elsewhere / DEMO_STATE
    (tmp_path / DEMO_STATE).mkdir(parents=True)
    assert default_state_dir(tmp_path, elsewhere) == tmp_path / DEMO_STATE
    assert cli_main(["--state-dir", str(tmp_path / "nope"), "status"]) == 1
    err = capsys.readouterr().err
    assert "does not exist" in err and "--state-dir" in err and str(DEMO_STATE) in err
