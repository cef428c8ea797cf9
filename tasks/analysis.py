"""Tasks of the analysis: observe one window (series, counts, request counters), judge it
(canary.analysis.look) and publish its table, wait for the next. Only observing retries."""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE

from canary.analysis.look import Earlier, LookPlan, Observation, assess
from canary.analysis.planning import LookSchedule, describe, plan_config
from canary.analysis.windows import JudgementWindow
from canary.config import CanaryConfig
from canary.config.release import ReleaseSpec, Scopes
from canary.errors import CanaryError, MetricsError
from canary.metrics.collect import (
    collect_counts,
    collect_pairs,
    count_requests,
    production_counts,
    request_counter,
    unseen_tracks,
)
from canary.ports import MetricSource
from canary.report import JudgementRecord
from canary.values.carried import LookTraffic
from canary.values.scope import MetricScope, scope_pair
from store.artifacts import publish_interval
from tasks._retry import RETRYING


def _window_scopes(scopes: Scopes, window: JudgementWindow) -> tuple[MetricScope, MetricScope]:
    """Control and experiment scopes of one judgement window.

    Args:
        scopes: The release's scopes.
        window: The window.

    Returns:
        (control, experiment), the control moved earlier by the window's control offset.
    """
    return scope_pair(
        baseline=scopes.control, canary=scopes.experiment, start=window.experiment_start,
        end=window.experiment_end, step=int(window.step.total_seconds()),
        location=scopes.location, extended_scope_params=scopes.extended_scope_params,
        control_offset=window.experiment_start - window.control_start,
    )  # fmt: skip


@task(name="observe", task_run_name="observe-{window.index}", cache_policy=NO_CACHE, **RETRYING)
def observe(source: MetricSource, config: CanaryConfig, scopes: Scopes, window: JudgementWindow,
            *, requests: bool = True) -> Observation:  # fmt: skip
    """One look's data in one pass: series, counts and the request counters (for the
    guards), over the window's scopes, built once. Retried as a whole on transient errors.

    Args:
        source: The metric store.
        config: The canary config (its metrics and request counter).
        scopes: The release's scopes.
        window: The look's window.
        requests: Whether to count the requests (only guarded looks need them).

    Returns:
        The observation.
    """
    control, experiment = _window_scopes(scopes, window)
    return Observation(
        window=window, pairs=tuple(collect_pairs(source, config, control, experiment)),
        counts=tuple(collect_counts(source, config, control, experiment)),
        requests=count_requests(source, config, control, experiment) if requests else None,
    )  # fmt: skip


@task(name="wait-for-metrics", task_run_name="wait-for-metrics-{app}", cache_policy=NO_CACHE)
def wait_for_requests(source: MetricSource, config: CanaryConfig, scopes: Scopes, app: str, since: datetime,
                      timeout_seconds: float, every: float = 0.5,
                      stop: Callable[[], str | None] | None = None) -> float:  # fmt: skip
    """Poll until Prometheus shows requests of both tracks since `since` (the first traffic
    shift), so the first look never judges a track that is not scraped yet. Returns the
    seconds waited (0 without a request counter: then only readiness guards the looks).

    `stop()` is asked every poll: a reason (e.g. "the canary process is not running") ends
    the wait at once, so the first look comes without delay and its readiness guard rolls
    back with that reason. Raises MetricsError, naming the tracks and the counter, when they
    stay unseen for `timeout_seconds`: the release then fails closed, with that reason.

    Args:
        source: The metric store.
        config: The canary config (its request counter).
        scopes: The release's scopes.
        app: The app released.
        since: The first traffic shift.
        timeout_seconds: How long to wait.
        every: Seconds between polls.
        stop: Asked every poll; a reason ends the wait at once.

    Returns:
        The seconds waited.

    Raises:
        MetricsError: The tracks' requests stayed invisible for `timeout_seconds`.
    """
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


