"""The warm worker (flows/warm_worker.py) on the package's real Prefect server: a flow run is
forked from the pre-imported zygote (not a fresh interpreter), shows itself in /proc as
`python -m prefect.engine` with its flow run id, and Prefect's own handling still holds:
Cancelling kills it and runs `on_cancellation`, a kill -9 makes it Crashed and runs
`on_crashed`, an ordinary run completes with its logs."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect.settings import PREFECT_API_URL

from tests.support.polling import poll

REPO = Path(__file__).resolve().parents[2]
POOL = "warm-test"

FLOW = '''
import json, os, sys, time
from pathlib import Path
from prefect import flow, get_run_logger
from prefect.runtime import flow_run

OUT = Path({out!r})

def _hook(name):
    def hook(flow, flow_run, state):
        (OUT / f"{{flow_run.id}}.{{name}}").write_text(f"{{state.type.value}} pid={{os.getpid()}}")
    return hook

@flow(on_cancellation=[_hook("on_cancellation")], on_crashed=[_hook("on_crashed")])
def warm(mode: str) -> None:
    facts = {{"pid": os.getpid(), "ppid": os.getppid(), "cwd": os.getcwd(),
              "run_env": os.environ.get("PREFECT__FLOW_RUN_ID")}}
    (OUT / f"{{flow_run.id}}.started").write_text(json.dumps(facts))
    get_run_logger().info("warm flow says hello from %s", os.getpid())
    if mode == "wait":
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(0.2)
'''


def api(method: str, url: str, **kwargs: Any) -> Any:
    """One API call; a 503 (SQLite busy while other suites load the machine) is retried for
    up to 30 s, anything else raised."""
    def answered() -> httpx.Response | None:
        answer = httpx.request(method, url, timeout=10, **kwargs)
        return None if answer.status_code == 503 else answer

    answer: httpx.Response = poll(f"{method} {url} past 503s", answered, 30, every=0.5)
    answer.raise_for_status()
    return answer.json() if answer.content else None


def _cmdline(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return [p.decode() for p in raw.split(b"\0") if p]


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


class Harness:
    """The test pool's deployment, its worker process, and the API."""

    def __init__(self, api: str, out: Path, worker: subprocess.Popen[bytes], deployment: str):
        self.api, self.out, self.worker, self.deployment = api, out, worker, deployment

    def run(self, mode: str) -> str:
        """Create a run of the deployment; the worker picks it up. Its id."""
        return str(api("POST", f"{self.api}/deployments/{self.deployment}/create_flow_run",
                       json={"parameters": {"mode": mode}})["id"])  # fmt: skip

    def read(self, run_id: str) -> dict[str, Any]:
        """The flow run as the API has it."""
        return dict(api("GET", f"{self.api}/flow_runs/{run_id}"))

    def final(self, run_id: str, timeout: float = 90) -> dict[str, Any]:
        """The run once its state is final."""
        final = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
        return dict(poll(f"run {run_id} final", lambda: (
            r if (r := self.read(run_id))["state_type"] in final else None), timeout, every=0.5))

    def started(self, run_id: str) -> dict[str, Any]:
        """What the flow wrote about its process once it started."""
        path = self.out / f"{run_id}.started"
        poll(f"run {run_id} started", path.exists, 90, every=0.25)
        return dict(json.loads(path.read_text()))


