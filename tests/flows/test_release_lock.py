"""The per-app release lock: a global concurrency limit of 1 that every release holds."""

from __future__ import annotations

import contextvars
import threading
import time
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import (
    GlobalConcurrencyLimitCreate,
    GlobalConcurrencyLimitUpdate,
)
from prefect.concurrency.sync import concurrency

import flows.canary_release as release_flow
from tests.flows import api
from tests.flows.conftest import released
from tests.flows.fakes import LATENCY


def slots_held_during_reconcile(env: Any) -> list[int]:
    """Make the fake's reconcile (the first call under the lock) note the lock's used slots."""
    held: list[int] = []
    reconcile = env.platform.reconcile

    def noting(app: str) -> dict[str, Any]:
        held.append(api.concurrency_limit(f"canary-release-{app}").active_slots)
        return reconcile(app)

    env.platform.reconcile = noting
    return held


def test_release_creates_its_lock_holds_and_frees_it(make_env):
    env = make_env("gg-lock", production=None)  # fails right after taking the lock
    held = slots_held_during_reconcile(env)
    state = release_flow.canary_release(**env.release_args(), return_state=True)
    assert state.is_failed()
    assert held == [1]
    limit = api.concurrency_limit("canary-release-gg-lock")
    assert limit.limit == 1 and limit.active
    assert limit.active_slots == 0  # released although the run failed


def test_a_lock_switched_off_freezes_releases_until_it_is_on_again(make_env):
    """An operator switches the app's limit off: releases wait, say so, and go on after."""
    env = make_env("gg-lock-off", production=None)
    name = "canary-release-gg-lock-off"
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name=name, limit=1, active=False)
        )
    held = slots_held_during_reconcile(env)
    outcome: dict[str, object] = {}

    def release() -> None:
        outcome["state"] = release_flow.canary_release(**env.release_args(), return_state=True)

    thread = threading.Thread(target=contextvars.copy_context().run, args=(release,))
    thread.start()
    logs = api.poll(lambda: api.logs_matching("releases are frozen"), bool, deadline=60)
    assert logs and f"the concurrency limit '{name}' is switched off" in logs[0]
    assert env.rec.calls == [] and thread.is_alive(), "a frozen release went on"
    assert not api.concurrency_limit(name).active, "the release switched the limit back on"
    with get_client(sync_client=True) as client:
        client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(active=True))
    thread.join(timeout=60)
    assert not thread.is_alive(), "the release did not go on once the limit was on"
    assert held == [1], "the release ran without holding its lock"
    assert outcome["state"].is_failed()  # no production: fails right after taking the lock


def test_second_release_waits_for_the_lock(make_env):
    env = make_env("gg-queue", bad=LATENCY)  # a rolled-back release: one window, quick
    holder = release_flow.ensure_release_lock.fn("gg-queue")  # what the flow would create
    outcome: dict[str, object] = {}

    def release() -> None:
        outcome["state"] = release_flow.canary_release(**env.release_args(), return_state=True)

    with concurrency(holder, occupy=1, strict=True, timeout_seconds=10):
        thread = threading.Thread(target=contextvars.copy_context().run, args=(release,))
        thread.start()
        # The flow loads its blocks right before it asks for the lock; give it time to ask.
        api.poll(lambda: list(env.loaded), lambda loaded: len(loaded) == 2, deadline=30)
        assert len(env.loaded) == 2, "the flow never got as far as the lock"
        time.sleep(2.0)
        assert env.rec.calls == [], "the release ran while another one held the lock"
    thread.join(timeout=60)
    assert not thread.is_alive(), "the release never got the lock"
    state = outcome["state"]
    assert released(state)["outcome"] == "rolled-back"
    assert env.rec.calls[:2] == [("production_commit", "gg-queue"), ("reconcile", "gg-queue")]
