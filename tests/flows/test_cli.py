"""The `canary` CLI against a real Prefect server, with releases running on the fake platform.

(The same commands during a live release on the local platform: tests/e2e/test_cli_live.py.)
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import yaml
from prefect.concurrency.sync import concurrency

import flows.canary_release as release_flow
from cli.main import main
from tests.flows.conftest import Env, released
from tests.flows.test_manual_judgement import Background


def canary(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any, str]:
    """Run the CLI; (exit code, its JSON output (None when there is none), stderr)."""
    code = main(["--json", *args])
    out = capsys.readouterr()
    return code, json.loads(out.out) if out.out.strip() else None, out.err


def _long_env(make_env: Any, app: str, **spec_changes: Any) -> Env:
    env = make_env(app, sequential=True)
    spec = yaml.safe_load(env.spec.read_text())
    spec["analysis"].update({"lifetime": "30s", "interval": "2s"})
    spec.update(spec_changes)
    env.spec.write_text(yaml.safe_dump(spec))
    return env


def _until(check: Any, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _looking(capsys: pytest.CaptureFixture[str], app: str) -> dict[str, Any]:
    """`canary status APP` once the release has made a look."""
    def look() -> dict[str, Any] | None:
        code, rows, _ = canary(capsys, "status", app)
        return rows[0] if code == 0 and rows and rows[0]["look"] else None

    return _until(look, f"a look of {app}")


def test_status_shows_the_running_release_and_promote_ends_it(make_env, capsys):
    env = _long_env(make_env, "cli-promote")
    running = Background(env)
    row = _looking(capsys, "cli-promote")
    assert row["app"] == "cli-promote" and row["state"] == "Running"
    assert row["canary_share"] in (10, 20) and row["progress"] is not None
    assert row["run"].startswith("http") and "/runs/flow-run/" in row["run"]
    code, result, err = canary(capsys, "promote", "cli-promote", "--wait", "60")
    assert code == 0, err
    state = running.join()
    outcome = released(state)
    assert state.name == "Promoted" and result["state"] == "Promoted"
    assert "(canary promote)" in outcome["reason"] and "the rest of the analysis skipped" in outcome["reason"]
    # the person's decision leads the headline (the run's state message), not the judge's
    assert state.message.startswith("promoted: promoted by ") and "(canary promote)" in result["why"]
    assert env.rec.count("promote") == 1
    code, rows, _ = canary(capsys, "history", "cli-promote")
    assert code == 0 and rows[0]["outcome"] == "Promoted" and rows[0]["duration_seconds"] is not None


def test_abort_ends_a_running_release_aborted(make_env, capsys):
    """An operator's abort: state Aborted (type Cancelled), event canary.release.aborted."""
    from tests.flows import api

    env = _long_env(make_env, "cli-abort")
    running = Background(env)
    _looking(capsys, "cli-abort")
    code, result, err = canary(capsys, "abort", "cli-abort", "--wait", "60")
    assert code == 0, err
    state = running.join()
    outcome = released(state)
    assert state.name == "Aborted" and state.is_cancelled() and result["state"] == "Aborted"
    assert outcome["outcome"] == "aborted" and "(canary abort)" in outcome["reason"]
    assert env.rec.count("promote") == 0 and ("rollback", env.app) in env.rec.calls
    (event,) = api.events("canary.release.aborted", env.app)
    assert event.payload["by_person"] is True and "(canary abort)" in event.payload["reason"]
    assert api.events("canary.release.rolled-back", env.app, at_least=0) == []


def test_abort_of_a_queued_release_cancels_it(make_env, capsys):
    env = _long_env(make_env, "cli-queued")
    lock = release_flow.ensure_release_lock.fn("cli-queued")
    with concurrency(lock, occupy=1, strict=True, timeout_seconds=10):
        running = Background(env)
        _until(lambda: canary(capsys, "status", "cli-queued")[1], "the queued release")
        code, result, err = canary(capsys, "abort", "cli-queued")
        assert code == 0 and result["action"] == "cancelled while queued", (result, err)
        state = running.join()
    assert state.is_cancelled(), state
    assert env.rec.count("deploy") == 0


