"""Manual judgement: a Marginal final score pauses the release for a typed decision.

One latency metric of two is bad: the latency group scores 50, errors 100, the release 75:
above marginal (60) and below pass (95). With `manual_judgement` on, the run pauses; a
person's "promote" promotes, "roll back" rolls back, and silence until the timeout rolls back.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
from prefect.flow_runs import resume_flow_run

import flows.canary_release as release_flow
from tests.flows import api
from tests.flows.conftest import Env, released


def _marginal_env(make_env: Any, app: str, timeout: int) -> Env:
    env = make_env(app, bad=("latency-p50",), lifetime="2s")
    spec = yaml.safe_load(env.spec.read_text())
    spec["analysis"]["thresholds"] = {"pass": 95, "marginal": 60}
    spec["manual_judgement"] = True
    spec["manual_judgement_timeout_seconds"] = timeout
    env.spec.write_text(yaml.safe_dump(spec))
    return env


class Background:
    """The release flow in a thread, so the test can answer its pause."""

    def __init__(self, env: Env) -> None:
        self.state: Any = None
        self._thread = threading.Thread(target=self._run, args=(env,), daemon=True)
        self._thread.start()

    def _run(self, env: Env) -> None:
        self.state = release_flow.canary_release(**env.release_args(), return_state=True)

    def join(self, timeout: float = 60) -> Any:
        self._thread.join(timeout)
        assert self.state is not None, "the release did not finish"
        return self.state


def _paused_run_id(app: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
                name=FlowRunFilterName(like_=f"canary-release-{app}-")))  # fmt: skip
            paused = [r for r in runs if r.state is not None and r.state.is_paused()]
            if paused:
                return paused[0].id
            time.sleep(0.25)
    raise TimeoutError(f"no paused canary-release run of {app}")


@pytest.mark.parametrize(("answer", "outcome"), [("promote", "promoted"),
                                                  ("roll back", "rolled-back")])  # fmt: skip
def test_marginal_release_waits_for_a_person(make_env: Any, answer: str, outcome: str) -> None:
    app = f"gg-manual-{answer.replace(' ', '-')}"
    env = _marginal_env(make_env, app, timeout=120)
    running = Background(env)
    run_id = _paused_run_id(app)
    assert env.rec.count("promote") == 0  # nothing happens while it waits
    resume_flow_run(run_id, run_input={"decision": answer, "comment": "checked the dashboards"})
    state = running.join()
    result = released(state)
    assert result["outcome"] == outcome
    assert result["score"] == 75.0
    assert "manual judgement (checked the dashboards)" in result["reason"]
    assert env.rec.count("promote") == (1 if answer == "promote" else 0)
    assert ("rollback", env.app) in env.rec.calls  # cleanup ran either way


def test_no_answer_before_the_timeout_rolls_back(make_env: Any) -> None:
    """Silence rolls back, and the run says so: RolledBack with the reason in words, not
    Prefect's "The flow was rolledback and never resumed." (a Failed run)."""
    env = _marginal_env(make_env, "gg-manual-silent", timeout=3)
    state = release_flow.canary_release(**env.release_args(), return_state=True)
    result = released(state)
    assert state.name == "RolledBack" and "never resumed" not in (state.message or "")
    assert "nobody answered the manual judgement within 3s" in result["reason"]
    assert env.rec.count("promote") == 0
    assert ("rollback", env.app) in env.rec.calls
    (event,) = api.events("canary.release.rolled-back", env.app)
    assert "nobody answered the manual judgement within 3s" in event.payload["reason"]
    assert event.payload["score"] == 75.0  # the last look's verdict stands; the gate decided


def test_nobody_at_the_gate_before_promotion_rolls_back(make_env: Any) -> None:
    """A good canary waits at the before-promotion gate; nobody answers: RolledBack, why."""
    env = make_env("gg-gate-silent", lifetime="1s")
    spec = yaml.safe_load(env.spec.read_text())
    spec.update({"manual_gate_before_promotion": True, "manual_judgement_timeout_seconds": 3})
    env.spec.write_text(yaml.safe_dump(spec))
    state = release_flow.canary_release(**env.release_args(), return_state=True)
    result = released(state)
    assert state.name == "RolledBack" and state.is_failed()
    assert "nobody answered the before-promotion gate within 3s" in result["reason"]
    assert state.message.startswith("rolled back: ")
    assert env.rec.count("promote") == 0
    (event,) = api.events("canary.release.rolled-back", env.app)
    assert "nobody answered the before-promotion gate within 3s" in event.payload["reason"]


def test_without_the_switch_a_marginal_score_rolls_back_at_once(make_env: Any) -> None:
    env = _marginal_env(make_env, "gg-manual-off", timeout=120)
    spec = yaml.safe_load(env.spec.read_text())
    spec["manual_judgement"] = False
    env.spec.write_text(yaml.safe_dump(spec))
    started = time.monotonic()
    result = released(release_flow.canary_release(**env.release_args(), return_state=True))
    assert result["outcome"] == "rolled-back" and result["score"] == 75.0
    assert time.monotonic() - started < 60  # it did not wait for a person
