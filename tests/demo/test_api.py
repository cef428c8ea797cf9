"""store.reader: the demo's and the benches' one reader of runs and events goes through the
store's Prefect client and turns its answers into typed records, and our events into their
models (no server: the real client over httpx's mock transport)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import httpx
import pytest
from prefect.client.orchestration import SyncPrefectClient

import store.reader
from canary.values.events import BuildSucceeded, ReleaseEnded
from canary.values.outcome import Outcome
from store.client import ApiUnreachable
from store.reader import ApiError, PrefectAdmin, PrefectReader
from store.records import Artifact, FlowRun, LogLine, RunState, TaskRun

RUN_ID, FLOW_ID, DEP_ID = ("00000000-0000-0000-0000-00000000000" + c for c in "123")
URL = "http://prefect.invalid/api"

RUN = {
    "id": RUN_ID, "flow_id": FLOW_ID, "name": "r1", "state_type": "FAILED",
    "state_name": "RolledBack",
    "state": {"type": "FAILED", "name": "RolledBack", "message": "latency",
              "timestamp": "2026-01-01T00:00:20Z"},
    "parameters": {"commit": "abc"}, "deployment_id": DEP_ID, "created": "2026-01-01T00:00:00Z",
    "start_time": "2026-01-01T00:00:10+00:00", "end_time": None,
}  # fmt: skip

Seen = list[tuple[str, str, object]]
Answer = object | Callable[[httpx.Request], object]


def _event(name: str, payload: dict[str, object], app: str = "gg") -> dict[str, object]:
    return {"id": RUN_ID, "event": name, "resource": {"prefect.resource.id": f"canary.app.{app}"},
            "payload": payload, "occurred": "2026-01-01T00:01:00Z",
            "received": "2026-01-01T00:01:01Z"}  # fmt: skip


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, object]], Seen]:
    """Answer the store's client from a table of (``METHOD /path``) -> JSON; record what it asked."""

    def install(answers: dict[str, object]) -> Seen:
        seen: Seen = []

        def handle(request: httpx.Request) -> httpx.Response:
            path = request.url.path.removeprefix("/api")
            body = json.loads(request.content) if request.content else None
            seen.append((request.method, path, body))
            found = answers.get(f"{request.method} {path}")
            if found is None:
                return httpx.Response(404 if path == "/csrf-token" else 500, json={"detail": "x"})
            return httpx.Response(200, json=found)

        @contextmanager
        def client(api_url: str | None = None) -> Iterator[SyncPrefectClient]:
            assert api_url == URL
            mock = httpx.MockTransport(handle)
            with SyncPrefectClient(URL, httpx_settings={"transport": mock}) as prefect:
                yield prefect

        monkeypatch.setattr(store.reader, "client", client)
        return seen

    return install


def test_a_flow_run_is_a_typed_record_with_its_outcome(serve: Callable[..., Seen]) -> None:
    seen = serve({"POST /flow_runs/filter": [RUN]})
    (run,) = PrefectReader(URL).runs(["canary-release"])
    assert run == FlowRun(RUN_ID, "FAILED", "RolledBack", "latency", "abc", DEP_ID,
                          1767225600.0, None, 1767225610.0, None)  # fmt: skip
    assert run.final and run.failed and run.outcome is Outcome.ROLLED_BACK
    body = next(b for m, p, b in seen if p == "/flow_runs/filter")
    assert isinstance(body, dict) and body["deployments"]["name"]["any_"] == ["canary-release"]
    assert (body["sort"], body["limit"]) == ("EXPECTED_START_TIME_DESC", 100)