@pytest.mark.parametrize(("verb", "state_name"), [("approve", "Promoted"), ("reject", "RolledBack")])
def test_approve_or_reject_a_gate_before_promotion(make_env, capsys, verb, state_name):
    app = f"cli-gate-{verb}"
    env = _long_env(make_env, app, manual_gate_before_promotion=True,
                    manual_judgement_timeout_seconds=120)  # fmt: skip
    spec = yaml.safe_load(env.spec.read_text())
    spec["analysis"].update({"lifetime": "2s", "interval": "1s"})  # quick to the gate
    env.spec.write_text(yaml.safe_dump(spec))
    running = Background(env)
    _until(lambda: any(r["state"] == "Paused" for r in (canary(capsys, "status", app)[1] or [])),
           "the paused release")  # fmt: skip
    code, result, err = canary(capsys, verb, app, "--comment", "dashboards look fine")
    assert code == 0, err
    assert result["gate"] == "before-promotion"
    state = running.join()
    outcome = released(state)
    assert state.name == state_name
    assert "dashboards look fine" in outcome["reason"]
    assert env.rec.count("promote") == (1 if verb == "approve" else 0)


def test_retry_releases_a_commit_again(make_env, capsys):
    env = make_env("cli-retry", bad=("latency-p50", "latency-p99"))  # a quick roll back
    released(release_flow.canary_release(**env.release_args(), return_state=True))
    release_flow.canary_release.to_deployment(name="canary-release").apply()
    code, result, err = canary(capsys, "retry", "cli-retry", env.release_args()["commit"][:8])
    assert code == 0, err
    from cli.api import Api

    created = Api().run(result["run"].rsplit("/", 1)[-1])
    assert created.parameters["retry"] is True and created.parameters["image"] == env.release_args()["image"]


def test_commands_say_what_is_wrong(capsys, tmp_path):
    broken_yaml = tmp_path / "spec.yaml"
    broken_yaml.write_text("app: [unclosed\n")
    code, _, err = canary(capsys, "promote", "cli-nothing-runs")
    assert code == 1 and "no running canary release of 'cli-nothing-runs'" in err
    code, _, err = canary(capsys, "retry", "cli-nothing-runs", "abc123")
    assert code == 1 and "no earlier canary release" in err
    code, _, err = canary(capsys, "--api", "http://127.0.0.1:9/api", "status")
    assert code == 1 and "did not answer" in err and "is it running?" in err
    code, _, err = canary(capsys, "validate", "/nonexistent/spec.yaml")
    assert code == 2 and "cannot read it" in err
    code, _, err = canary(capsys, "validate", str(broken_yaml))
    assert code == 2 and f"config {broken_yaml}: not valid YAML" in err
    code, rows, err = canary(capsys, "validate", "deployments/releases/goldengoose.yaml")
    assert code == 0 and all(r["ok"] for r in rows) and "sequential-v1" in rows[0]["detail"]


def test_status_lists_every_app_without_an_argument(make_env, capsys):
    env = _long_env(make_env, "cli-all")
    running = Background(env)
    _looking(capsys, "cli-all")
    code, rows, _ = canary(capsys, "status")
    assert code == 0 and "cli-all" in {r["app"] for r in rows}
    canary(capsys, "abort", "cli-all", "--wait", "60")
    running.join()




IDENTIFIER = r"^[a-z][a-z0-9_]*$"


def _keys_are_identifiers(rows: list[dict[str, Any]]) -> None:
    import re

    for row in rows:
        assert all(re.match(IDENTIFIER, key) for key in row), sorted(row)


