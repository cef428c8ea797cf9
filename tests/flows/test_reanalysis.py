"""The canary-reanalysis flow with the default (count-based) config, on the fakes: a past
window judged again on its request counts, once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import flows.reanalysis as reanalysis_flow
from tests.flows.conftest import METRICS, install


def _run(env, **kw):
    end = datetime.now(UTC)
    return reanalysis_flow.canary_reanalysis(
        app=env.app, mode="window", config=str(env.spec), metrics=METRICS,
        start=end - timedelta(seconds=60), end=end, **kw,
    )  # fmt: skip


def test_window_reanalysis_judges_counts(tmp_path, monkeypatch):
    env = install(monkeypatch, tmp_path, "re-good", sequential=True)
    result = _run(env)
    assert result["outcome"] == "verified" and result["score"] == 100.0, result
    assert env.rec.count("fetch_counts_pair") == 2  # error-rate and latency, one look


def test_window_reanalysis_finds_a_regression_in_the_counts(tmp_path, monkeypatch):
    env = install(monkeypatch, tmp_path, "re-bad", sequential=True, bad=("error-rate",))
    result = _run(env)
    assert result["outcome"] == "regressed" and result["score"] == 0.0, result


def test_a_window_without_requests_is_no_data_and_never_a_regression(tmp_path, monkeypatch):
    """Production served nothing (a quiet night): the re-analysis says "no data", not
    "regressed", and emits no canary.reanalysis.regressed, so the restore automation that
    event starts cannot fire. Then a window with data and a real regression emits exactly
    one event: the barrier that shows the first run emitted none."""
    from tests.flows import api

    env = install(monkeypatch, tmp_path, "re-quiet", sequential=True)
    monkeypatch.setattr(env.source, "_requests", lambda scope: 0.0)
    quiet = _run(env)
    assert quiet["outcome"] == "no data" and quiet["verdict"] == "no data", quiet
    assert quiet["score"] is None and "no requests" in str(quiet["reason"]), quiet
    assert env.rec.count("counter_increase") == 2  # both sides' requests were counted
    monkeypatch.undo()
    env = install(monkeypatch, tmp_path, "re-quiet", sequential=True, bad=("error-rate",))
    regressed = _run(env)
    assert regressed["outcome"] == "regressed", regressed
    (event,) = api.events("canary.reanalysis.regressed", "re-quiet")
    started = datetime.fromisoformat(event.payload["start"].replace("Z", "+00:00"))
    assert started == datetime.fromisoformat(regressed["start"]), (event.payload, regressed)
    assert event.payload["outcome"] == "regressed"
    assert event.payload["reason"] == regressed["reason"]


def test_a_regressed_event_cannot_carry_another_outcome() -> None:
    import pytest

    from canary.values.events import ReanalysisRegressed

    with pytest.raises(ValueError):
        ReanalysisRegressed.model_validate({"app": "a", "mode": "post-promotion",
                                            "verdict": "no data", "outcome": "no data"})  # fmt: skip


def test_post_promotion_control_ends_before_the_canary_phase(tmp_path, monkeypatch):
    """Like with like: production before the canary began (all traffic), not a window that
    ends inside the canary phase, when production carried only part of the traffic."""
    from prefect.events import emit_event
    from prefect.events.worker import EventsWorker

    from tests.flows import api

    env = install(monkeypatch, tmp_path, "re-post", sequential=True)
    began = datetime.now(UTC) - timedelta(seconds=120)  # the release split traffic here
    window_start = began + timedelta(seconds=0)  # the test spec's begin_after is 0 s
    emit_event(event="canary.release.promoted", occurred=began + timedelta(seconds=60),
               resource={"prefect.resource.id": "canary.app.re-post", "app": "re-post"},
               payload={"image": "img:new", "previous_image": "img:old", "commit": "c" * 40,
                        "window_start": window_start.isoformat(),
                        "window_end": (began + timedelta(seconds=60)).isoformat()})  # fmt: skip
    EventsWorker.drain_all()
    api.events("canary.release.promoted", "re-post")  # stored before the flow looks
    result = reanalysis_flow.canary_reanalysis(app=env.app, config=str(env.spec), metrics=METRICS,
                                               window_minutes=1)  # fmt: skip
    assert result["outcome"] == "verified", result
    (_, _, control, experiment, _) = env.rec.named("fetch_counts_pair")[0]
    assert abs((control.end - began).total_seconds()) < 1, (control.end, began)
    assert experiment.scope == control.scope == "primary"
    assert (experiment.end - experiment.start) == (control.end - control.start)
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            name=FlowRunFilterName(like_="canary-reanalysis-re-post-")))  # fmt: skip
    assert runs and runs[0].name.endswith("-utc") and "-to-" in runs[0].name  # named by window
    report = api.artifacts_of(runs[0].id, "markdown")[0].data
    assert "commit `" + "c" * 40 + "`" in report and "earlier" in report


def test_without_an_app_every_released_app_is_reanalysed_and_one_failure_stops_none(
        tmp_path, monkeypatch):  # fmt: skip
    """The scheduled deployment names no app: each app with a release history gets its own
    subflow run; an app whose spec is missing fails that run at the end, naming it, after
    the others were judged."""
    import pytest

    env = install(monkeypatch, tmp_path, "re-fan", sequential=True)

    monkeypatch.setattr(reanalysis_flow, "find_released_apps", lambda: ["re-fan", "re-fan-nospec"])
    end = datetime.now(UTC)
    template = str(env.spec.parent / "{app}.yaml")
    with pytest.raises(RuntimeError, match=r"re-analysis failed for re-fan-nospec: ConfigError"):
        reanalysis_flow.canary_reanalysis(config=template, metrics=METRICS, mode="post-promotion",
                                          end=end)  # fmt: skip
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    with get_client(sync_client=True) as client:
        names = {r.name: r for r in client.read_flow_runs(flow_run_filter=FlowRunFilter(
            name=FlowRunFilterName(like_="canary-reanalysis-re-fan")))}  # fmt: skip
        parents = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            name=FlowRunFilterName(like_="canary-reanalysis-every-app")))  # fmt: skip
    # re-fan has no promotion in this server's history: its run ends saying so, Completed
    assert names["canary-reanalysis-re-fan-post-promotion"].state.is_completed()
    assert names["canary-reanalysis-re-fan-nospec-post-promotion"].state.is_failed()
    assert parents and parents[0].state.is_failed()


def test_released_apps_are_found_from_the_event_history() -> None:
    from prefect.events import emit_event
    from prefect.events.worker import EventsWorker

    from tasks.history import find_released_apps

    for app, event in [("hist-a", "canary.release.promoted"), ("hist-b", "canary.release.rolled-back"),
                       ("hist-c", "canary.production.restored")]:  # fmt: skip
        emit_event(event=event, resource={"prefect.resource.id": f"canary.app.{app}", "app": app})
    emit_event(event="canary.build.succeeded",  # a build alone is no release history
               resource={"prefect.resource.id": "canary.app.hist-built-only", "app": "hist-built-only"})
    EventsWorker.drain_all()
    from tests.support.polling import poll

    found = poll("the released apps in the event history",
                 lambda: (lambda f: f if {"hist-a", "hist-b", "hist-c"} <= set(f) else None)(
                     find_released_apps.fn()), timeout=30)  # fmt: skip
    assert "hist-built-only" not in found and found == sorted(found)
