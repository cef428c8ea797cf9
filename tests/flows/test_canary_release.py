"""The canary-release flow on a real Prefect test server, with a fake platform and metrics.

Each test uses its own app name, so events, artifacts and the release lock never mix.
Windows are 1 s (lifetime 3 s: three judgements), so a full release takes a few seconds.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

import flows.canary_release as release_flow
import tasks.analysis
import tasks.platform
from canary.errors import ConfigError, MetricsError, PlatformError
from canary.values.weights import Weights
from tasks._retry import only_transient
from tests.flows import api
from tests.flows.conftest import COMMIT, IMAGE, PRODUCTION, fast_retries, install, released
from tests.flows.fakes import HEALTHY, LATENCY

#: The tasks as defined (fixtures replace them with zero-delay copies while flows run).
DEPLOY_TRACKS, OBSERVE = tasks.platform.deploy_tracks, tasks.analysis.observe
METRICS = list(HEALTHY)  # the goldengoose canary config's metrics, in config order


def run(env: Any, **override: str) -> Any:
    """Run the flow in-process against the test server; its final state."""
    return release_flow.canary_release(**env.release_args(**override), return_state=True)


def flow_run_id(state: Any) -> Any:
    return state.state_details.flow_run_id


_METRIC_CALLS = ("fetch_pair", "fetch_counts_pair", "fetch_counts", "counter_increase")


def platform_calls(env: Any) -> list[tuple[Any, ...]]:
    return [c for c in env.rec.calls if c[0] not in _METRIC_CALLS]


def cleanup_calls(env: Any) -> list[tuple[Any, ...]]:
    """The calls from the cleanup's rollback on (the analysis never calls rollback)."""
    calls = platform_calls(env)
    names = [c[0] for c in calls]
    assert "rollback" in names, f"cleanup never rolled back: {names}"
    return calls[names.index("rollback") :]


def expected_cleanup(app: str) -> list[tuple[Any, ...]]:
    return [
        ("rollback", app),
        ("read_weights", app),
        ("remove", app, "baseline"),
        ("remove", app, "canary"),
        ("restore_routes", app),
    ]


def cleanup_and_read_back(env: Any) -> list[tuple[Any, ...]]:
    """The cleanup calls, then the read-back of what production runs."""
    return [*expected_cleanup(env.app), ("production_image", env.app)]


def report(state: Any, app: str) -> str:
    found = api.artifacts_of(flow_run_id(state), "markdown")
    assert [a.key for a in found] == [f"canary-report-{app}"]
    return found[0].data


def failure(state: Any) -> BaseException:
    assert state.is_failed(), f"expected a failed flow run, got {state.type}: {state.message}"
    with pytest.raises(BaseException) as caught:
        state.result()
    return caught.value


# -- a good canary, run once, checked from several sides ----------------------------------


@pytest.fixture(scope="module")
def promoted(tmp_path_factory: pytest.TempPathFactory):
    with pytest.MonkeyPatch.context() as mp:
        fast_retries(mp)
        env = install(mp, tmp_path_factory.mktemp("good"), "gg-good")
        state = run(env)
        yield env, state


def test_good_canary_is_promoted(promoted):
    env, state = promoted
    result = released(state)
    assert state.name == "Promoted"
    assert result == {
        "app": "gg-good",
        "commit": COMMIT,
        "image": IMAGE,
        "outcome": "promoted",
        "score": 100.0,
        "reason": result["reason"],
        "headline": result["headline"],
    }
    assert result["headline"].startswith("promoted: ")
    assert "reaches the pass threshold 95" in result["reason"]


