"""Flow `canary-release`: baseline + canary side by side, judged, promoted or rolled back.

Reads like the chain in docs/architecture.md ("A release, module by module"): wait for
this release's turn (canary.queue: a newer commit supersedes it, a duplicate or a commit
older than production is never released), take the app's release lock, repair leftovers
of a crashed release, pin all traffic to production, deploy baseline (production's image)
and canary (the new image), then per judgement window shift traffic, wait for the window,
check that both tracks serve, fetch, judge and publish, and let canary.analysis.decision
say stop, continue or promote; promote or roll back; ALWAYS clean up.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.client.schemas.objects import State
from prefect.states import Cancelled, Completed, Failed

from canary.analysis.decision import Action, Decision, decide
from canary.analysis.windows import judgement_windows
from canary.cleanup import run_cleanup
from canary.config import CanaryConfig
from canary.config.release import ReleaseSpec
from canary.errors import ConfigError
from canary.judge.guards import evaluate_guards
from canary.queue import Candidate, Place, against_production, by_push_time
from canary.report import (
    JudgementRecord,
    explain_failing,
    failing_metrics,
    headline,
    markdown_report,
)
from canary.values.release import Release
from canary.values.weights import Weights
from tasks import platform as p
from tasks import runs
from tasks.analysis import (
    fetch_counts,
    fetch_metrics,
    fetch_request_counts,
    graph_links,
    judge_interval,
    plan_canary,
    wait_for_requests,
)
from tasks.commands import take as take_command
from tasks.history import find_last_promotion
from tasks.judgement import ask_for_judgement, ask_person
from tasks.publish import (
    emit,
    progress,
    publish_graph_links,
    publish_interval,
    publish_report,
    run_link,
    start_progress,
    tag_run,
)
from tasks.recovery import (
    describe_end,
    found_in_words,
    other_lock_takers,
    recover_release,
    spec_of_run,
)
from tasks.runs import candidate_for, current_flow_run
from tasks.setup import ensure_release_lock, load_block, load_release_config
from tasks.turn import wait_for_turn
from tasks.waiting import wait_until

PROMOTED, ROLLED_BACK, ABORTED = "promoted", "rolled-back", "aborted"
#: The state of a run that ended without releasing (superseded, a duplicate, older than
#: production): type Cancelled, named so that the crash automation does not react to it.
SKIPPED = "Skipped"


def _on_bad_end(flow: Any, flow_run: Any, state: Any) -> None:
    """on_crashed / on_cancellation: clean up from the dying process (best effort; the
    automation on Crashed / Cancelled runs starts `reconcile`, which does the same).

    Only while no other run that takes the app's lock is alive: this run may never have had
    the lock (cancelled while it waited for it), and the release that has it must not lose
    its baseline and canary. Reconcile repairs and reports then, under the lock."""
    params = flow_run.parameters or {}
    with contextlib.suppress(Exception):
        if other_lock_takers(params["app"], me=str(flow_run.id)):
            return
        spec, _ = spec_of_run(params["app"], params)  # what the adapters were made with
        recover_release(load_block(params.get("platform", "local-platform/local")),
                        params["app"], spec, run_id=flow_run.id, image=params.get("image"),
                        commit=params.get("commit"), why=describe_end(state))  # fmt: skip


def _run_name() -> str:
    """`canary-release-<app>-<version>-<short commit>`: what a person looks for in the list."""
    from prefect.runtime import flow_run

    params = flow_run.parameters
    version = params.get("version") or "unversioned"
    return f"canary-release-{params['app']}-{version}-{str(params['commit'])[:7]}"


@flow(name="canary-release", flow_run_name=_run_name,
      on_crashed=[_on_bad_end], on_cancellation=[_on_bad_end])  # fmt: skip
def canary_release(
    app: str,
    image: str,
    commit: str,
    config: str | None = None,
    platform: str = "local-platform/local",
    metrics: str = "prometheus-source/local",
    repo: str | None = None,
    pushed_at: str | None = None,
    version: str | None = None,
    retry: bool = False,
    app_config: dict[str, str] | None = None,
) -> dict[str, Any] | State:
    """Release `image` (built from `commit`) of `app` as a judged canary.

    `app_config` is the release config the build carried from the commit's `.canary/`
    (canary.appconfig; it wins over `config`); else `config` is the release spec (default
    deployments/releases/<app>.yaml). The spec judged with is also the one every platform
    call gets, so the platform's adapters use its options (on Kubernetes its
    `kubernetes:` section and the largest traffic step); `platform`
    and `metrics` name the blocks to act on and to read metrics from; `repo` and
    `pushed_at` (from the push) order this release among others of the app (canary.queue);
    `version` names the run; `retry` releases a commit that was released before
    (`canary retry`). Ends Promoted (type Completed), RolledBack (type Failed: alerting on
    failed runs sees it) or Skipped (type Cancelled), the reason as the state message.
    """
    release = Release(app, image, commit)  # the one release model: name rule, full commit
    app, commit = release.app, release.commit
    spec, canary_config = load_release_config(app, commit, app_config, config)
    plat, source = load_block(platform), load_block(metrics).source()
    newer = _ordering(plat, app, spec, repo)
    tag_run(app=app, commit=commit[:12], version=version)
    with contextlib.ExitStack() as lock:
        turn = wait_for_turn("canary-release", app, ensure_release_lock(app), lock, newer=newer,
                             retry=retry)  # fmt: skip
        if turn.place is not Place.PROCEED:
            return _skip(app, image, commit, turn.reason)
        stale = against_production(runs.this_run(), _production(plat, app), newer)
        if stale is not None:
            return _skip(app, image, commit, stale)
        result = _release(plat, source, spec, canary_config, app, image, commit)
    tag_run(outcome=result["outcome"])
    message = result["headline"]
    if result["outcome"] == PROMOTED:
        return Completed(name="Promoted", message=message, data=result)
    return Failed(name="RolledBack", message=message, data=result)


def _ordering(plat: Any, app: str, spec: ReleaseSpec,
              repo: str | None) -> Callable[[Candidate, Candidate], bool | None]:  # fmt: skip
    """Which of two commits is newer: git ancestry where the builder knows it, else the
    push time (each answer asked once)."""
    known: dict[tuple[str, str], bool | None] = {}

    def newer(a: Candidate, b: Candidate) -> bool | None:
        if repo and (a.commit, b.commit) not in known:
            forward = p.is_ancestor(plat, app, spec, repo, b.commit, a.commit)
            backward = (p.is_ancestor(plat, app, spec, repo, a.commit, b.commit) if not forward
                        else False)  # fmt: skip
            known[a.commit, b.commit] = True if forward else (False if backward else None)
        answer = known.get((a.commit, b.commit))
        return answer if answer is not None else by_push_time(a, b)

    return newer


def _production(plat: Any, app: str) -> Candidate | None:
    """What production runs, as a queue candidate (its commit; when it was pushed)."""
    commit = p.read_production_commit(plat, app)
    last = find_last_promotion(app)
    if commit is None and last is not None:
        commit = last.get("commit")
    if not commit:
        return None
    pushed = last.get("pushed_at") if last and last.get("commit") == commit else None
    return candidate_for(commit, pushed)


def _skip(app: str, image: str, commit: str, reason: str) -> State:
    """End without releasing: a report and a canary.release.aborted event that say why."""
    get_run_logger().info("%s %s: not released: %s", app, commit[:12], reason)
    publish_report(app, markdown_report(
        app=app, image=image, commit=commit, outcome=ABORTED, reason=reason, records=[],
        thresholds=None), f"{app} {commit[:12]}: {ABORTED} ({reason})")  # fmt: skip
    emit(f"canary.release.{ABORTED}", app, {"image": image, "commit": commit, "reason": reason})
    tag_run(outcome="skipped")
    return Cancelled(name=SKIPPED, message=reason)


def _release(plat: Any, source: Any, spec: ReleaseSpec, canary_config: CanaryConfig, app: str,
             image: str, commit: str) -> dict[str, Any]:  # fmt: skip
    """Inside the app's lock: baseline and canary, the analysis, the decision; ALWAYS clean
    up, then report what production runs, read back, not what the flow meant to do."""
    logger = get_run_logger()
    thresholds = spec.analysis.thresholds
    records: list[JudgementRecord] = []
    reason, production, plan = "the release did not finish", None, []
    failure: BaseException | None = None
    by_person = False  # an operator's command, a manual judgement or gate decided
    try:
        found = p.reconcile_app(plat, app, spec)
        logger.info("before the release: %s", "; ".join(found_in_words(found)))
        production = p.read_production_image(plat, app, spec)
        if production is None:
            raise ConfigError(
                f"{app} has no production deployment to compare against; deploy the first "
                "version directly (the demo does: `python scripts/bootstrap_production.py`)"
            )
        if any(m.evidence != "series" for m in canary_config.metrics):
            plan = plan_canary(source, spec, canary_config)
            for line in plan:
                logger.info("plan: %s", line)
        # Pin 100 % to production before baseline and canary exist: the app's Service selects
        # every track's pods (on Kubernetes), so a route without our subsets would send live
        # traffic to the canary as soon as its pods are ready, before any look judged it.
        p.set_traffic(plat, app, spec, Weights.all_primary())
        p.deploy_track(plat, app, spec, "baseline", production)
        p.deploy_track(plat, app, spec, "canary", image)
        p.wait_track_ready(plat, app, spec, "baseline", spec.ready_timeout_seconds)
        p.wait_track_ready(plat, app, spec, "canary", spec.ready_timeout_seconds)
        decision = _analyse(plat, source, spec, canary_config, app, commit, records)
        promote, reason = decision.action is Action.PROMOTE, decision.reason
        timeout = spec.manual_judgement_timeout_seconds
        if not promote and spec.manual_judgement and decision.marginal:
            promote, reason = ask_for_judgement(app, _last_score(records) or 0.0,
                                                timeout_seconds=timeout)  # fmt: skip
        if promote and spec.manual_gate_before_promotion and not decision.manual:
            promote, gate = ask_person(app, "before-promotion", f"{reason}. Promote?",
                                       timeout_seconds=timeout)  # fmt: skip
            reason = gate
        by_person = decision.manual or reason != decision.reason
        if promote:
            p.promote_image(plat, app, spec, image)
    except BaseException as exc:
        failure, reason = exc, f"the release failed and was rolled back: {_words(exc)}"
        raise
    finally:
        cleanup, cleanup_error = run_cleanup({
            "roll_back_traffic": lambda: p.roll_back_traffic(plat, app, spec),
            "remove_baseline": lambda: p.remove_track(plat, app, spec, "baseline"),
            "remove_canary": lambda: p.remove_track(plat, app, spec, "canary"),
            "restore_routes": lambda: p.restore_routes(plat, app, spec),
        })  # fmt: skip
        outcome, reason = _read_back(plat, app, spec, image, production, reason)
        last = _last_score(records)
        title = headline(outcome, reason, records, by_person)
        report_id = publish_report(app, markdown_report(
            app=app, image=image, commit=commit, outcome=outcome, reason=reason,
            records=records, thresholds=thresholds, cleanup=cleanup, plan=plan,
            by_person=by_person,
        ), f"{app} {commit[:12]}: {title}")  # fmt: skip
        emit(f"canary.release.{outcome}", app, {
            "image": image, "commit": commit, "score": last, "reason": reason,
            "headline": title, "report": str(report_id), "url": run_link(),
            "failing": failing_metrics(records),
            "judgements": len(records), "previous_image": production,
            # analysis time until the decision (the windows grow from the analysis start)
            "decision_seconds": ((records[-1].window_end - records[-1].window_start)
                                 .total_seconds() if records else None),
            # the analysis time the spec planned: what an early decision saved is the rest
            "lifetime_seconds": (spec.analysis.lifetime.total_seconds()
                                 if spec.analysis.lifetime is not None else None),
            "window_start": records[0].window_start.isoformat() if records else None,
            "window_end": records[-1].window_end.isoformat() if records else None,
            "control_scope": spec.scopes.control, "experiment_scope": spec.scopes.experiment,
            "pushed_at": _param("pushed_at"),
        })  # fmt: skip
        if cleanup_error is not None:
            if failure is None:
                raise cleanup_error
            # The release's own failure stays the run's failure; cleanup's is attached.
            failure.add_note(f"and cleanup failed too: {cleanup_error!r}")
    logger.info("%s %s: %s", app, commit[:12], title)
    return {"app": app, "commit": commit, "image": image, "outcome": outcome,
            "score": _last_score(records), "reason": reason, "headline": title}  # fmt: skip


def _read_back(plat: Any, app: str, spec: ReleaseSpec, image: str, before: str | None,
               reason: str) -> tuple[str, str]:  # fmt: skip
    """The outcome is what production runs now, read back from the platform."""
    try:
        now = p.read_production_image(plat, app, spec)
    except Exception as exc:  # the report must still go out
        return ROLLED_BACK, f"{reason}; production could not be read back ({_words(exc)})"
    if now == image and before != image:
        return PROMOTED, reason
    if now != before:
        return ROLLED_BACK, f"{reason}; production runs {now} (read back), not {before}"
    return ROLLED_BACK, reason


def _words(exc: BaseException) -> str:
    """An exception in words: its type and message (some carry no message at all)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _param(name: str) -> Any:
    with contextlib.suppress(Exception):
        return current_flow_run().parameters.get(name)
    return None


