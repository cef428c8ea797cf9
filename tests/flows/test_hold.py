"""Hold on failure (`on_failure: hold`): a failed analysis pauses the release for a person.

Two of the latency metrics are bad: the first look fails fast. With `on_failure: hold` the
run pauses instead of rolling back, says why (its state message, a `canary.release.held`
event with the failing metrics and a message), and keeps the split the look set until
`canary approve` (promoted, overridden), `canary reject` or the timeout (rolled back).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import yaml

from canary.values.weights import Weights
from cli.api import Api
from tests.flows import api
from tests.flows.conftest import Env, released
from tests.flows.test_cli import canary
from tests.flows.test_manual_judgement import Background, _paused_run_id

VERSION = "3.0.0"


def _held_env(make_env: Any, app: str, timeout: int = 120) -> Env:
    env = make_env(app, bad=("latency-p50", "latency-p99"))
    spec = yaml.safe_load(env.spec.read_text())
    spec.update({"on_failure": "hold", "hold_timeout_seconds": timeout})
    env.spec.write_text(yaml.safe_dump(spec))
    return env


class _Held(Background):
    """The release in a thread, with a version (the held message names it)."""

    def _run(self, env: Env) -> None:
        import flows.canary_release as release_flow

        self.state = release_flow.canary_release(**env.release_args(version=VERSION),
                                                 return_state=True)  # fmt: skip


def _wait_held(env: Env) -> str:
    """The paused run's id, once it is held; checks what a person sees while it is."""
    run_id = str(_paused_run_id(env.app))
    paused = Api().run(run_id)
    assert paused.pause_key == f"manual-held-{env.app}"
    assert paused.message is not None
    assert paused.message.startswith(f"{env.app} {VERSION} (0123456) held: latency"), paused.message
    assert "approve or reject within" in paused.message
    (held,) = api.events("canary.release.held", env.app)
    assert held.payload["message"] == paused.message
    assert {m["metric"] for m in held.payload["failing"]} >= {"latency-p99"}
    assert held.payload["canary_share"] == 10 and held.payload["commit"] == env.release_args()["commit"]
    # traffic stays as the look set it, read back from the platform, while it is held
    for _ in range(3):
        assert env.platform.weights[env.app] == Weights(primary=80, baseline=10, canary=10)
        assert ("rollback", env.app) not in env.rec.calls and env.rec.count("promote") == 0
        time.sleep(0.5)
    return run_id


def test_held_release_approved_is_promoted_as_overridden(make_env, capsys):
    env = _held_env(make_env, "gg-held-approve")
    running = _Held(env)
    _wait_held(env)
    code, _, err = canary(capsys, "promote", env.app)  # a held run reads no command: say so
    assert code == 1 and "waits for a person" in err and f"`canary approve {env.app}`" in err
    code, _, err = canary(capsys, "rollback", env.app)  # nor is it rolled back beside
    assert code == 1 and f"`canary reject {env.app}` rolls it back" in err
    code, answer, err = canary(capsys, "approve", env.app, "--comment", "known slow path")
    assert code == 0 and answer["gate"] == "held" and answer["decision"] == "promote", err
    state = running.join()
    result = released(state)
    assert state.name == "Promoted" and result["outcome"] == "promoted"
    assert state.message.startswith("promoted, overriding a failed analysis: "), state.message
    assert "a person approved (known slow path" in result["reason"]
    assert "traffic unchanged while held" in result["reason"]
    assert env.rec.count("promote") == 1
    (ended,) = api.events("canary.release.promoted", env.app)
    assert ended.payload["overridden"] is True and ended.payload["by_person"] is True
    assert ended.payload["headline"].startswith("promoted, overriding a failed analysis: latency")


def test_held_release_rejected_is_rolled_back(make_env, capsys):
    env = _held_env(make_env, "gg-held-reject")
    running = _Held(env)
    _wait_held(env)
    code, answer, err = canary(capsys, "reject", env.app, "--comment", "not today")
    assert code == 0 and answer["decision"] == "roll back", err
    state = running.join()
    result = released(state)
    assert state.name == "RolledBack"
    assert "held after a failed analysis, a person rejected it (not today" in result["reason"]
    assert env.rec.count("promote") == 0 and ("rollback", env.app) in env.rec.calls
    (ended,) = api.events("canary.release.rolled-back", env.app)
    assert ended.payload["overridden"] is False and ended.payload["by_person"] is True


def test_a_hold_nobody_answers_rolls_back_at_its_timeout(make_env):
    import flows.canary_release as release_flow

    env = _held_env(make_env, "gg-held-silent", timeout=3)
    state = release_flow.canary_release(**env.release_args(), return_state=True)
    result = released(state)
    assert state.name == "RolledBack" and "never resumed" not in (state.message or "")
    assert "held after a failed analysis, and nobody answered within 3s" in result["reason"]
    assert env.rec.count("promote") == 0 and ("rollback", env.app) in env.rec.calls


def test_a_release_cancelled_while_held_rolls_back(make_env):
    """Fail closed: a cancellation while held cleans up like any other bad end."""
    env = _held_env(make_env, "gg-held-cancel")
    running = _Held(env)
    run_id = _wait_held(env)
    Api().cancel(run_id, "a person cancelled the held release")
    running.join()
    assert env.rec.count("promote") == 0 and ("rollback", env.app) in env.rec.calls
    assert env.platform.weights[env.app] == Weights.all_primary()
    (ended,) = api.events("canary.release.rolled-back", env.app)
    assert "cancelled" in ended.payload["reason"]


def test_without_the_policy_a_failed_analysis_rolls_back_at_once(make_env):
    import flows.canary_release as release_flow

    env = make_env("gg-held-off", bad=("latency-p50", "latency-p99"))
    result = released(release_flow.canary_release(**env.release_args(), return_state=True))
    assert result["outcome"] == "rolled-back"
    assert api.events("canary.release.held", env.app, at_least=0) == []


@pytest.mark.parametrize("bad", [{"on_failure": "pause"}, {"hold_timeout_seconds": 0}])
def test_the_policy_is_validated(tmp_path, bad):
    from canary.config.release import ReleaseSpec
    from canary.errors import ConfigError
    from tests.flows.conftest import write_spec

    path = write_spec(tmp_path / "spec.yaml", "gg", **bad)
    with pytest.raises(ConfigError, match="on_failure|hold_timeout_seconds"):
        ReleaseSpec.load(path)
