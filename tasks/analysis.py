"""Tasks of the analysis: fetch one window's series and counts, judge them. Only fetching
retries."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE

from canary.analysis.planning import LookSchedule, describe, plan_config
from canary.analysis.windows import JudgementWindow
from canary.config import CanaryConfig, Thresholds
from canary.config.release import ReleaseSpec, Scopes
from canary.errors import CanaryError, MetricsError
from canary.judge import IntervalJudgement, judge
from canary.judge.guards import GuardResult
from canary.metrics.collect import (
    collect_counts,
    collect_pairs,
    count_requests,
    production_counts,
    request_counter,
    unseen_tracks,
)
from canary.values.counts import CountsPair
from canary.values.scope import MetricScope, scope_pair
from canary.values.series import MetricPair
from tasks._retry import RETRYING


def window_scopes(scopes: Scopes, window: JudgementWindow) -> tuple[MetricScope, MetricScope]:
    """Control and experiment scopes of one judgement window."""
    return scope_pair(
        baseline=scopes.control, canary=scopes.experiment, start=window.experiment_start,
        end=window.experiment_end, step=int(window.step.total_seconds()),
        location=scopes.location, extended_scope_params=scopes.extended_scope_params,
        control_offset=window.experiment_start - window.control_start,
    )  # fmt: skip


@task(name="fetch-metrics", task_run_name="fetch-metrics-{window.index}",
      cache_policy=NO_CACHE, **RETRYING)  # fmt: skip
def fetch_metrics(
    source: Any, config: CanaryConfig, scopes: Scopes, window: JudgementWindow
) -> list[MetricPair]:
    control, experiment = window_scopes(scopes, window)
    return collect_pairs(source, config, control, experiment)


@task(name="fetch-counts", task_run_name="fetch-counts-{window.index}",
      cache_policy=NO_CACHE, **RETRYING)  # fmt: skip
def fetch_counts(
    source: Any, config: CanaryConfig, scopes: Scopes, window: JudgementWindow
) -> list[CountsPair]:
    """The count metrics' counts over the window (since the analysis began)."""
    control, experiment = window_scopes(scopes, window)
    return collect_counts(source, config, control, experiment)


@task(name="count-requests", task_run_name="count-requests-{window.index}",
      cache_policy=NO_CACHE, **RETRYING)  # fmt: skip
def fetch_request_counts(
    source: Any, config: CanaryConfig, scopes: Scopes, window: JudgementWindow
) -> tuple[float, float] | None:
    """(baseline, canary) requests over the window, for the guards; None without a counter."""
    control, experiment = window_scopes(scopes, window)
    return count_requests(source, config, control, experiment)


@task(name="wait-for-metrics", task_run_name="wait-for-metrics-{app}", cache_policy=NO_CACHE)
def wait_for_requests(source: Any, config: CanaryConfig, scopes: Scopes, app: str, since: datetime,
                      timeout_seconds: float, every: float = 0.5,
                      stop: Callable[[], str | None] | None = None) -> float:  # fmt: skip
    """Poll until Prometheus shows requests of both tracks since `since` (the first traffic
    shift), so the first look never judges a track that is not scraped yet. Returns the
    seconds waited (0 without a request counter: then only readiness guards the looks).

    `stop()` is asked every poll: a reason (e.g. "the canary process is not running") ends
    the wait at once, so the first look comes without delay and its readiness guard rolls
    back with that reason. Raises MetricsError, naming the tracks and the counter, when they
    stay unseen for `timeout_seconds`: the release then fails closed, with that reason."""
    began = time.monotonic()
    deadline = began + timeout_seconds
    last: MetricsError | None = None
    while True:
        control, experiment = scope_pair(
            baseline=scopes.control, canary=scopes.experiment, start=since,
            end=max(datetime.now(UTC), since + timedelta(milliseconds=1)), step=1,
            location=scopes.location, extended_scope_params=scopes.extended_scope_params,
        )  # fmt: skip
        try:
            unseen = unseen_tracks(source, config, control, experiment)
            last = None
        except MetricsError as exc:
            if not exc.transient:
                raise
            unseen, last = [scopes.control, scopes.experiment], exc
        if unseen is None:
            return 0.0
        if not unseen or (stop is not None and stop() is not None):
            return time.monotonic() - began
        if time.monotonic() >= deadline:
            counter = request_counter(config)
            selector = counter[0] if counter else "-"
            why = f" (last error: {last})" if last else ""
            raise MetricsError(
                f"Prometheus showed no request of {' and '.join(unseen)} of {app} within "
                f"{timeout_seconds:g} s after traffic reached them (request counter "
                f"{selector}){why}: is the track scraped, and does the selector match its "
                "series? A canary is never judged before its requests are visible."
            )
        time.sleep(every)


@task(name="judge-interval", task_run_name="judge-interval-{index}", cache_policy=NO_CACHE)
def judge_interval(
    config: CanaryConfig,
    pairs: list[MetricPair],
    thresholds: Thresholds,
    index: int,
    counts: list[CountsPair] | None = None,
    guards: tuple[GuardResult, ...] = (),
    split: float | None = 0.5,
    history: list[list[CountsPair]] | None = None,
    planned_looks: int | None = None,
) -> IntervalJudgement:
    """Never retried: a judgement is deterministic, repeating it cannot change the verdict.

    `history`: the earlier looks' `counts`, oldest first; `planned_looks`: the release's
    number of looks (canary.judge.judge)."""
    return judge(config, pairs, thresholds=thresholds, counts=counts or (), guards=guards,
                 split=split, history=history or (), planned_looks=planned_looks)  # fmt: skip


@task(name="link-graphs", task_run_name="link-graphs-{window.index}", cache_policy=NO_CACHE)
def graph_links(source: Any, config: CanaryConfig, scopes: Scopes, window: JudgementWindow) -> list[tuple[str, str]]:
    """(metric, link to its Prometheus graph of both sides over the window), where the
    metric source can draw one."""
    link = getattr(source, "graph_link", None)
    if link is None:
        return []
    control, experiment = window_scopes(scopes, window)
    return [(m.name, link(m, config.templates, control, experiment)) for m in config.metrics
            if m.is_prometheus]  # fmt: skip


@task(name="plan-canary", task_run_name="plan-canary-{spec.app}", cache_policy=NO_CACHE)
def plan_canary(source: Any, spec: ReleaseSpec, config: CanaryConfig, window_seconds: float = 600.0,
                seed: int = 0) -> list[str]:  # fmt: skip
    """How long this canary must run to catch each metric's minEffect, from production's
    traffic over the last window (canary.analysis.planning), as lines for the report.

    Never fails the release: a plan is advice, and the analysis fails closed on its own."""
    now = datetime.now(UTC)
    try:
        production = production_counts(
            source, config, spec.scopes.production_scope(now - timedelta(seconds=window_seconds), now)
        )
        schedule = LookSchedule.from_plan(spec.analysis, spec.traffic.steps)
        plan = plan_config(config, schedule, production, window=window_seconds,
                           rng=np.random.default_rng(seed), simulations=200)  # fmt: skip
    except CanaryError as exc:
        return [f"no plan: production's counts could not be read ({exc})"]
    return describe(plan)
