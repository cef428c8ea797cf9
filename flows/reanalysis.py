"""Flow `canary-reanalysis`: re-judge a past window, after the fact.

Two modes:
- `post-promotion` (the scheduled default): the current production against production
  *before* the last promotion, the control window time-shifted to end when that release's
  canary phase began (Kayenta's control offset), so production then carried all of its
  traffic, like now. Catches regressions that appear only under full traffic.
- `window`: a recorded window (e.g. a past canary's, from its event payload) judged again,
  typically under a new canary config.
Both publish the same table and report artifacts as a release; a failing verdict emits
`canary.reanalysis.regressed` (payload: image now, previous image, score), which the
disabled-by-default automation `restore-production-on-regression` can act on. A window
without requests (or without data on both sides) is `no data`, never a regression: it
emits nothing (canary.analysis.reanalysis).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from prefect import flow, get_run_logger

from canary.analysis.look import LookPlan
from canary.analysis.reanalysis import Verification, verify
from canary.analysis.windows import JudgementWindow
from canary.appconfig import DEFAULT_SPEC
from canary.config import CanaryConfig
from canary.config.release import ReleaseSpec, Scopes
from canary.errors import ConfigError
from canary.ports import MetricSource
from canary.report import markdown_report
from canary.values.events import ReanalysisRegressed
from canary.values.release import check_app_name
from store.artifacts import publish_interval, publish_report
from store.blocks import load_block
from store.current import parameter, rename_run, run_id
from store.events import LastChange, emit
from store.turn import take_lock
from tasks.analysis import judge_look, observe
from tasks.history import find_released_apps, last_production_change
from tasks.setup import ensure_release_lock, load_release_spec


def _window_name(start: datetime, end: datetime) -> str:
    """A run name a person can tell apart: the window judged, in UTC."""
    return f"{start.astimezone(UTC):%Y%m%d-%H%M%S}-to-{end.astimezone(UTC):%H%M%S}-utc"


def _human(delta: timedelta) -> str:
    seconds = int(round(delta.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else (f"{minutes}m{secs:02d}s" if minutes else f"{secs}s")


def canary_began(promotion: LastChange, begin_after: timedelta) -> datetime:
    """When the promoted release first split traffic.

    Args:
        promotion: The last production change (tasks.history.last_production_change).
        begin_after: The analysis' warm-up.

    Returns:
        Its analysis began `begin_after` after that; without a recorded window, the
        promotion time (older events, and restores).
    """
    started = promotion["window_start"]
    return promotion["occurred"] if started is None else started - begin_after


def _run_name() -> str:
    """`canary-reanalysis-<app or every-app>-<mode>`."""
    app, mode = parameter("app"), parameter("mode")
    return f"canary-reanalysis-{app or 'every-app'}-{mode or 'post-promotion'}"


@dataclass(frozen=True)
class _Target:
    """What a re-analysis judges: the window, the control's offset, the scopes, and the
    promotion it verifies (post-promotion mode)."""

    start: datetime
    end: datetime
    offset: timedelta
    scopes: Scopes
    image: str | None = None
    previous_image: str | None = None
    commit: str | None = None


@flow(name="canary-reanalysis", flow_run_name=_run_name)
def canary_reanalysis(
    app: str | None = None,
    mode: Literal["post-promotion", "window"] = "post-promotion",
    config: str | None = None,
    metrics: str = "prometheus-source/local",
    window_minutes: float = 5.0,
    start: datetime | None = None,
    end: datetime | None = None,
    control_scope: str | None = None,
    experiment_scope: str | None = None,
    control_offset_seconds: float = 0.0,
) -> dict[str, object]:
    """Re-judge `app`'s production (or a recorded window); without `app`, every app with a
    release history, one subflow run each (one app's failure does not stop the others).

    Args:
        app: The app (None: every app with a release history).
        mode: ``post-promotion`` (production now against production before the last
            promotion) or ``window`` (a recorded window judged again).
        config: The release spec; may name the app as ``{app}``.
        metrics, window_minutes: The metric source block; how much of production to judge.
        start, end: The window (``window`` mode; ``end`` defaults to now otherwise).
        control_scope, experiment_scope, control_offset_seconds: The recorded window's
            scopes, and how much earlier its control window is (``window`` mode).

    Raises:
        ConfigError: A mode without what it needs.
    Returns:
        A summary: the verdict, the outcome (``verified`` / ``regressed`` / ``no data``),
        the score and the window judged; ``verdict`` None when there was nothing to judge
        (``no data`` when the window holds no requests).
    """
    logger = get_run_logger()
    if app is None:
        if mode != "post-promotion":
            raise ConfigError("mode 'window' judges one app's recorded window: name the app")
        return _every_app(config=config, metrics=metrics, window_minutes=window_minutes)
    app = check_app_name(app)
    # `config` may name the app as {app}: one template for every app of a fan-out
    spec, canary_config = load_release_spec((config or DEFAULT_SPEC).format(app=app), app)
    if mode == "post-promotion":
        target = _after_promotion(app, spec, end or datetime.now(UTC), window_minutes)
        if target is None:
            logger.info("%s has no promotion in the event history: nothing to verify", app)
            return {"app": app, "mode": mode, "verdict": None, "reason": "no promotion to verify"}
    elif mode == "window":
        if start is None or end is None:
            raise ConfigError("mode 'window' needs start and end (the recorded window)")
        target = _Target(start, end, timedelta(seconds=control_offset_seconds),
                         spec.scopes.model_copy(update={
                             "control": control_scope or spec.scopes.control,
                             "experiment": experiment_scope or spec.scopes.experiment}))  # fmt: skip
    else:
        raise ConfigError(f"mode must be 'post-promotion' or 'window', not {mode!r}")
    if target.end - target.start < 3 * spec.analysis.step:
        reason = (f"the window {target.start:%H:%M:%S}–{target.end:%H:%M:%S} is too short to "
                  "judge (< 3 steps)")  # fmt: skip
        logger.info(reason)
        return {"app": app, "mode": mode, "verdict": None, "reason": reason}
    return _reanalyse(app, mode, spec, canary_config, target, load_block(metrics).source())


def _after_promotion(app: str, spec: ReleaseSpec, end: datetime,
                     window_minutes: float) -> _Target | None:  # fmt: skip
    """The current production against production before the last promotion (None: no
    promotion), the control window ending when that release's canary phase began."""
    promotion = last_production_change(app)
    if promotion is None:
        return None
    promoted_at = promotion["occurred"]
    start = max(promoted_at + spec.analysis.begin_after, end - timedelta(minutes=window_minutes))
    offset = end - canary_began(promotion, spec.analysis.begin_after)
    scopes = spec.scopes.model_copy(update={
        "control": spec.scopes.production, "experiment": spec.scopes.production})  # fmt: skip
    return _Target(start, end, offset, scopes, image=promotion["image"],
                   previous_image=promotion["previous_image"],
                   commit=promotion["commit"])  # fmt: skip


def _reanalyse(app: str, mode: str, spec: ReleaseSpec, canary_config: CanaryConfig,
               target: _Target, source: MetricSource) -> dict[str, object]:  # fmt: skip
    """Observe and assess the target's window as one look (under the app's lock); publish."""
    start, end, offset = target.start, target.end, target.offset
    rename_run(f"canary-reanalysis-{app}-{_window_name(start, end)}")
    window = JudgementWindow(index=1, experiment_start=start, experiment_end=end,
                             control_start=start - offset, control_end=end - offset,
                             not_before=end, step=spec.analysis.step)  # fmt: skip
    # Under the app's lock: production's windows are not read while a canary changes it.
    with contextlib.ExitStack() as held:
        take_lock(app, ensure_release_lock(app), held, me=run_id())
        observation = observe(source, canary_config, target.scopes, window)
    # One look, two windows that need not carry equal traffic: count metrics are judged
    # against the observed share of requests (valid for a single look; docs/judge.md).
    looks = LookPlan.single(canary_config, window, thresholds=spec.analysis.thresholds, split=None)
    share = 100 if mode == "post-promotion" else 0  # production carried all of its traffic
    record, _ = judge_look(observation, looks, canary_share=share)
    record = replace(record, decision=None)  # a verdict on the past: nothing to decide
    result = record.judgement
    publish_interval(app, record, kind="canary-reanalysis")
    outcome, reason = verify(observation, result.summary_score, spec.analysis.thresholds)
    shifted = f"the control window is {_human(offset)} earlier" if offset else "same window"
    publish_report(app, markdown_report(
        app=app, image=target.image or "-", commit=target.commit or "(not recorded)",
        outcome=f"re-analysis ({mode}): {outcome.value}", reason=f"{reason}; {shifted}",
        records=[record], thresholds=spec.analysis.thresholds,
    ), f"{app} re-analysis ({mode}) of {_window_name(start, end)}: {outcome.value}",
        kind="canary-reanalysis")  # fmt: skip
    no_data = outcome is Verification.NO_DATA  # the judge's verdict on nothing says nothing
    summary: dict[str, object] = {"app": app, "mode": mode, "outcome": outcome.value,
               "verdict": outcome.value if no_data else result.verdict.value,
               "score": None if no_data else result.summary_score, "image": target.image,
               "previous_image": target.previous_image, "start": start.isoformat(),
               "end": end.isoformat(), "control_offset_seconds": offset.total_seconds()}  # fmt: skip
    if outcome is Verification.REGRESSED:  # never on no data: it may start a restore
        emit(ReanalysisRegressed.model_validate({**summary, "reason": reason}))
        get_run_logger().warning("%s regressed: %s", app, reason)
    else:
        get_run_logger().info("%s %s: %s", app, outcome.value, reason)
    summary["reason"] = reason
    return summary


def _every_app(*, config: str | None, metrics: str, window_minutes: float) -> dict[str, object]:
    """The post-promotion re-analysis of every app with a release history."""
    logger = get_run_logger()
    apps = find_released_apps()
    if not apps:
        logger.info("no app has a release in the event history: nothing to re-analyse")
    results: dict[str, dict[str, object]] = {}
    failed: dict[str, str] = {}
    for name in apps:
        try:
            results[name] = canary_reanalysis(app=name, config=config, metrics=metrics,
                                              window_minutes=window_minutes)  # fmt: skip
        except Exception as exc:  # the others still run; this run fails at the end
            failed[name] = f"{type(exc).__name__}: {exc}"
            logger.error("re-analysis of %s failed: %s", name, failed[name])
    regressed = sorted(a for a, r in results.items() if r.get("outcome") == Verification.REGRESSED.value)
    found = [r.get("outcome") for r in results.values()]
    logger.info("re-analysed %d app(s): %d verified, %d regressed%s, %d no data, %d failed",
                len(apps), found.count(Verification.VERIFIED.value), len(regressed),
                f" ({', '.join(regressed)})" if regressed else "",
                found.count(Verification.NO_DATA.value), len(failed))  # fmt: skip
    if failed:
        raise RuntimeError("re-analysis failed for " + "; ".join(f"{a}: {w}" for a, w in failed.items()))
    return {"apps": apps, "results": results, "regressed": regressed}