def test_good_canary_calls_in_order(promoted):
    env, _ = promoted
    app = env.app
    # each look: the split read back, then (after the metrics) both tracks' readiness, what
    # the router carries at the look and the platform's restarts (the report shows both)
    per_window = [("read_weights", app), ("serving", app, "baseline"), ("serving", app, "canary"),
                  ("read_weights", app), ("restarts", app)]  # fmt: skip
    assert platform_calls(env) == [
        ("production_commit", app),  # the release's turn: not older than production
        ("reconcile", app),
        ("production_image", app),
        ("set_weights", app, Weights(100, 0, 0)),  # pinned before the tracks exist, read back
        ("read_weights", app),
        ("deploy", app, "baseline", PRODUCTION),  # the baseline runs production's image
        ("deploy", app, "canary", IMAGE),
        ("wait_ready", app, "baseline", 7.0),
        ("wait_ready", app, "canary", 7.0),
        ("set_weights", app, Weights(80, 10, 10)),
        *per_window,
        ("set_weights", app, Weights(60, 20, 20)),
        *per_window,
        ("set_weights", app, Weights(60, 20, 20)),
        *per_window,  # past the last step it holds
        ("promote", app, IMAGE),
        *expected_cleanup(app),
        ("production_image", app),  # the outcome is what production runs, read back
    ]


def test_good_canary_fetches_each_window_after_it_closed(promoted):
    env, _ = promoted
    names = [c[0] if c[0] != "fetch_pair" else f"fetch:{c[1]}" for c in env.rec.calls]
    window = (["set_weights", "read_weights"] + [f"fetch:{m}" for m in METRICS]
              + ["counter_increase", "counter_increase", "serving", "serving", "read_weights",
                 "restarts"])  # fmt: skip
    # the first look waits until both tracks' requests are visible (one poll here: the fake
    # store shows them at once), then every look: traffic first, then the data
    wait = ["counter_increase", "counter_increase"]
    expected = window[:2] + wait + window[2:] + window * 2
    first = names.index("set_weights", names.index("wait_ready"))  # after the pin: the looks
    assert names[first : first + len(expected)] == expected
    fetches = env.rec.named("fetch_pair")
    ends = []
    for _, _, control, experiment, when in fetches:
        assert (control.scope, experiment.scope) == ("baseline", "canary")
        assert dict(experiment.extended_scope_params) == {"rate_window": "5s"}
        assert experiment.step == control.step == 1
        assert (control.start, control.end) == (experiment.start, experiment.end)
        assert when >= experiment.end, "fetched before the window's data existed"
        ends.append(experiment.end)
    starts = {c[3].start for c in fetches}
    assert len(starts) == 1  # growing windows from one origin
    distinct_ends = sorted(set(ends))
    assert [e - distinct_ends[0] for e in distinct_ends] == [
        timedelta(0),
        timedelta(seconds=1),
        timedelta(seconds=2),
    ]
    assert distinct_ends[0] - starts.pop() == timedelta(seconds=1)


def test_good_canary_emits_promoted_event(promoted):
    env, state = promoted
    found = api.events("canary.release.promoted", env.app)
    assert len(found) == 1
    event = found[0]
    assert event.resource.id == "canary.app.gg-good" and event.resource["app"] == "gg-good"
    assert {k: event.payload[k] for k in ("image", "commit", "score", "judgements")} == {
        "image": IMAGE,
        "commit": COMMIT,
        "score": 100.0,
        "judgements": 3,
    }
    related = {r.id for r in event.related}
    assert f"prefect.flow-run.{flow_run_id(state)}" in related
    assert api.events("canary.release.rolled-back", env.app, at_least=0) == []


def test_good_canary_emits_its_start_and_each_look_for_the_release_metrics(promoted):
    """canary.release.started once it holds the lock; canary.release.look per look with the
    shares the router read back and each metric's numbers (the relay's /metrics reads them)."""
    env, state = promoted
    (started,) = api.events("canary.release.started", env.app)
    assert {k: started.payload[k] for k in ("commit", "lifetime_seconds")} == {"commit": COMMIT,
                                                                              "lifetime_seconds": 3.0}
    looks = api.events("canary.release.look", env.app, at_least=3)
    assert started.occurred <= looks[0].occurred
    assert [e.payload["look"] for e in looks] == [1, 2, 3]
    assert {e.payload["looks"] for e in looks} == {3}
    shares = [(e.payload["primary"], e.payload["baseline"], e.payload["canary"]) for e in looks]
    assert shares[0] == (80, 10, 10) and shares[-1] == (60, 20, 20)
    assert [e.payload["action"] for e in looks] == ["continue", "continue", "promote"]
    for event in looks:
        metrics = {m["metric"]: m for m in event.payload["metrics"]}
        assert sorted(metrics) == sorted(METRICS)
        assert {m["classification"] for m in metrics.values()} == {"Pass"}
        full = [m for m in metrics.values() if None not in (m["estimate"], m["lower"], m["upper"])]
        assert full, metrics  # the rank test's shift with its interval, at least
        for m in full:
            assert m["lower"] <= m["estimate"] <= m["upper"]
            assert m["threshold"] is not None


