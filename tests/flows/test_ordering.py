"""Release ordering on the real test server: a newer commit supersedes a queued older one,
the same commit is released once, and a commit older than production is never released."""

from __future__ import annotations

import contextvars
import threading
from typing import Any

from prefect.concurrency.sync import concurrency

import flows.canary_release as release_flow
from tests.flows import api
from tests.flows.conftest import COMMIT
from tests.flows.conftest import released as outcome_of

OLDER, NEWER = "1" * 40, "2" * 40


def _in_thread(env: Any, results: dict[str, Any], commit: str) -> threading.Thread:
    def release() -> None:
        results[commit] = release_flow.canary_release(
            **env.release_args(commit=commit, repo="https://git.test/app.git"), return_state=True)

    thread = threading.Thread(target=contextvars.copy_context().run, args=(release,))
    thread.start()
    return thread


def test_a_newer_commit_supersedes_a_queued_older_one(make_env):
    env = make_env("gg-order", bad=("latency-p50", "latency-p99"))  # quick: one window
    env.platform.history[:] = [OLDER, NEWER]
    lock = release_flow.ensure_release_lock.fn("gg-order")
    results: dict[str, Any] = {}
    with concurrency(lock, occupy=1, strict=True, timeout_seconds=10):
        older = _in_thread(env, results, OLDER)
        api.poll(lambda: api.logs_matching("waiting for the lock 'canary-release-gg-order'"), bool)
        newer = _in_thread(env, results, NEWER)
        older.join(timeout=60)  # it sees the newer one and yields while still queued
        assert not older.is_alive(), "the older release kept waiting"
    newer.join(timeout=90)
    skipped, released = results[OLDER], results[NEWER]
    assert skipped.is_cancelled() and skipped.name == "Skipped", skipped
    assert f"superseded by the newer commit {NEWER[:12]}" in skipped.message
    assert outcome_of(released)["commit"] == NEWER
    deployed = [c for c in env.rec.calls if c[0] == "deploy" and c[2] == "canary"]
    assert len(deployed) == 1  # only the newest was deployed as a canary
    skips = api.events("canary.release.skipped", "gg-order")
    assert skips[0].payload["commit"] == OLDER and "superseded" in skips[0].payload["reason"]
    assert api.events("canary.release.aborted", "gg-order", at_least=0) == []


def test_the_same_commit_is_released_once(make_env):
    env = make_env("gg-once", bad=("latency-p50", "latency-p99"))
    first = release_flow.canary_release(**env.release_args(), return_state=True)
    again = release_flow.canary_release(**env.release_args(), return_state=True)
    assert first.name == "RolledBack"
    assert again.is_cancelled() and again.name == "Skipped"
    assert f"commit {COMMIT[:12]} was already handled by run canary-release-gg-once-" in again.message
    assert len([c for c in env.rec.calls if c[0] == "deploy" and c[2] == "canary"]) == 1


def test_an_older_commit_never_replaces_production(make_env):
    env = make_env("gg-stale")
    env.platform.history[:] = [OLDER, NEWER]
    env.platform.production_commit_value = NEWER
    state = release_flow.canary_release(
        **env.release_args(commit=OLDER, repo="https://git.test/app.git"), return_state=True)
    assert state.is_cancelled() and state.name == "Skipped"
    assert state.message == (f"commit {OLDER[:12]} is older than production's {NEWER[:12]}: "
                             "a release never replaces a newer production")  # fmt: skip
    assert not [c for c in env.rec.calls if c[0] in ("deploy", "promote")]
    report = api.artifacts_of(state.state_details.flow_run_id, "markdown")[0].data
    assert "**skipped**" in report and "older than production" in report