def test_states_task_runs_logs_and_artifacts(serve: Callable[..., Seen]) -> None:
    state = {"type": "RUNNING", "name": "Running", "timestamp": "2026-01-01T00:00:10.5Z"}
    task = {"id": DEP_ID, "name": "observe-1", "task_key": "k", "dynamic_key": "0",
            "state_type": "COMPLETED", "start_time": "2026-01-01T00:00:10Z"}  # fmt: skip
    log = {"name": "n", "level": 20, "message": "hello", "timestamp": "2026-01-01T00:00:11Z",
           "flow_run_id": RUN_ID}  # fmt: skip
    artifact = {"key": "canary-interval", "description": "look 1 of 3"}
    serve({"GET /flow_run_states/": [{**state, "timestamp": "2026-01-01T00:00:20Z",
                                       "type": "COMPLETED", "name": "Completed"}, state],
           "POST /task_runs/filter": [task], "POST /logs/filter": [log],
           "POST /artifacts/filter": [artifact]})  # fmt: skip
    reader = PrefectReader(URL)
    assert reader.run_states(RUN_ID) == [
        RunState("RUNNING", "Running", "2026-01-01T00:00:10.500000Z"),
        RunState("COMPLETED", "Completed", "2026-01-01T00:00:20Z")]
    assert reader.task_runs(RUN_ID) == [TaskRun(DEP_ID, "observe-1", "COMPLETED", 1767225610.0)]
    assert reader.logs(RUN_ID) == [LogLine("2026-01-01T00:00:11Z", "hello")]
    assert reader.latest_artifact(RUN_ID, "canary-interval") == Artifact(
        "canary-interval", "look 1 of 3")


def test_release_end_is_the_typed_event_of_the_commit(serve: Callable[..., Seen]) -> None:
    events = [
        _event("canary.release.command", {"action": "abort", "run": "r1"}),
        _event(Outcome.PROMOTED.event, {"commit": "other", "score": 100}),
        _event(Outcome.ROLLED_BACK.event, {"commit": "abc", "score": 0, "reason": "slower"}),
    ]
    seen = serve({"POST /events/filter": {"events": events, "total": 3, "next_page": None}})
    found = PrefectReader(URL).release_end("gg", "abc")
    assert found is not None and isinstance(found.model, ReleaseEnded)
    assert (found.model.outcome, found.model.reason, found.occurred, found.received) == (
        Outcome.ROLLED_BACK, "slower", 1767225660.0, 1767225661.0)
    body = next(b for m, p, b in seen if p == "/events/filter")
    assert isinstance(body, dict)
    assert set(body["filter"]["event"]["name"]) == {o.event for o in Outcome}
    assert body["filter"]["any_resource"]["id"] == ["canary.app.gg"]


def test_build_succeeded_and_a_missing_event(serve: Callable[..., Seen]) -> None:
    built = _event(BuildSucceeded.name, {"commit": "abc", "image": "i", "repo": "r"})
    serve({"POST /events/filter": {"events": [built], "total": 1, "next_page": None}})
    reader = PrefectReader(URL)
    found = reader.build_succeeded("gg", "abc")
    assert found is not None and found.model.image == "i"
    assert reader.release_end("gg", "abc") is None


def test_the_admin_writes_through_the_client(serve: Callable[..., Seen]) -> None:
    deployments = [
        {"id": DEP_ID, "name": "build", "flow_id": FLOW_ID, "job_variables": {"a": 1}},
        {"id": RUN_ID, "name": "canary-reanalysis", "flow_id": FLOW_ID, "paused": False,
         "schedules": [{"id": FLOW_ID, "deployment_id": RUN_ID, "active": True,
                        "schedule": {"cron": "0 * * * *"}}]},
    ]  # fmt: skip
    automation = {"id": FLOW_ID, "name": "on-build", "trigger": {"posture": "Reactive",
                  "expect": ["x"]}, "actions": [{"type": "do-nothing"}]}  # fmt: skip
    seen = serve({"POST /deployments/filter": deployments, f"PATCH /deployments/{DEP_ID}": {},
                  f"PATCH /deployments/{RUN_ID}": {}, "POST /automations/filter": [automation],
                  f"PATCH /automations/{FLOW_ID}": {},
                  f"POST /flow_runs/{RUN_ID}/set_state": {"status": "ACCEPT", "state": None,
                                                          "details": {"type": "accept_details"}}})  # fmt: skip
    admin = PrefectAdmin(URL)
    admin.set_job_variables({"build"}, {"b": 2})
    assert admin.pause_scheduled({"build"}) == ["canary-reanalysis"]
    admin.set_automation("on-build", enabled=False)
    admin.cancel(RUN_ID, "leftover")
    writes = [(m, p, b) for m, p, b in seen if m in {"PATCH"} or p.endswith("set_state")]
    assert writes[:3] == [("PATCH", f"/deployments/{DEP_ID}", {"job_variables": {"a": 1, "b": 2}}),
                          ("PATCH", f"/deployments/{RUN_ID}", {"paused": True}),
                          ("PATCH", f"/automations/{FLOW_ID}", {"enabled": False})]  # fmt: skip
    body = writes[3][2]
    assert isinstance(body, dict) and body["force"] is True
    assert (body["state"]["type"], body["state"]["name"], body["state"]["message"]) == (
        "CANCELLED", "Cancelled", "leftover")