def test_good_canary_artifacts(promoted):
    env, state = promoted
    run_id = flow_run_id(state)
    tables = api.artifacts_of(run_id, "table")
    assert [a.key for a in tables] == ["canary-interval-gg-good"] * 3
    for index, table in enumerate(tables, start=1):
        rows = api.table_rows(table)
        metrics = [r for r in rows if not r["metric"].startswith("guard:") and r["metric"] != "decision"]
        assert sorted(r["metric"] for r in metrics) == sorted(METRICS)
        assert {r["look"] for r in rows} == {index}
        assert {r["result"] for r in metrics} == {"Pass"}
        guards = {r["metric"]: r["result"] for r in rows if r["metric"].startswith("guard:")}
        assert guards == {"guard: readiness": "Pass", "guard: traffic": "Pass", "guard: split": "Pass"}
        decision = [r for r in rows if r["metric"] == "decision"]
        assert [d["result"] for d in decision] == ["continue" if index < 3 else "promote"]
        assert next(r for r in metrics if r["metric"] == "error-ratio")["role"] == "critical"
    bars = api.artifacts_of(run_id, "progress")
    assert [a.key for a in bars] == ["canary-progress-gg-good"]
    assert bars[0].data == 100.0
    text = report(state, env.app)
    assert "**promoted**" in text and COMMIT in text and IMAGE in text
    assert "- baseline removed" in text and "- routes restored" in text
    assert "FAILED" not in text


# -- a bad canary -------------------------------------------------------------------------


def test_bad_canary_is_rolled_back_after_first_judgement(make_env):
    env = make_env("gg-bad", bad=LATENCY)
    state = run(env)
    result = released(state)
    assert state.name == "RolledBack" and state.is_failed()
    assert result["outcome"] == "rolled-back" and result["score"] == 50.0
    assert state.message.startswith("rolled back: latency-p")
    assert "at or below the marginal threshold 75" in result["reason"]
    assert env.rec.count("promote") == 0
    assert env.rec.count("fetch_pair") == len(METRICS)  # one window only: fail fast
    assert env.rec.named("set_weights") == [("set_weights", env.app, Weights(100, 0, 0)),
                                            ("set_weights", env.app, Weights(80, 10, 10))]
    assert cleanup_calls(env) == cleanup_and_read_back(env)

    runs = api.task_runs(flow_run_id(state), until=api.finished(f"cleanup-routes-{env.app}"))
    judged = sorted(name for name in runs if name.startswith("judge-interval"))
    assert judged == ["judge-interval-1"]
    tables = api.artifacts_of(flow_run_id(state), "table")
    assert len(tables) == 1
    rows = {r["metric"]: r["result"] for r in api.table_rows(tables[0])}
    assert rows["latency-p50"] == rows["latency-p99"] == "High"

    event = api.events("canary.release.rolled-back", env.app)[0]
    assert event.payload["score"] == 50.0 and event.payload["judgements"] == 1
    text = report(state, env.app)
    assert "**rolled-back**" in text and "High" in text
    assert api.events("canary.release.promoted", env.app, at_least=0) == []


# -- retries ------------------------------------------------------------------------------


