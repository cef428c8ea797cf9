"""demo/api.py: the one reader of runs and events turns the REST API's answers into typed
records, and our events into their models (no server: httpx's mock transport answers)."""

from __future__ import annotations

import json

import httpx
import pytest

from canary.values.events import BuildSucceeded, ReleaseEnded
from canary.values.outcome import Outcome
from demo.api import ApiError, FlowRun, PrefectReader

RUN = {
    "id": "r1", "state_type": "FAILED", "state_name": "RolledBack",
    "state": {"name": "RolledBack", "message": "latency"}, "parameters": {"commit": "abc"},
    "deployment_id": "d1", "created": "2026-01-01T00:00:00Z",
    "start_time": "2026-01-01T00:00:10+00:00", "end_time": None,
}  # fmt: skip


def _event(name: str, payload: dict[str, object], app: str = "gg") -> dict[str, object]:
    return {"event": name, "resource": {"prefect.resource.id": f"canary.app.{app}"},
            "payload": payload, "occurred": "2026-01-01T00:01:00Z"}  # fmt: skip


def _reader(answers: dict[str, object], seen: list[httpx.Request] | None = None) -> PrefectReader:
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        path = request.url.path.removeprefix("/api")
        if path not in answers:
            return httpx.Response(500, json={"detail": "boom"})
        return httpx.Response(200, json=answers[path])

    reader = PrefectReader("http://prefect.invalid/api")
    reader._http.client = httpx.Client(base_url="http://prefect.invalid/api",
                                       transport=httpx.MockTransport(handle))  # fmt: skip
    return reader


def test_a_flow_run_is_a_typed_record_with_its_outcome() -> None:
    (run,) = _reader({"/flow_runs/filter": [RUN]}).runs(["canary-release"])
    assert run == FlowRun("r1", "FAILED", "RolledBack", "latency", "abc", "d1",
                          1767225600.0, None, 1767225610.0, None)  # fmt: skip
    assert run.final and run.failed and run.outcome is Outcome.ROLLED_BACK


def test_release_end_is_the_typed_event_of_the_commit() -> None:
    seen: list[httpx.Request] = []
    events = [
        _event("canary.release.command", {"action": "abort", "run": "r1"}),
        _event(Outcome.PROMOTED.event, {"commit": "other", "score": 100}),
        _event(Outcome.ROLLED_BACK.event, {"commit": "abc", "score": 0, "reason": "slower"}),
    ]
    found = _reader({"/events/filter": {"events": events}}, seen).release_end("gg", "abc")
    assert found is not None and isinstance(found.model, ReleaseEnded)
    assert (found.model.outcome, found.model.reason, found.occurred) == (
        Outcome.ROLLED_BACK, "slower", 1767225660.0)
    asked = json.loads(seen[0].content)["filter"]
    assert set(asked["event"]["name"]) == {o.event for o in Outcome}
    assert asked["any_resource"] == {"id": ["canary.app.gg"]}


def test_build_succeeded_and_a_missing_event() -> None:
    built = _event(BuildSucceeded.name, {"commit": "abc", "image": "i", "repo": "r"})
    reader = _reader({"/events/filter": {"events": [built]}})
    found = reader.build_succeeded("gg", "abc")
    assert found is not None and found.model.image == "i"
    assert reader.release_end("gg", "abc") is None


def test_every_failure_is_an_api_error() -> None:
    with pytest.raises(ApiError):
        _reader({}).runs(["build"])
    assert issubclass(ApiError, OSError)  # the benches' polls catch OSError
