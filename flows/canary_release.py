"""Flow `canary-release`: baseline + canary side by side, judged, promoted or rolled back.

Reads like the chain in DESIGN.md: take the app's release lock, repair leftovers of a
crashed release, deploy baseline (production's image) and canary (the new image), then per
judgement window shift traffic, wait for the window, check that both tracks serve, fetch,
judge and publish, and let canary.analysis.decision say stop, continue or promote; promote
or roll back; ALWAYS clean up.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.concurrency.sync import concurrency

from canary.analysis.decision import Action, Decision, decide
from canary.analysis.windows import judgement_windows
from canary.config import CanaryConfig
from canary.errors import ConfigError
from canary.judge.guards import evaluate_guards
from canary.release import ReleaseSpec, check_app_name, check_commit
from canary.report import JudgementRecord, markdown_report
from tasks import platform as p
from tasks.analysis import (
    fetch_counts,
    fetch_metrics,
    fetch_request_counts,
    judge_interval,
    plan_canary,
)
from tasks.judgement import ask_for_judgement
from tasks.publish import emit, progress, publish_interval, publish_report, start_progress
from tasks.setup import LOCK_LEASE_SECONDS, ensure_release_lock, load_block, load_release_spec
from tasks.waiting import wait_until

PROMOTED, ROLLED_BACK = "promoted", "rolled-back"


@flow(name="canary-release", flow_run_name="canary-release-{app}-{commit}")
def canary_release(
    app: str,
    image: str,
    commit: str,
    config: str | None = None,
    platform: str = "local-platform/local",
    metrics: str = "prometheus-source/local",
) -> dict[str, Any]:
    """Release `image` (built from `commit`) of `app` as a judged canary.

    `config` is the release spec (default deployments/releases/<app>.yaml); `platform`
    and `metrics` name the blocks to act on and to read metrics from.
    """
    logger = get_run_logger()
    app, commit = check_app_name(app), check_commit(commit)
    spec, canary_config = load_release_spec(config or f"deployments/releases/{app}.yaml", app)
    plat, source = load_block(platform), load_block(metrics).source()
    thresholds = spec.analysis.thresholds
    records: list[JudgementRecord] = []
    outcome, reason, production = ROLLED_BACK, "the release did not finish", None
    plan: list[str] = []

    # The lease is renewed while this run lives; if the process is killed the slot frees
    # itself after LOCK_LEASE_SECONDS, and the next release's reconcile repairs the rest.
    with concurrency(ensure_release_lock(app), occupy=1, strict=True,
                     lease_duration=LOCK_LEASE_SECONDS):  # fmt: skip
        failure: BaseException | None = None
        try:
            logger.info("leftovers of earlier releases repaired: %s", p.reconcile_app(plat, app))
            production = p.read_production_image(plat, app)
            if production is None:
                raise ConfigError(
                    f"{app} has no production deployment to compare against; deploy the first "
                    "version directly (the demo does: `python scripts/bootstrap_production.py`)"
                )
            if any(m.evidence != "series" for m in canary_config.metrics):
                plan = plan_canary(source, spec, canary_config)
                for line in plan:
                    logger.info("plan: %s", line)
            p.deploy_track(plat, app, "baseline", production)
            p.deploy_track(plat, app, "canary", image)
            p.wait_track_ready(plat, app, "baseline", spec.ready_timeout_seconds)
            p.wait_track_ready(plat, app, "canary", spec.ready_timeout_seconds)
            decision = _analyse(plat, source, spec, canary_config, app, commit, records)
            promote, reason = decision.action is Action.PROMOTE, decision.reason
            if not promote and spec.manual_judgement and decision.marginal:
                promote, reason = ask_for_judgement(
                    app, _last_score(records) or 0.0,
                    timeout_seconds=spec.manual_judgement_timeout_seconds)  # fmt: skip
            if promote:
                p.promote_image(plat, app, image)
                outcome = PROMOTED
        except BaseException as exc:
            failure, reason = exc, f"the release failed and was rolled back: {exc}"
            raise
        finally:
            cleanup, cleanup_error = _clean_up(plat, app)
            last = _last_score(records)
            publish_report(app, markdown_report(
                app=app, image=image, commit=commit, outcome=outcome, reason=reason,
                records=records, thresholds=thresholds, cleanup=cleanup, plan=plan,
            ), f"{app} {commit[:12]}: {outcome}")  # fmt: skip
            emit(f"canary.release.{outcome}", app, {
                "image": image, "commit": commit, "score": last, "reason": reason,
                "judgements": len(records), "previous_image": production,
                # analysis time until the decision (the windows grow from the analysis start)
                "decision_seconds": ((records[-1].window_end - records[-1].window_start)
                                     .total_seconds() if records else None),
                "window_start": records[0].window_start.isoformat() if records else None,
                "window_end": records[-1].window_end.isoformat() if records else None,
                "control_scope": spec.scopes.control, "experiment_scope": spec.scopes.experiment,
            })  # fmt: skip
            if cleanup_error is not None:
                if failure is None:
                    raise cleanup_error
                # The release's own failure stays the run's failure; cleanup's is attached.
                failure.add_note(f"and cleanup failed too: {cleanup_error!r}")
    logger.info("%s %s: %s (%s)", app, commit[:12], outcome, reason)
    return {"app": app, "commit": commit, "image": image, "outcome": outcome,
            "score": _last_score(records),
            "reason": reason}  # fmt: skip


def _last_score(records: list[JudgementRecord]) -> float | None:
    return records[-1].judgement.summary_score if records else None


def _analyse(plat: Any, source: Any, spec: ReleaseSpec, config: CanaryConfig, app: str,
             commit: str, records: list[JudgementRecord]) -> Decision:  # fmt: skip
    """Per window: shift traffic, wait, check both tracks, fetch, judge, publish, decide."""
    logger = get_run_logger()
    thresholds = spec.analysis.thresholds
    bar = start_progress(app, f"canary release of {app} at {commit[:12]}")
    start = datetime.now(UTC)
    windows = judgement_windows(spec.analysis, start=start)
    total = (windows[-1].not_before - start).total_seconds() or 1.0
    has_counts = any(m.evidence != "series" for m in config.metrics)
    previous = (0.0, 0.0)
    decision = Decision(Action.ROLL_BACK, "no judgement was made", True)
    for window in windows:
        weights = spec.traffic.weights(window.index)
        p.set_traffic(plat, app, weights)
        wait_until(window.not_before, tick=lambda: progress(
            bar, 100 * (datetime.now(UTC) - start).total_seconds() / total))  # fmt: skip
        pairs = fetch_metrics(source, config, spec.scopes, window)
        counts = fetch_counts(source, config, spec.scopes, window) if has_counts else []
        requests = fetch_request_counts(source, config, spec.scopes, window)
        guards = evaluate_guards(
            readiness=p.check_serving(plat, app), requests=requests, previous=previous,
            min_requests=config.guards.min_requests, split_alpha=config.guards.split_alpha,
        )  # fmt: skip
        previous = requests or previous
        result = judge_interval(config, pairs, thresholds, window.index, counts, guards)
        decision = decide(
            result, look=window.index, looks=len(windows),
            elapsed=window.experiment_end - window.experiment_start,
            min_analysis=spec.analysis.min_analysis,
        )  # fmt: skip
        record = JudgementRecord(
            index=window.index, window_start=window.experiment_start,
            window_end=window.experiment_end, canary_share=weights.canary, judgement=result,
            decision=decision,
        )  # fmt: skip
        records.append(record)
        publish_interval(app, record)
        logger.info("judgement %d/%d: score %s → %s; %s", window.index, len(windows),
                    result.summary_score, result.verdict.value, decision.reason)  # fmt: skip
        if decision.final:
            break
    progress(bar, 100.0)
    return decision


def _clean_up(plat: Any, app: str) -> tuple[list[str], BaseException | None]:
    """Roll traffic back first (read back), then remove both tracks, then restore routes.

    After a promotion "back" is the new production. Every step runs even if an earlier one
    failed; the first failure is returned for the flow to raise once the report is out, and
    the reconcile at the start of the next release finishes the job.
    """
    done: list[str] = []
    errors: list[BaseException] = []
    steps = [
        ("all traffic to production (read back)", lambda: p.roll_back_traffic(plat, app)),
        ("baseline removed", lambda: p.remove_track(plat, app, "baseline")),
        ("canary removed", lambda: p.remove_track(plat, app, "canary")),
        ("routes restored", lambda: p.restore_routes(plat, app)),
    ]
    for label, step in steps:
        try:
            step()
            done.append(label)
        except Exception as exc:  # keep cleaning; report below
            errors.append(exc)
            done.append(f"FAILED: {label}: {exc}")
    return done, (errors[0] if errors else None)