def test_transient_deploy_error_is_retried(make_env):
    env = make_env("gg-retry", lifetime="1s")
    env.rec.fail("deploy:baseline", lambda: PlatformError("apiserver 503", transient=True), times=2)
    state = run(env)
    assert released(state)["outcome"] == "promoted"
    deploys = env.rec.named("deploy")
    assert [c[2] for c in deploys] == ["baseline", "baseline", "baseline", "canary"]
    name = f"deploy-{env.app}"  # both tracks in one task run: the canary once, after the retries
    runs = api.task_runs(flow_run_id(state), until=lambda r: name in r and r[name].run_count == 3)
    assert runs[name].run_count == 3 and runs[name].state.is_completed()


def test_default_retry_delays():
    """The tests run with 0 s delays; the real tasks wait 2, 4, 8 s (with 20 % jitter)."""
    for task in (DEPLOY_TRACKS, OBSERVE):
        assert task.retries == 3
        assert task.retry_delay_seconds == [2, 4, 8]
        assert task.retry_jitter_factor == 0.2
        assert task.retry_condition_fn is only_transient


@pytest.mark.parametrize(
    ("key", "error", "calls"),
    [
        (
            "wait_ready:canary",
            lambda: ConfigError("image registry.test/new is not runnable"),
            "wait_ready",
        ),
        ("deploy:canary", lambda: PlatformError("quota exceeded for canary"), "deploy"),
        ("fetch_pair", lambda: ConfigError("query rejected: bad PromQL"), "fetch_pair"),
    ],
    ids=["config-error-wait-ready", "permanent-platform-error-deploy", "config-error-fetch"],
)
def test_permanent_error_is_not_retried_and_cleanup_runs(make_env, key, error, calls):
    env = make_env(f"gg-perm-{calls.replace('_', '-')}")
    env.rec.fail(key, error, times=None)
    state = run(env)
    exc = failure(state)
    assert type(exc) is type(error()) and str(exc) == str(error())
    failing = [c for c in env.rec.named(calls) if key.partition(":")[2] in ("", c[2])]
    assert len(failing) == 1, f"retried a permanent error: {failing}"
    assert env.rec.count("promote") == 0
    assert cleanup_calls(env) == cleanup_and_read_back(env)
    event = api.events("canary.release.rolled-back", env.app)[0]
    assert str(error()) in event.payload["reason"]
    text = report(state, env.app)
    assert "**rolled-back**" in text and str(error()) in text


UNREACHABLE = ("Prometheus at http://prometheus.test:9090 is unreachable (latency-p50, timeout "
               "5s); the call may be retried")


def test_metrics_outage_beyond_retries_rolls_back_without_a_verdict(make_env):
    """Prometheus stays down: no verdict, so no score; told as a rollback, in words."""
    env = make_env("gg-outage")
    env.rec.fail("fetch_pair", lambda: MetricsError(UNREACHABLE, transient=True), times=None)
    state = run(env)
    result = released(state)
    assert state.name == "RolledBack" and state.is_failed()
    assert result["outcome"] == "rolled-back" and result["score"] is None
    assert result["reason"].startswith("no verdict: look 1 of 3 could not be made: Prometheus at")
    assert state.message.startswith("rolled back: no verdict: ")
    assert "Prometheus at http://prometheus.test:9090 is unreachable" in result["reason"]
    assert "may be retried" not in result["reason"]
    assert env.rec.count("fetch_pair") == 4  # the first try and 3 retries
    assert env.rec.count("promote") == 0
    assert cleanup_calls(env) == cleanup_and_read_back(env)
    event = api.events("canary.release.rolled-back", env.app)[0]
    assert event.payload["judgements"] == 0 and event.payload["score"] is None
    assert "is unreachable" in event.payload["reason"]


def test_metrics_outage_after_a_look_carries_no_score(make_env):
    """A look judged, then Prometheus goes down: the earlier look's score is not the verdict."""
    env = make_env("gg-outage-late")
    fetches = len(METRICS)
    env.rec.fail("fetch_pair", lambda: MetricsError(UNREACHABLE, transient=True), times=None,
                 after=fetches)  # fmt: skip
    state = run(env)
    result = released(state)
    assert state.name == "RolledBack" and result["score"] is None
    assert "look 2 of 3 could not be made" in result["reason"]
    event = api.events("canary.release.rolled-back", env.app)[0]
    assert event.payload["judgements"] == 1 and event.payload["score"] is None