@task(name="judge-interval", task_run_name="judge-interval-{observation.window.index}",
      cache_policy=NO_CACHE)  # fmt: skip
def judge_look(observation: Observation, plan: LookPlan, *, canary_share: int,
               readiness: dict[str, str | None] | None = None,
               earlier: Earlier | None = None, traffic: LookTraffic | None = None,
               table_of: str | None = None) -> tuple[JudgementRecord, Earlier]:  # fmt: skip
    """One look assessed (canary.analysis.look.assess), as the report remembers it, and
    its table published from this task run (store.artifacts.publish_interval) when
    `table_of` names the app: the table then sits under the run's "Task runs" with no task
    run of its own.

    Never retried: a judgement is deterministic, repeating it cannot change the verdict.

    Args:
        observation: The look's data.
        plan: How the analysis judges and decides.
        canary_share: The canary's share of the traffic at the look, in percent.
        readiness: Each track's readiness at the look (guarded plans only).
        earlier: What the looks before saw.
        traffic: The split planned and carried at the look, and the restarts (kept for the
            report; the judgement does not read it).
        table_of: The app whose look table to publish (None: the caller publishes).

    Returns:
        The look's record, and the memory the next look starts from.
    """
    found = assess(observation, plan, readiness=readiness, earlier=earlier)
    window = observation.window
    record = JudgementRecord(index=window.index, window_start=window.experiment_start,
                             window_end=window.experiment_end, canary_share=canary_share,
                             judgement=found.judgement, decision=found.decision,
                             traffic=traffic)  # fmt: skip
    if table_of is not None:
        publish_interval(table_of, record)
    return record, found.earlier


def graph_links(source: MetricSource, config: CanaryConfig, scopes: Scopes, window: JudgementWindow) -> list[tuple[str, str]]:
    """Each metric's link to its Prometheus graph of both sides over the window (a plain
    function, called in the release flow's run: URLs, no I/O, no task run).

    Args:
        source: The metric store (one with a ``graph_link`` draws them).
        config: The canary config.
        scopes: The release's scopes.
        window: The window drawn.

    Returns:
        (metric, link) pairs; none when the source cannot draw.
    """
    link = getattr(source, "graph_link", None)
    if link is None:
        return []
    control, experiment = _window_scopes(scopes, window)
    return [(m.name, link(m, config.templates, control, experiment)) for m in config.metrics
            if m.is_prometheus]  # fmt: skip


def give_back_free_memory() -> bool:
    """Return the heap's free pages to the system (glibc's malloc_trim; ~2 ms).

    The plan's simulations make and free tens of MiB of arrays in the task's thread; glibc
    keeps such freed memory for reuse (its mmap threshold rises to the largest block freed),
    so the release's process held ~24 MiB it no longer used to its end (bench/plan_cost.py's
    plan in a thread: 24 MiB kept, none after a trim). A fixed, low mmap threshold would
    return it too, but made the plan ~0.8 CPU-s dearer (every array a fresh mapping).

    Returns:
        Whether anything was given back (False without glibc).
    """
    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return False


@task(name="plan-canary", task_run_name="plan-canary-{spec.app}", cache_policy=NO_CACHE)
def plan_canary(source: MetricSource, spec: ReleaseSpec, config: CanaryConfig, window_seconds: float = 600.0,
                seed: int = 0) -> list[str]:  # fmt: skip
    """How long this canary must run to catch each metric's minEffect, from production's
    traffic over the last window (canary.analysis.planning), as lines for the report.

    Never fails the release: a plan is advice, and the analysis fails closed on its own.

    Args:
        source: The metric store.
        spec: The release spec (its analysis plan, traffic steps, production scope).
        config: The canary config (its count metrics).
        window_seconds: How much of production's traffic to plan from.
        seed: The simulations' seed.

    Returns:
        The plan's lines (or why there is none).
    """
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
    finally:
        give_back_free_memory()
    return describe(plan)