def test_an_unknown_automation_is_an_error(serve: Callable[..., Seen]) -> None:
    serve({"POST /automations/filter": []})
    with pytest.raises(RuntimeError, match="not found"):
        PrefectAdmin(URL).set_automation("nope", enabled=True)


def test_every_failure_is_an_api_error(serve: Callable[..., Seen]) -> None:
    serve({})
    with pytest.raises(ApiError):
        PrefectReader(URL).runs(["build"])
    assert issubclass(ApiError, OSError)  # the benches' polls catch OSError
    assert issubclass(ApiError, ApiUnreachable)  # the store's callers catch ApiUnreachable


def test_an_unreachable_server_is_an_api_error_at_once() -> None:
    started = time.monotonic()
    with pytest.raises(ApiError):  # tried once: no retries with backoff
        PrefectReader("http://127.0.0.1:9/api", timeout=2).task_runs(RUN_ID)
    assert time.monotonic() - started < 5


def test_a_worker_online(serve: Callable[..., Seen]) -> None:
    worker = {"name": "w", "work_pool_id": FLOW_ID, "status": "ONLINE"}
    serve({"POST /work_pools/canary-local/workers/filter": [worker]})
    assert PrefectReader(URL).worker_online("canary-local")


@pytest.mark.slow
def test_against_a_real_server() -> None:
    """The reader and the admin against a real ``prefect server`` (the mock's shapes are real)."""
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.events.actions import DoNothing
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
    from prefect.states import Running

    from tests.support.prefect_server import PrefectServer

    with PrefectServer(startup_timeout=120) as server, \
            SyncPrefectClient(server.api_url) as prefect:  # fmt: skip
        flow_id = prefect.create_flow_from_name("canary-release")
        dep_id = prefect.create_deployment(flow_id, "canary-release", job_variables={"a": 1})
        cron = prefect.create_deployment(flow_id, "canary-reanalysis", schedules=[
            DeploymentScheduleCreate(schedule=CronSchedule(cron="0 0 1 1 *"))])  # fmt: skip
        run = prefect.create_flow_run_from_deployment(dep_id, parameters={"commit": "abc"})
        prefect.set_flow_run_state(run.id, Running(), force=True)
        prefect.create_automation(AutomationCore(
            name="on-build", trigger=EventTrigger(expect={"x"}, posture=Posture.Reactive),
            actions=[DoNothing()]))  # fmt: skip
        now = datetime.now(UTC).isoformat()
        release = _event(Outcome.PROMOTED.event, {"commit": "abc", "score": 100})
        httpx.post(f"{server.api_url}/events", json=[{**release, "id": str(run.id), "occurred": now}],
                   timeout=10).raise_for_status()  # fmt: skip

        reader, admin = PrefectReader(server.api_url), PrefectAdmin(server.api_url)
        (found,) = reader.runs(["canary-release"])
        assert (found.id, found.commit, found.state_type) == (str(run.id), "abc", "RUNNING")
        assert reader.run_for("canary-release", "abc") == found
        assert [s.type for s in reader.run_states(str(run.id))] == ["SCHEDULED", "RUNNING"]
        assert reader.task_runs(str(run.id)) == [] and reader.logs(str(run.id)) == []
        assert reader.latest_artifact(str(run.id), "canary-interval") is None
        assert reader.deployment_names() == {str(dep_id): "canary-release",
                                             str(cron): "canary-reanalysis"}  # fmt: skip
        deadline = time.monotonic() + 30  # the server stores events in batches
        while (ended := reader.release_end("gg", "abc")) is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert ended is not None and ended.model.outcome is Outcome.PROMOTED
        with pytest.raises(ApiError, match="404"):  # no such pool: an error, as any
            reader.worker_online("canary-local-none")

        admin.set_job_variables({"canary-release"}, {"b": 2})
        assert prefect.read_deployment(dep_id).job_variables == {"a": 1, "b": 2}
        assert admin.pause_scheduled(set()) == ["canary-reanalysis"]
        admin.set_automation("on-build", enabled=False)
        assert not prefect.read_automations_by_name("on-build")[0].enabled
        admin.cancel(str(run.id), "leftover")
        assert prefect.read_flow_run(run.id).state_type is StateType.CANCELLED