def test_a_rolled_back_run_resolves_without_a_type_error(make_env):
    """How a worker runs a release (prefect.engine: run_flow with the run's logger): the
    run's data resolves into a ReleaseNotPromoted, so the log never shows "TypeError:
    Unexpected result for failed state: {...} —— dict cannot be resolved into an exception"."""
    import logging

    from prefect.flow_engine import run_flow
    from prefect.states import get_state_exception

    from canary.analysis.ending import ReleaseNotPromoted

    class Kept(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.records: list[logging.LogRecord] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.records.append(record)

    kept, logger = Kept(), logging.getLogger("tests.flows.release-run")
    logger.addHandler(kept)
    env = make_env("gg-no-type-error", bad=LATENCY)
    try:
        with pytest.raises(ReleaseNotPromoted) as caught:
            run_flow(release_flow.canary_release, parameters=env.release_args(),
                     error_logger=logger)  # fmt: skip
    finally:
        logger.removeHandler(kept)
    assert caught.value.result["outcome"] == "rolled-back" and caught.value.result["score"] == 50.0
    errors = [r for r in kept.records if r.exc_info is not None]
    assert all(isinstance(r.exc_info[1], ReleaseNotPromoted) for r in errors), errors
    state = run(make_env("gg-no-type-error-2", bad=LATENCY))
    exc = get_state_exception(state)
    assert isinstance(exc, ReleaseNotPromoted) and str(exc) == state.message
    assert str(exc).startswith("rolled back: ")


# -- cleanup ------------------------------------------------------------------------------


def test_failed_cleanup_step_does_not_stop_later_steps(make_env):
    env = make_env("gg-cleanup", bad=LATENCY)
    env.rec.fail(
        "remove:baseline", lambda: PlatformError("forbidden: delete deployment"), times=None
    )
    state = run(env)
    exc = failure(state)
    assert isinstance(exc, PlatformError) and "forbidden" in str(exc)
    assert cleanup_calls(env) == cleanup_and_read_back(env)  # canary removed, routes restored
    text = report(state, env.app)
    assert "- FAILED: baseline removed: forbidden: delete deployment" in text
    assert "- canary removed" in text and "- routes restored" in text
    assert api.events("canary.release.rolled-back", env.app)


# -- refusals before anything is touched --------------------------------------------------


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"app": "Bad_App"}, "app 'Bad_App'"),
        ({"app": "-leading-dash"}, "app '-leading-dash'"),
        ({"commit": "abc1234"}, "commit 'abc1234'"),
        ({"commit": "g" * 40}, "commit '" + "g" * 40 + "'"),
    ],
)
def test_invalid_input_is_refused_before_any_platform_call(make_env, override, named):
    env = make_env("gg-valid")
    with pytest.raises(ConfigError, match=named):
        release_flow.canary_release(**env.release_args(**override))
    assert env.rec.calls == [] and env.loaded == []


def test_no_production_deploys_nothing(make_env):
    env = make_env("gg-noprod", production=None)
    with pytest.raises(ConfigError, match="gg-noprod has no production deployment"):
        release_flow.canary_release(**env.release_args())
    calls = env.rec.calls
    assert calls[:3] == [("production_commit", env.app), ("reconcile", env.app),
                         ("production_image", env.app)]
    assert not [c for c in calls if c[0] in ("deploy", "promote", "set_weights")], calls
    # Cleanup still ran (idempotent, nothing to remove), so the end is reported like any other.
    assert ("rollback", env.app) in calls


# -- traffic read back --------------------------------------------------------------------


def test_traffic_not_in_force_is_not_judged(make_env):
    env = make_env("gg-stuck", ignore_weights=True, lifetime="1s")
    state = run(env)
    assert env.rec.count("promote") == 0
    assert state.is_failed()
