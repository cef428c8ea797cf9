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
