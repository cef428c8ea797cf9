"""The per-app release lock: a global concurrency limit of 1 that every release holds."""

from __future__ import annotations

import contextlib
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

    def noting(app: str, spec: Any) -> dict[str, Any]:
        held.append(api.concurrency_limit(f"canary-release-{app}").active_slots)
        return reconcile(app, spec)

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


def _lock_with_slots(app: str, slots: int) -> str:
    name = f"canary-release-{app}"
    with get_client(sync_client=True) as client:
        with contextlib.suppress(Exception):  # it exists already
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
        client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(active_slots=slots))
    return name


def test_a_slot_without_lease_or_holder_is_reset_after_the_grace_time() -> None:
    """A server restart without lease storage leaves a slot taken with no lease: once the
    grace time (a dead holder's lease would have lapsed by then) is over, it is reset."""
    from store.locks import free_leaked_lock, held_by_the_dead

    name = _lock_with_slots("leaky", 1)
    assert held_by_the_dead("leaky")
    started = time.monotonic()
    said = free_leaked_lock("leaky", grace=1.0, poll=0.2)
    assert time.monotonic() - started >= 1.0  # it waited for a lease to lapse first
    assert said is not None and "no lease behind them" in said, said
    assert api.concurrency_limit(name).active_slots == 0
    assert not held_by_the_dead("leaky")
    assert free_leaked_lock("leaky", grace=1.0, poll=0.2) is None  # nothing held: nothing said


def test_a_slot_freed_by_the_server_meanwhile_is_not_reset() -> None:
    """While it waits, the slot is freed (as the repossessor does when the dead holder's
    lease lapses): it says so and resets nothing."""
    from store.locks import free_leaked_lock

    name = _lock_with_slots("lapsing", 1)
    timer = threading.Timer(0.6, lambda: _lock_with_slots("lapsing", 0))
    timer.start()
    try:
        said = free_leaked_lock("lapsing", grace=30.0, poll=0.2)
    finally:
        timer.cancel()
    assert said is not None and "freed by the server when its lease lapsed" in said, said
    assert api.concurrency_limit(name).active_slots == 0


def test_reconcile_without_an_app_repairs_every_released_app_under_its_lock(make_env, monkeypatch):
    import flows.reconcile as reconcile_flow

    env = make_env("gg-sweep")
    held = slots_held_during_reconcile(env)
    monkeypatch.setattr(reconcile_flow, "find_released_apps", lambda: ["gg-sweep"])
    result = reconcile_flow.reconcile(platform="fake-platform/test")
    assert set(result) == {"gg-sweep"} and result["gg-sweep"].app == "gg-sweep"
    assert held == [1]  # each app's repair holds that app's lock
    assert ("reconcile", "gg-sweep") in env.rec.calls