def _param_run_id() -> str:
    return str(current_flow_run().id)


def _commanded(command: dict[str, Any], look: int, looks: int) -> Decision:
    """An operator's `canary promote` / `canary abort`, as the decision of this look."""
    who = command.get("by") or "an operator"
    if command["action"] == "promote":
        return Decision(Action.PROMOTE, f"promoted by {who} (canary promote) before look {look} "
                        f"of {looks}: the rest of the analysis skipped", True, early=True,
                        manual=True)  # fmt: skip
    return Decision(Action.ROLL_BACK, f"rolled back by {who} (canary abort) before look {look} "
                    f"of {looks}", True, early=True, manual=True)  # fmt: skip


def _not_serving(plat: Any, app: str, spec: ReleaseSpec) -> str | None:
    """Why a track is not serving right now, or None (the readiness guard's own check)."""
    return next((why for why in p.check_serving.fn(plat, app, spec).values() if why is not None),
                None)  # fmt: skip


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
    earlier: list[list[Any]] = []  # the count metrics' counts at the looks before, oldest first
    decision = Decision(Action.ROLL_BACK, "no judgement was made", True)
    run_id = _param_run_id()

    def tick() -> dict[str, Any] | None:
        progress(bar, 100 * (datetime.now(UTC) - start).total_seconds() / total)
        return take_command(app, run_id)

    for window in windows:
        weights = spec.traffic.weights(window.index)
        p.set_traffic(plat, app, spec, weights)
        if window.index == 1 and weights.canary > 0 and weights.baseline > 0:
            waited = wait_for_requests(source, config, spec.scopes, app, datetime.now(UTC),
                                       spec.ready_timeout_seconds,
                                       stop=lambda: _not_serving(plat, app, spec))  # fmt: skip
            if waited >= 2:
                logger.info("%s: both tracks' requests visible in Prometheus after %.1f s",
                            app, waited)  # fmt: skip
        command = wait_until(window.not_before, tick=tick)
        if command is not None:
            progress(bar, 100.0)
            return _commanded(command, window.index, len(windows))
        pairs = fetch_metrics(source, config, spec.scopes, window)
        counts = fetch_counts(source, config, spec.scopes, window) if has_counts else []
        requests = fetch_request_counts(source, config, spec.scopes, window)
        guards = evaluate_guards(
            readiness=p.check_serving(plat, app, spec), requests=requests, previous=previous,
            min_requests=config.guards.min_requests, split_alpha=config.guards.split_alpha,
        )  # fmt: skip
        previous = requests or previous
        result = judge_interval(config, pairs, thresholds, window.index, counts, guards,
                                history=list(earlier), planned_looks=len(windows))  # fmt: skip
        earlier.append(counts)
        decision = decide(
            result, look=window.index, looks=len(windows),
            elapsed=window.experiment_end - window.experiment_start,
            min_analysis=spec.analysis.min_analysis,
            lifetime=windows[-1].experiment_end - windows[-1].experiment_start,
        )  # fmt: skip
        record = JudgementRecord(
            index=window.index, window_start=window.experiment_start,
            window_end=window.experiment_end, canary_share=weights.canary, judgement=result,
            decision=decision,
        )  # fmt: skip
        records.append(record)
        publish_interval(app, record)
        logger.info("%s look %d/%d: score %s → %s; %s", app, window.index, len(windows),
                    result.summary_score, decision.action.value, decision.reason)  # fmt: skip
        for line in explain_failing(result):
            logger.warning("%s look %d: %s", app, window.index, line)
        if decision.final:
            break
        if window.index in spec.manual_gates:
            go_on, why = ask_person(app, "after-look", f"Look {window.index} passed. Continue?",
                                    timeout_seconds=spec.manual_judgement_timeout_seconds)  # fmt: skip
            if not go_on:
                decision = Decision(Action.ROLL_BACK, why, True, early=True, manual=True)
                break
    progress(bar, 100.0)
    if records:  # one link per metric to its Prometheus graph over the analysis
        last = next(w for w in windows if w.index == records[-1].index)
        publish_graph_links(app, graph_links(source, config, spec.scopes, last))
    return decision