def test_time_left_counts_down_from_the_planned_end_through_the_warm_up(make_env, capsys):
    """During the warm-up (begin_after) the progress stands still; the time left is counted
    from the planned end (warm-up + lifetime), so it never grows, and a fake clock moves it
    down second by second."""
    from datetime import UTC, datetime, timedelta

    from cli import operate
    from cli.api import Api

    env = _long_env(make_env, "cli-warmup")
    spec = yaml.safe_load(env.spec.read_text())
    spec["analysis"].update({"begin_after": "8s", "lifetime": "30s", "interval": "2s"})
    env.spec.write_text(yaml.safe_dump(spec))
    running = Background(env)
    row = _until(lambda: next((r for r in canary(capsys, "status", "cli-warmup")[1] or []
                               if r["time_left_seconds"] is not None), None), "the planned end")  # fmt: skip
    _keys_are_identifiers([row])
    assert 30 <= row["time_left_seconds"] <= 41, row  # warm-up 8 s + lifetime 30 s (+ the schedule)
    seen = [row["time_left_seconds"]]
    deadline = time.monotonic() + 4  # still inside the warm-up
    while time.monotonic() < deadline:
        (now,) = canary(capsys, "status", "cli-warmup")[1]
        seen.append(now["time_left_seconds"])
        time.sleep(0.5)
    assert all(b <= a for a, b in zip(seen, seen[1:], strict=False)), seen  # never grows
    assert seen[-1] < seen[0], seen
    t0 = datetime.now(UTC)
    fake = [operate.status(Api(), "cli-warmup", clock=lambda t=t0 + timedelta(seconds=s): t)[0]
            ["time_left_seconds"] for s in (0, 1, 3, 3600)]  # fmt: skip
    assert fake[0] - fake[1] == 1 and fake[0] - fake[2] == 3 and fake[3] == 0, fake
    canary(capsys, "abort", "cli-warmup", "--wait", "60")
    running.join()


def test_a_failed_build_is_in_history_and_status(make_env, capsys):
    """A commit whose .canary/release.yaml has a typo fails its build: history lists it
    ("build failed", the reason's first line) and status shows it, as JSON after the
    command too; the hint names the snake_case key the file should use."""
    import flows.build as build_flow
    from canary.errors import ConfigError
    from tests.flows import api
    from tests.flows.conftest import COMMIT
    from tests.flows.test_build import canary_files

    env = make_env("cli-badbuild")
    env.platform.config_files = canary_files(analysis={"lifetime": "3s", "begin_afer": "1s",
                                                       "thresholds": {"pass": 95}})  # fmt: skip
    with pytest.raises(ConfigError):
        build_flow.build(**env.build_args())
    api.events("canary.build.failed", "cli-badbuild")  # stored
    code = main(["history", "cli-badbuild", "--json"])  # --json after the command
    rows = json.loads(capsys.readouterr().out)
    assert code == 0 and len(rows) == 1, rows
    _keys_are_identifiers(rows)
    (row,) = rows
    assert row["outcome"] == "build failed" and row["commit"] == COMMIT[:12], row
    assert "unknown key 'begin_afer'" in row["why"] and "did you mean 'begin_after'" in row["why"]
    assert "\n" not in row["why"] and row["started"] and "/runs/flow-run/" in row["run"], row
    code, rows, err = canary(capsys, "status", "cli-badbuild")
    assert code == 0 and [r["state"] for r in rows] == ["build failed"], (rows, err)
    assert rows[0]["why"] == row["why"]
    code = main(["history", "cli-badbuild"])  # the table: human headers
    table = capsys.readouterr().out
    assert code == 0 and "build failed" in table and "duration (s)" in table.splitlines()[0]


def test_an_unknown_app_is_an_error_a_quiet_known_app_is_not(make_env, capsys):
    from canary.values.events import ReleaseEnded
    from canary.values.outcome import Outcome
    from store.events import emit
    from tests.flows import api

    emit(ReleaseEnded(app="cli-quiet", outcome=Outcome.PROMOTED, commit="d" * 40, reason="ok"))
    api.events("canary.release.promoted", "cli-quiet")
    for command in ("status", "history"):
        code, rows, err = canary(capsys, command, "cli-no-such-app")
        assert code == 1 and rows is None, (command, rows)
        assert "unknown app 'cli-no-such-app'" in err and "cli-quiet" in err, err
    code, rows, err = canary(capsys, "status", "cli-quiet")  # known, nothing running
    assert code == 0 and rows == [], (rows, err)


def test_history_links_the_report_artifact_and_the_run(make_env, capsys):
    from tests.flows import api

    env = make_env("cli-report", bad=("latency-p50", "latency-p99"))  # a quick roll back
    released(release_flow.canary_release(**env.release_args(), return_state=True))
    (event,) = api.events("canary.release.rolled-back", "cli-report")
    code, rows, err = canary(capsys, "history", "cli-report")
    assert code == 0, err
    _keys_are_identifiers(rows)
    assert rows[0]["report"].endswith(f"/artifacts/artifact/{event.payload['report']}"), rows[0]
    assert "/runs/flow-run/" in rows[0]["run"] and rows[0]["outcome"] == "RolledBack"
