"""The canary-release flow with the default, request-level judge (deployments/canary-configs/
goldengoose.yaml) and its guards, on a real Prefect test server with fake platform and counts.

The fakes' counts are deterministic (canary/baseline exactly alike unless told otherwise), so
an unchanged canary can never be a false alarm here; false-alarm rates are the business of
tests/judge/test_sequential_validity.py.
"""

from __future__ import annotations

from typing import Any

from tests.flows import api
from tests.flows.conftest import released
from tests.flows.test_canary_release import flow_run_id, platform_calls, report, run


def _outcome(env: Any) -> tuple[dict[str, Any], str]:
    state = run(env)
    return released(state), report(state, env.app)


def test_unchanged_canary_is_promoted_at_the_end(make_env):
    env = make_env("seq-good", sequential=True)
    result, text = _outcome(env)
    assert result["outcome"] == "promoted", result["reason"]
    assert "no regression proven in 3 looks" in result["reason"]
    assert env.rec.count("fetch_counts_pair") == 3 * 2  # two count metrics, three looks
    assert "## Timeline" in text and "## Guards" in text and "## Pictures" in text
    # the plan, from production's traffic before the canary took any
    assert "## Plan" in text and "error-rate: production serves 1e+03 req/s" in text


def test_raised_error_rate_is_rolled_back_early(make_env):
    env = make_env("seq-errors", sequential=True, bad=("error-rate",))
    result, text = _outcome(env)
    assert result["outcome"] == "rolled-back"
    assert "regression proven after look 1 of 3" in result["reason"]
    assert "error-rate High (critical)" in result["reason"]
    assert env.rec.count("promote") == 0 and env.rec.count("fetch_counts_pair") == 2
    assert "canary rate is higher" in text


def test_slower_canary_is_rolled_back_early(make_env):
    env = make_env("seq-slow", sequential=True, bad=("latency",))
    result, _ = _outcome(env)
    assert result["outcome"] == "rolled-back"
    assert "latency High (critical)" in result["reason"] and "canary is slower" in result["reason"]


def test_killed_canary_fails_the_release_at_once(make_env):
    env = make_env("seq-killed", sequential=True)
    env.platform.workloads(env.app, None).down["canary"] = (2, "the canary process (pid 4242) is not running")
    result, text = _outcome(env)
    assert result["outcome"] == "rolled-back"
    assert "guard failed after look 2 of 3" in result["reason"]
    assert "readiness" in result["reason"] and "pid 4242" in result["reason"]
    assert env.rec.count("promote") == 0
    assert ("serving", env.app, "canary") in platform_calls(env)
    assert "**FAILED** readiness" in text


def test_starved_canary_fails_the_split_guard(make_env):
    env = make_env("seq-starved", sequential=True, starve=0.2)
    result, _ = _outcome(env)
    assert result["outcome"] == "rolled-back"
    assert "sample-ratio mismatch" in result["reason"]
    assert "after look 1 of 3" in result["reason"]


def test_missing_series_is_never_promoted_blind(make_env):
    env = make_env("seq-missing", sequential=True, missing=("latency",))
    state = run(env)
    result = released(state)
    assert result["outcome"] == "rolled-back"
    assert "promoted blind" in result["reason"] and "no series for the canary" in result["reason"]
    rows = api.table_rows(api.artifacts_of(flow_run_id(state), "table")[0])
    latency = next(r for r in rows if r["metric"] == "latency")
    assert latency["result"] == "Nodata" and latency["role"] == "critical"
    assert latency["stops the release"] == "yes"


def test_canary_decided_within_tolerance_is_promoted_early_with_history(make_env, tmp_path):
    """Each look is judged with the looks before it (the histogram's e-processes learn from
    them): an unchanged canary whose error rate is proven below its safeRate and whose
    latency shares are proven within toleranceOn: share is promoted at look 2 of 5, never at
    look 1, and the report says at which look and why."""
    import yaml

    from tests.flows.conftest import SEQUENTIAL_CONFIG, write_spec

    data = yaml.safe_load(SEQUENTIAL_CONFIG.read_text())
    rates, latency = data["metrics"][0]["analysisConfigurations"]["canary"], data["metrics"][1]["analysisConfigurations"]["canary"]
    rates["safeRate"] = 0.05
    latency.update(toleranceOn="share", tolerance=0.5)
    config = tmp_path / "early.yaml"
    config.write_text(yaml.safe_dump(data))
    env = make_env("seq-early", sequential=True)
    write_spec(env.spec, env.app, lifetime="5s", canary_config=config)
    result, text = _outcome(env)
    assert result["outcome"] == "promoted", result["reason"]
    assert "every metric is within its tolerance, decided at look 2 of 5" in result["reason"]
    assert "safe to promote now, saving 3s of the 5s lifetime (3 looks left)" in result["reason"]
    assert result["headline"] == "promoted: every metric within its tolerance, decided at look 2"
    assert env.rec.count("fetch_counts_pair") == 2 * 2  # two count metrics, two looks
    assert "- decided at look 2, at " in text
    assert "decided error-rate within tolerance, latency within tolerance" in text
    assert "Pass, decided at look 1" in text and "Pass, decided at look 2" in text  # error-rate, latency
    assert "*critical, tolerance on shares*" in text
    assert "(decided at look 2) at every one of the" in text  # the latency reason
    assert "or below the safe rate 5%" in text


def test_the_plan_runs_beside_the_analysis_not_before_it(make_env, monkeypatch):
    """The plan is advice for the report: its simulations run in a task run of their own
    while the looks go on. Here the plan waits (up to 60 s) for the first look's counts to
    be read; had the flow waited for the plan before its first look, it would never see
    them. The report still carries the plan, and says when it was made."""
    import time

    from tasks import analysis

    env = make_env("seq-plan-beside", sequential=True)
    real_plan, seen = analysis.plan_config, {}

    def plan_after_the_first_look(*args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + 60
        while env.rec.count("fetch_counts_pair") == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        seen["looked"] = env.rec.count("fetch_counts_pair") > 0
        return real_plan(*args, **kwargs)

    monkeypatch.setattr(analysis, "plan_config", plan_after_the_first_look)
    result, text = _outcome(env)
    assert result["outcome"] == "promoted", result["reason"]
    assert seen == {"looked": True}
    assert "## Plan" in text and "error-rate: production serves 1e+03 req/s" in text


def test_a_plan_that_fails_is_reported_and_changes_nothing(make_env, monkeypatch):
    from tasks import analysis

    env = make_env("seq-plan-fails", sequential=True)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the simulation ran out of memory")

    monkeypatch.setattr(analysis, "plan_config", broken)
    result, text = _outcome(env)
    assert result["outcome"] == "promoted", result["reason"]
    assert "no plan:" in text and "the simulation ran out of memory" in text
