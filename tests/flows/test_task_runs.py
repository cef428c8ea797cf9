"""The task runs a release makes, on the real test server: which ones, how many, and the
folded ones (several platform calls in one task run) keeping the rules of the steps they
fold: retries on transient errors only, every cleanup step attempted, a line each in the
report.

Every task run costs about three events the server records (issue 24), so a change in this
list is a change in what a release costs: it should be made on purpose, here.
"""

from __future__ import annotations

from typing import Any

from canary.errors import PlatformError
from tests.flows import api
from tests.flows.conftest import COMMIT, released
from tests.flows.test_canary_release import (
    cleanup_and_read_back,
    cleanup_calls,
    failure,
    flow_run_id,
    report,
    run,
)

PRODUCTION_COMMIT = "fedcba9876543210fedcba9876543210fedcba98"  # production's, older than COMMIT
REPO = "https://git.test/app.git"


def _demo_like(make_env: Any, app: str, **knobs: Any) -> Any:
    """A release as the demo makes it: the request-level judge (so a plan), a repository
    (so the commit is ordered against production's), three looks unless told otherwise."""
    env = make_env(app, sequential=True, **knobs)
    env.platform.history[:] = [PRODUCTION_COMMIT, COMMIT]
    env.platform.production_commit_value = PRODUCTION_COMMIT
    return env


def test_a_lone_release_makes_these_task_runs(make_env):
    env = _demo_like(make_env, "tr-lone")
    state = run(env, repo=REPO)
    assert released(state)["outcome"] == "promoted"
    app = env.app
    runs = api.task_runs_in_order(flow_run_id(state), last=f"production-image-{app}")
    look = ["traffic-{app}-{pct}pct", "observe-{i}", "judge-interval-{i}"]
    looks = [step.format(app=app, pct=pct, i=i) for i, pct in ((1, 10), (2, 20), (3, 20))
             for step in look]  # fmt: skip
    looks.insert(1, f"wait-for-metrics-{app}")  # before the first look's data: both tracks seen
    # the plan runs beside the looks, started once the tracks are ready (its place among the
    # runs started at that moment is a race, so it is checked apart)
    plan = next(r for r in runs if r.name == f"plan-canary-{app}")
    ready = next(r for r in runs if r.name == f"wait-ready-{app}")
    assert plan.start_time >= ready.end_time
    runs = [r for r in runs if r is not plan]
    assert [r.name for r in runs] == [
        f"load-release-config-{app}",
        f"ensure-release-lock-{app}",
        f"production-{app}",  # production's commit and its last change, for the turn
        f"order-{app}-{PRODUCTION_COMMIT[:12]}-{COMMIT[:12]}",  # both directions, one run
        f"reconcile-{app}",  # leftovers repaired, production's image read
        f"traffic-{app}-0pct",  # pinned before the tracks exist (canary abort looks for it)
        f"deploy-{app}",  # baseline and canary
        f"wait-ready-{app}",  # baseline and canary
        f"start-progress-{app}",
        *looks,  # each look's table made by its judge-interval run
        f"publish-graph-links-{app}",
        f"promote-{app}",
        f"cleanup-traffic-{app}",
        f"cleanup-{app}-tracks",  # baseline and canary
        f"cleanup-routes-{app}",
        f"production-image-{app}",  # the outcome, read back
    ]
    assert len(runs) + 1 == 26  # and the plan; 38 before the fold (issue 24)
    assert all(r.state.is_completed() for r in runs), [(r.name, r.state.name) for r in runs]
    judges = {r.id: r.name for r in runs if r.name.startswith("judge-interval-")}
    tables = api.artifacts_of(flow_run_id(state), "table")
    assert sorted(judges.get(t.task_run_id, "?") for t in tables) == sorted(judges.values())
    assert [c[2] for c in env.rec.named("deploy")] == ["baseline", "canary"]
    assert [c[2] for c in env.rec.named("wait_ready")] == ["baseline", "canary"]
    assert cleanup_calls(env) == cleanup_and_read_back(env)


def test_a_transient_canary_removal_is_retried_after_the_baseline_was_removed(make_env):
    env = _demo_like(make_env, "tr-clean-retry", lifetime="1s")
    env.rec.fail("remove:canary", lambda: PlatformError("apiserver 503", transient=True), times=1)
    state = run(env, repo=REPO)
    assert released(state)["outcome"] == "promoted"
    # the whole task run retried: the baseline's removal is a no-op the second time
    assert [c[2] for c in env.rec.named("remove")] == ["baseline", "canary", "baseline", "canary"]
    name = f"cleanup-{env.app}-tracks"
    runs = api.task_runs(flow_run_id(state), until=lambda r: name in r and r[name].run_count == 2)
    assert runs[name].run_count == 2 and runs[name].state.is_completed()
    text = report(state, env.app)
    assert "- baseline removed" in text and "- canary removed" in text and "FAILED" not in text


def test_a_failed_canary_removal_still_removes_the_baseline_and_restores_routes(make_env):
    env = _demo_like(make_env, "tr-clean-fail", lifetime="1s")
    env.rec.fail("remove:canary", lambda: PlatformError("forbidden: delete canary"), times=None)
    state = run(env, repo=REPO)
    exc = failure(state)
    assert isinstance(exc, PlatformError) and str(exc) == "forbidden: delete canary"
    assert cleanup_calls(env) == cleanup_and_read_back(env)  # never retried: it is permanent
    name = f"cleanup-{env.app}-tracks"
    runs = api.task_runs(flow_run_id(state), until=api.finished(name))
    assert runs[name].state.is_failed() and runs[name].run_count == 1
    text = report(state, env.app)
    assert "- baseline removed" in text and "- routes restored" in text
    assert "- FAILED: canary removed: forbidden: delete canary" in text


def test_a_transient_readiness_read_is_retried_in_the_flows_run(make_env):
    """check_serving is read in the flow's own run (no task run), under the tasks' retry rule."""
    env = make_env("tr-serving", lifetime="1s")
    env.rec.fail("serving:baseline", lambda: PlatformError("apiserver 503", transient=True), times=2)
    state = run(env)
    assert released(state)["outcome"] == "promoted"
    assert [c[2] for c in env.rec.named("serving")] == ["baseline"] * 3 + ["canary"]
    runs = api.task_runs(flow_run_id(state), until=api.finished(f"production-image-{env.app}"))
    assert not [name for name in runs if name.startswith("check-serving")]