@contextlib.contextmanager
def _worker(home: Path, pool: str, **env: str) -> Iterator[Harness]:
    """A deployment of the test flow in `pool` and a warm worker for it (`env` on top)."""
    from prefect import flow

    api_url = PREFECT_API_URL.value()
    out = home / "out"
    out.mkdir()
    (home / "warm_flow.py").write_text(textwrap.dedent(FLOW.format(out=str(out))))
    httpx.post(f"{api_url}/work_pools/", json={"name": pool, "type": "process"}, timeout=10)
    source = flow.from_source(source=str(home), entrypoint="warm_flow.py:warm")
    deployment = source.deploy(name=pool, work_pool_name=pool, print_next_steps=False,
                               job_variables={"command": f"{sys.executable} -m prefect.engine",
                                              "stream_output": False})  # fmt: skip
    env = {**os.environ, "PREFECT_API_URL": api_url, "PYTHONPATH": str(REPO),
           "PREFECT_WORKER_QUERY_SECONDS": "0.5", "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **env}
    log = (home / "worker.log").open("wb")
    worker = subprocess.Popen([sys.executable, "-m", "flows.warm_worker", "--pool", pool],
                              cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        yield Harness(api_url, out, worker, str(deployment))
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
        log.close()


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with _worker(tmp_path_factory.mktemp("warm"), POOL) as started:
        yield started


def test_a_run_is_forked_from_the_preimported_zygote(harness: Harness) -> None:
    run_id = harness.run("quick")
    facts = harness.started(run_id)
    run = harness.final(run_id)
    assert run["state_type"] == "COMPLETED", run["state_name"]
    assert run["infrastructure_pid"] is not None and str(facts["pid"]) in run["infrastructure_pid"]
    assert facts["run_env"] == run_id
    # its parent is the zygote (multiprocessing's forkserver, started by the worker), which
    # still runs: the run was forked, not a fresh interpreter started by the worker
    zygote = int(facts["ppid"])
    assert zygote != harness.worker.pid
    assert any("multiprocessing.forkserver" in a for a in _cmdline(zygote)), _cmdline(zygote)
    assert _ppid(zygote) == harness.worker.pid

    def said_hello() -> bool:
        logs = api("POST", f"{harness.api}/logs/filter",
                   json={"logs": {"flow_run_id": {"any_": [run_id]}}})  # fmt: skip
        return any("warm flow says hello" in line["message"] for line in logs)

    poll("the run's log line in the API", said_hello, 20, every=0.5)


def test_a_cancelled_run_is_killed_and_its_hook_runs(harness: Harness) -> None:
    run_id = harness.run("wait")
    pid = int(harness.started(run_id)["pid"])
    # the forked process shows itself as the engine, with its run's id (tests find it so)
    assert _cmdline(pid)[1:3] == ["-m", "prefect.engine"]
    assert f"PREFECT__FLOW_RUN_ID={run_id}".encode() in Path(f"/proc/{pid}/environ").read_bytes()
    api("POST", f"{harness.api}/flow_runs/{run_id}/set_state", json={
        "state": {"type": "CANCELLING", "message": "cancelled by the test"}})
    run = harness.final(run_id)
    assert run["state_type"] == "CANCELLED", run["state_name"]
    hook = harness.out / f"{run_id}.on_cancellation"
    poll("the on_cancellation hook", hook.exists, 30)
    poll("the cancelled process gone", lambda: not Path(f"/proc/{pid}").exists()
         or Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z", 30)


def test_a_run_killed_9_is_crashed_and_its_hook_runs(harness: Harness) -> None:
    run_id = harness.run("wait")
    pid = int(harness.started(run_id)["pid"])
    os.kill(pid, signal.SIGKILL)
    run = harness.final(run_id)
    assert run["state_type"] == "CRASHED", run["state_name"]
    hook = harness.out / f"{run_id}.on_crashed"
    poll("the on_crashed hook", hook.exists, 30)
    assert hook.read_text().startswith("CRASHED")


def test_the_zygote_dies_runs_go_on_and_a_new_one_starts(harness: Harness) -> None:
    """The zygote killed mid-run: the run's process lives on (its exit status is lost, so
    its own final state decides: here Cancelled), and the next run forks from a new zygote."""
    run_id = harness.run("wait")
    facts = harness.started(run_id)
    pid, zygote = int(facts["pid"]), int(facts["ppid"])
    os.kill(zygote, signal.SIGKILL)
    poll("the zygote gone", lambda: not Path(f"/proc/{zygote}").exists()
         or Path(f"/proc/{zygote}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z", 10)
    assert Path(f"/proc/{pid}").exists(), "the run died with its zygote"
    assert harness.read(run_id)["state_type"] == "RUNNING"
    api("POST", f"{harness.api}/flow_runs/{run_id}/set_state", json={
        "state": {"type": "CANCELLING", "message": "cancelled by the test"}})
    assert harness.final(run_id)["state_type"] == "CANCELLED"
    after = harness.run("quick")
    new = harness.started(after)
    assert harness.final(after)["state_type"] == "COMPLETED"
    assert int(new["ppid"]) != zygote and _ppid(int(new["ppid"])) == harness.worker.pid


def _polled_once(harness: Harness, pool: str) -> None:
    """Wait until the worker has made its first poll (the server stamps the queue it asked)."""
    def polled() -> bool:
        queue = api("GET", f"{harness.api}/work_pools/{pool}/queues/default")
        return queue.get("last_polled") is not None

    poll(f"the first poll of {pool}", polled, 60, every=0.5)


def test_a_worker_that_polls_hourly_is_woken_by_the_scheduled_event(
        tmp_path_factory: pytest.TempPathFactory) -> None:  # fmt: skip
    """With the poll at an hour (Prefect's loop polls once at start, then after the interval),
    runs created after the start can only be found by the wake (flows/wake.py): three at once,
    then one more, all complete well within the hour."""
    pool = "warm-wake"
    with _worker(tmp_path_factory.mktemp("wake"), pool, PREFECT_WORKER_QUERY_SECONDS="3600") as woken:
        _polled_once(woken, pool)
        burst = [woken.run("quick") for _ in range(3)]
        for run_id in burst:
            assert woken.final(run_id, timeout=120)["state_type"] == "COMPLETED"
        later = woken.run("quick")
        assert woken.final(later, timeout=120)["state_type"] == "COMPLETED"


def test_without_the_wake_an_hourly_poll_leaves_the_run_scheduled(
        tmp_path_factory: pytest.TempPathFactory) -> None:  # fmt: skip
    """The control for the test above: CANARY_WORKER_WAKE=0, the same hourly poll, and the run
    is still Scheduled after 20 s (what woke the runs above was the event, nothing else)."""
    pool = "warm-nowake"
    home = tmp_path_factory.mktemp("nowake")
    with _worker(home, pool, PREFECT_WORKER_QUERY_SECONDS="3600", CANARY_WORKER_WAKE="0") as plain:
        _polled_once(plain, pool)
        run_id = plain.run("quick")
        with pytest.raises(AssertionError):
            poll("the run leaving Scheduled", lambda: plain.read(run_id)["state_type"] != "SCHEDULED", 20)
        api("DELETE", f"{plain.api}/flow_runs/{run_id}")
