"""`canary rollback APP [--to COMMIT]` against a real Prefect server, on the fake platform.

The CLI starts a run of the `restore-production` deployment, as it does for real; here an
in-process worker (`_Worker`) runs that deployment's runs with the test's fakes, where a
real worker would run them in a process of its own. Two releases are promoted first
(A, then B): the last good release before B is A.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.concurrency.sync import concurrency
from prefect.flow_engine import run_flow

import cli.rollback
import flows.canary_release as release_flow
import flows.restore_production as restore_flow
import store.blocks
from canary.values.weights import Weights
from store.locks import LOCK_LEASE_SECONDS
from tests.flows import api
from tests.flows.conftest import Env, released
from tests.flows.test_cli import _looking, canary
from tests.flows.test_manual_judgement import Background
from tests.support.polling import poll

A = ("aaaaaaa1" * 5, "registry.test/app:1.0.0", "1.0.0", "2026-12-01T10:00:00+00:00")
B = ("bbbbbbb2" * 5, "registry.test/app:2.0.0", "2.0.0", "2026-12-01T11:00:00+00:00")
C = ("ccccccc3" * 5, "registry.test/app:3.0.0", "3.0.0", "2026-12-01T12:00:00+00:00")


class _Worker:
    """Runs the `restore-production` deployment's scheduled runs in this process."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        deployment = DeploymentFilter(name=DeploymentFilterName(any_=["restore-production"]))
        scheduled = FlowRunFilter(state=FlowRunFilterState(
            type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])))  # fmt: skip
        while not self._stop.wait(0.3):
            with get_client(sync_client=True) as client:
                runs = client.read_flow_runs(deployment_filter=deployment,
                                             flow_run_filter=scheduled)  # fmt: skip
            for run in runs:
                run_flow(restore_flow.restore_production, flow_run=run, return_type="state")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Worker]:
    restore_flow.restore_production.to_deployment(name="restore-production").apply()
    running = _Worker()
    yield running
    running.stop()


def _promoted_twice(make_env: Any, monkeypatch: pytest.MonkeyPatch, app: str) -> Env:
    env = make_env(app)
    # the fakes' loader (install() patched store.blocks) for the restore flow too
    monkeypatch.setattr(restore_flow, "load_block", store.blocks.load_block)
    for commit, image, version, pushed in (A, B):
        state = release_flow.canary_release(**env.release_args(
            commit=commit, image=image, version=version, pushed_at=pushed), return_state=True)  # fmt: skip
        assert released(state)["outcome"] == "promoted"
    assert env.platform.production == B[1]
    return env


def test_rollback_puts_the_last_good_release_back(make_env, monkeypatch, capsys, worker):
    env = _promoted_twice(make_env, monkeypatch, "rb-last")
    env.platform.weights[env.app] = Weights(primary=90, baseline=5, canary=5)  # a leftover split
    code, row, err = canary(capsys, "rollback", env.app)
    assert code == 0, err
    assert row["to commit"] == A[0][:12] and row["to version"] == "1.0.0"
    assert row["production serves"] == A[1] and row["was"] == B[1]  # read back by the flow
    assert env.platform.production == A[1]
    assert env.platform.weights[env.app] == Weights.all_primary()
    (restored,) = api.events("canary.production.restored", env.app)
    assert restored.payload["manual"] is True and "via canary rollback" in restored.payload["by"]
    assert restored.payload["message"].startswith(f"rb-last rolled back to 1.0.0 ({A[0][:7]}) by ")
    code, rows, _ = canary(capsys, "history", env.app)
    assert code == 0 and rows[0]["outcome"] == "Restored (manual)" and rows[0]["commit"] == A[0][:12]
    assert [r["outcome"] for r in rows[1:]] == ["Promoted", "Promoted"]
    # A is the oldest promoted release: nothing earlier to go back to
    code, _, err = canary(capsys, "rollback", env.app)
    assert code == 1 and "no earlier good release of rb-last: production runs registry.test/app:1.0.0" in err
    assert "--to COMMIT" in err


def test_rollback_to_a_named_commit_and_what_is_wrong(make_env, monkeypatch, capsys, worker):
    env = _promoted_twice(make_env, monkeypatch, "rb-to")
    code, row, err = canary(capsys, "rollback", env.app, "--to", A[0][:8])
    assert code == 0 and row["production serves"] == A[1], err
    code, row, err = canary(capsys, "rollback", env.app, "--to", B[0][:8])
    assert code == 0 and row["production serves"] == B[1] and env.platform.production == B[1], err
    code, _, err = canary(capsys, "rollback", env.app, "--to", "deadbeef")
    assert code == 1 and "no release of 'rb-to' at commit 'deadbeef'; `canary history rb-to` lists them" in err
    code, _, err = canary(capsys, "rollback", "rb-nobody")
    assert code == 1 and "unknown app 'rb-nobody'" in err


class _Third(Background):
    """A third release (C) in a thread, pushed after A and B."""

    def _run(self, env: Env) -> None:
        commit, image, version, pushed = C
        self.state = release_flow.canary_release(**env.release_args(
            commit=commit, image=image, version=version, pushed_at=pushed), return_state=True)  # fmt: skip


def test_rollback_is_refused_while_a_release_runs(make_env, monkeypatch, capsys, worker):
    env = _promoted_twice(make_env, monkeypatch, "rb-busy")
    spec = env.spec.read_text().replace("lifetime: 3s", "lifetime: 30s")
    env.spec.write_text(spec.replace("interval: 1s", "interval: 2s"))
    running = _Third(env)
    _looking(capsys, env.app)
    code, _, err = canary(capsys, "rollback", env.app)
    assert code == 1 and "a canary release of rb-busy runs" in err and "`canary abort rb-busy`" in err
    assert env.rec.count("promote") == 2  # the two releases' own; nothing restored
    canary(capsys, "abort", env.app, "--wait", "60")
    running.join()


def test_the_restore_takes_the_apps_lock(make_env, monkeypatch, capsys, worker):
    """A lock held (by a release that started after the CLI looked) makes the restore give
    up after its lock timeout, saying who to stop; production is not touched."""
    env = _promoted_twice(make_env, monkeypatch, "rb-lock")
    monkeypatch.setattr(cli.rollback, "LOCK_TIMEOUT", 2.0)
    lock = release_flow.ensure_release_lock.fn(env.app)
    with concurrency(lock, occupy=1, strict=True, timeout_seconds=10):
        code, _, err = canary(capsys, "rollback", env.app)
    assert code == 1 and "the rollback ended Failed" in err and "stayed taken for 2 s" in err, err
    assert env.platform.production == B[1]
    # Free again, the restore goes through. Prefect's slot service may grant a timed-out
    # request after all (seen twice on a busy machine, once after the lock had read free);
    # nobody renews that lease, so the server frees it within LOCK_LEASE_SECONDS. Until
    # then each attempt gives up the same way, production untouched.
    refused: list[str] = []

    def restored() -> dict[str, str] | None:
        code, row, err = canary(capsys, "rollback", env.app)
        if code == 0:
            return dict(row)
        assert "stayed taken for 2 s" in err and env.platform.production == B[1], err
        refused.append(err)
        return None

    row = poll("a restore once the lock is free", restored, LOCK_LEASE_SECONDS + 45, every=1.0)
    assert row["production serves"] == A[1], (row, refused)

