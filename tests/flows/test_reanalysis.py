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
