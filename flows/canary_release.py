"""Flow `canary-release`: baseline + canary side by side, judged, promoted or rolled back.

Reads like docs/architecture.md's "A release, module by module": wait for its turn, take
the app's lock, repair leftovers, pin traffic to production, deploy baseline and canary,
then per window shift traffic, wait (taking a command), observe, assess, publish, decide;
ask a person where the spec says so; promote or roll back; ALWAYS clean up; read
production back and end as it says."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

from prefect import Flow, State, flow, get_run_logger
from prefect.futures import PrefectFuture
from prefect.states import Cancelled, Completed, Failed

from canary.analysis import (
    Action,
    Decision,
    Earlier,
    JudgementWindow,
    LookPlan,
    Observation,
    release_end,  # fmt: skip
    run_data,
)
from canary.analysis.hold import may_hold
from canary.appconfig import ConfigSource, policy_lookup, spec_of_run
from canary.cleanup import TRACK_STEPS, run_cleanup, together
from canary.config import CanaryConfig
from canary.config.release import ReleaseSpec
from canary.errors import ConfigError, MetricsError, in_words
from canary.ports import MetricSource, Platform
from canary.queue import Candidate, Place, against_production, by_push_time
from canary.report import JudgementRecord, failing_metrics, headline, markdown_report, reason_tag
from canary.values import messages
from canary.values.events import ReleaseEnded, ReleaseStarted
from canary.values.outcome import Outcome, describe_end
from canary.values.release import Release
from canary.values.repair import found_in_words
from canary.values.weights import Weights
from flows.hold import hold_for_a_person
from flows.looks import look_traffic, publish_look, wait_for_both_tracks, wait_for_look
from store import artifacts, current, gates
from store.blocks import load_block
from store.events import emit
from store.locks import other_lock_takers
from store.recovery import recover_release
from store.runs import candidate_for
from store.turn import wait_for_turn
from tasks import analysis, history, publish
from tasks import platform as p
from tasks._retry import retrying
from tasks.setup import ensure_release_lock, load_release_config

#: how long the report waits for a plan still simulating when the release ends
PLAN_WAIT_SECONDS = 60.0
_STATES = {"COMPLETED": Completed, "FAILED": Failed, "CANCELLED": Cancelled}  # by state type


@dataclass(frozen=True)
class _Run:
    """One release run's fixed inputs: the release, its spec and config, the blocks."""

    release: Release
    spec: ReleaseSpec
    config: CanaryConfig
    plat: Platform
    source: MetricSource
    run_id: str
    pushed_at: str | None = None
    #: where the spec and canary config came from (canary.appconfig.config_source)
    configured_by: ConfigSource = "repository"
    version: str | None = None
    started: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def app(self) -> str:
        """The app released."""
        return self.release.app


class _DyingRun(Protocol):
    """What a state hook reads of the flow run Prefect hands it."""

    id: UUID
    parameters: dict[str, Any]  # as Prefect's FlowRun types them


def _on_bad_end(flow: Flow[..., object], flow_run: _DyingRun, state: State) -> None:
    """on_crashed / on_cancellation: clean up from the dying process (best effort; the
    automation on Crashed / Cancelled runs starts `reconcile`, which does the same).

    Only while no other run that takes the app's lock is alive: this run may never have had
    the lock (cancelled while it waited for it), and the release that has it must not lose
    its baseline and canary. Reconcile repairs and reports then, under the lock."""
    params, why = flow_run.parameters or {}, describe_end(state.name, state.message)
    with contextlib.suppress(Exception):
        if other_lock_takers(params["app"], me=str(flow_run.id)):
            return
        plat = load_block(params.get("platform", "local-platform/local"))
        # what the adapters were made with
        spec, _ = spec_of_run(params["app"], params, policy_lookup(plat, params["app"]))
        recover_release(plat, params["app"], spec, run_id=flow_run.id, image=params.get("image"),
                        commit=params.get("commit"), why=why)  # fmt: skip


def _run_name() -> str:
    """`canary-release-<app>-<version>-<short commit>`: what a person looks for in the list."""
    app, version, commit = (current.parameter(name) for name in ("app", "version", "commit"))
    return f"canary-release-{app}-{version or 'unversioned'}-{str(commit)[:7]}"


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
) -> State:
    """Release `image` (built from `commit`) of `app` as a judged canary.

    Args:
        app, image, commit: The release (canary.values.release.Release checks them).
        config: The release spec (default deployments/releases/<app>.yaml); the spec judged
            with is the one every platform call gets (on Kubernetes its `kubernetes:`
            section and the largest traffic step).
        platform, metrics: The blocks to act on and to read metrics from.
        repo, pushed_at: From the push: order this release among the app's (canary.queue).
        version: Names the run.
        retry: Release a commit that was released before (`canary retry`).
        app_config: The commit's `.canary/` files the build carried (wins over the app's
            ReleasePolicy on the platform, which wins over `config`: canary.appconfig).

    Returns:
        The outcome's named final state, the headline as its message: Promoted (type
        Completed, the ReleaseResult as data), RolledBack (type Failed: alerting on failed
        runs sees it), Aborted or Skipped (type Cancelled); a ReleaseNotPromoted as data.
    """
    release = Release(app, image, commit)  # the one release model: name rule, full commit
    plat = load_block(platform)
    spec, canary_config, configured_by = load_release_config(release.app, release.commit,
                                                             app_config, config, plat)  # fmt: skip
    run = _Run(release, spec, canary_config, plat, load_block(metrics).source(), current.run_id(),
               pushed_at, configured_by, version)  # fmt: skip
    newer = _ordering(run.plat, run.app, spec, repo)
    current.tag_run(app=run.app, commit=release.commit[:12], version=version)
    with contextlib.ExitStack() as lock:
        turn = wait_for_turn("canary-release", run.app, ensure_release_lock(run.app), lock,
                             newer=newer, retry=retry)  # fmt: skip
        if turn.place is not Place.PROCEED:
            return _skip(release, turn.reason)
        stale = against_production(current.this_run(), _production(run.plat, run.app), newer)
        if stale is not None:
            return _skip(release, stale)
        ended = _release(run)
    return _final_state(ended)


def _ordering(plat: Platform, app: str, spec: ReleaseSpec,
              repo: str | None) -> Callable[[Candidate, Candidate], bool | None]:  # fmt: skip
    """Which of two commits is newer: git ancestry where the builder knows it, else the
    push time (one task run per pair of commits answers both directions)."""
    known: dict[tuple[str, str], bool | None] = {}

    def newer(a: Candidate, b: Candidate) -> bool | None:
        if repo and (a.commit, b.commit) not in known:
            answer = p.order_commits(plat, app, spec, repo, a.commit, b.commit)
            known[a.commit, b.commit] = answer
            known[b.commit, a.commit] = None if answer is None else not answer
        answer = known.get((a.commit, b.commit))
        return answer if answer is not None else by_push_time(a, b)

    return newer


def _production(plat: Platform, app: str) -> Candidate | None:
    """What production runs, as a queue candidate (its commit; when it was pushed)."""
    commit, last = history.read_production(plat, app)
    if commit is None and last is not None:
        commit = last["commit"]
    if not commit:
        return None
    pushed = last["pushed_at"] if last and last["commit"] == commit else None
    return candidate_for(commit, pushed)


def _skip(release: Release, reason: str) -> State:
    """End without releasing: a report and a canary.release.skipped event that say why."""
    app, commit, skipped = release.app, release.commit, Outcome.SKIPPED
    get_run_logger().info("%s %s: not released: %s", app, commit[:12], reason)
    artifacts.publish_report(app, markdown_report(
        app=app, image=release.image, commit=commit, outcome=skipped.value, reason=reason,
        records=[], thresholds=None), f"{app} {commit[:12]}: {skipped.value} ({reason})")  # fmt: skip
    emit(ReleaseEnded(app=app, outcome=skipped, image=release.image, commit=commit, reason=reason))
    current.tag_run(outcome=skipped.value, why=reason_tag(reason))
    return Cancelled(name=skipped.state.name, message=reason)


def _final_state(ended: ReleaseEnded) -> State:
    """The outcome's named final state, the headline as its message, the result as data."""
    outcome = ended.outcome
    current.tag_run(outcome=outcome.value, why=reason_tag(ended.headline or ended.reason))
    state: State = _STATES[outcome.state.type](name=outcome.state.name, message=ended.headline,
                                               data=run_data(ended))  # fmt: skip
    return state


def _release(run: _Run) -> ReleaseEnded:
    """Inside the app's lock: baseline and canary, the analysis, the decision; ALWAYS clean
    up, then report what production runs, read back, not what the flow meant to do."""
    records: list[JudgementRecord] = []
    before: str | None = None
    planning: PrefectFuture[list[str]] | None = None
    decision = Decision(Action.ROLL_BACK, "the release did not finish", True)
    failure: BaseException | None = None
    _started(run)
    try:
        before = _production_before(run)
        _deploy(run, before)
        planning = _plan(run)
        decision = _decide(run, records)
        if decision.action is Action.PROMOTE:
            p.promote_image(run.plat, run.app, run.spec, run.release.image)
    except BaseException as exc:
        failure = exc
        decision = Decision(Action.ROLL_BACK, f"the release failed and was rolled back: "
                            f"{in_words(exc)}", True)  # fmt: skip
        raise
    finally:
        cleanup, cleanup_error = run_cleanup({
            "roll_back_traffic": lambda: p.roll_back_traffic(run.plat, run.app, run.spec),
            # both tracks in one task run, each removal attempted, each with its report line
            **together(lambda: p.remove_tracks(run.plat, run.app, run.spec), TRACK_STEPS.values()),
            "restore_routes": lambda: p.restore_routes(run.plat, run.app, run.spec),
        })  # fmt: skip
        ended = _report(run, decision, records, before, plan=_planned(planning), cleanup=cleanup)
        if cleanup_error is not None:
            if failure is None:
                raise cleanup_error
            # The release's own failure stays the run's failure; cleanup's is attached.
            failure.add_note(f"and cleanup failed too: {cleanup_error!r}")
    get_run_logger().info("%s %s: %s", run.app, run.release.commit[:12], ended.headline)
    return ended


def _started(run: _Run) -> None:
    """Emit canary.release.started (the stuck alarm's window opens: docs/operations.md)."""
    lifetime = run.spec.analysis.lifetime
    emit(ReleaseStarted(app=run.app, commit=run.release.commit, image=run.release.image,
                        run=run.run_id, version=run.version, url=current.run_link(),
                        started_at=datetime.now(UTC),
                        lifetime_seconds=lifetime.total_seconds() if lifetime else None))  # fmt: skip


def _production_before(run: _Run) -> str:
    """Repair leftovers of a crashed release; what production runs (the baseline's image)."""
    found, production = p.reconcile_for_release(run.plat, run.app, run.spec)
    get_run_logger().info("before the release: %s", "; ".join(found_in_words(found)))
    if production is None:
        raise ConfigError(
            f"{run.app} has no production deployment to compare against; deploy the first "
            "version directly (the demo does: `python scripts/bootstrap_production.py`)"
        )
    return production


def _plan(run: _Run) -> PrefectFuture[list[str]] | None:
    """How long the canary must run to catch each count metric's minEffect, as report lines:
    a task run beside the analysis (its ~1 CPU-s of simulations is advice for the report, so
    the first look never waits for it); None when no metric is a count metric."""
    if all(m.evidence == "series" for m in run.config.metrics):
        return None
    return analysis.plan_canary.submit(run.source, run.spec, run.config)


def _planned(planning: PrefectFuture[list[str]] | None) -> list[str]:
    """The plan's lines for the report (logged); why there are none when it did not finish."""
    if planning is None:
        return []
    try:
        plan = planning.result(timeout=PLAN_WAIT_SECONDS)
    except Exception as exc:  # a plan is advice: its failure never changes the release's end
        plan = [f"no plan: {in_words(exc)}"]
    for line in plan:
        get_run_logger().info("plan: %s", line)
    return plan


def _deploy(run: _Run, production: str) -> None:
    """All traffic to production, then baseline and canary deployed and ready."""
    plat, app, spec = run.plat, run.app, run.spec
    # Pin 100 % to production before baseline and canary exist: the app's Service selects
    # every track's pods (on Kubernetes), so a route without our subsets would send live
    # traffic to the canary as soon as its pods are ready, before any look judged it.
    p.set_traffic(plat, app, spec, Weights.all_primary())
    p.deploy_tracks(plat, app, spec, production, run.release.image)  # the baseline runs production
    p.wait_tracks_ready(plat, app, spec, spec.ready_timeout_seconds)


def _decide(run: _Run, records: list[JudgementRecord]) -> Decision:
    """The analysis' decision, then a person's where the spec asks for one (a hold on a
    failed analysis: `on_failure: hold`, traffic unchanged while held)."""
    analysed = decision = _analyse(run, records)
    spec = run.spec
    if spec.manual_judgement and analysed.marginal and analysed.action is not Action.PROMOTE:
        score = records[-1].judgement.summary_score if records else 0.0
        decision = _ask(run, "judgement", f"Marginal score {score}: promote or roll back?",
                        prior=analysed)  # fmt: skip
    elif spec.on_failure == "hold" and may_hold(analysed, records[-1].judgement if records else None):
        decision = hold_for_a_person(run.release, spec, records, analysed)
    if (decision.action is Action.PROMOTE and spec.manual_gate_before_promotion
            and not analysed.manual and not decision.overridden):  # fmt: skip
        decision = _ask(run, "before-promotion", f"{decision.reason}. Promote?", prior=decision)
    return decision


def _ask(run: _Run, gate: str, question: str, *, prior: Decision) -> Decision:
    """A person's answer at `gate` (store.gates), as the decision."""
    answer = gates.ask_person(run.app, gate, question,
                        timeout_seconds=run.spec.manual_judgement_timeout_seconds)  # fmt: skip
    return Decision.from_gate(answer, prior=prior)


def _analyse(run: _Run, records: list[JudgementRecord]) -> Decision:
    """Per window: shift traffic, wait (taking a command), observe, assess, publish, decide."""
    app, spec, start = run.app, run.spec, datetime.now(UTC)
    looks = LookPlan.for_release(spec.analysis, run.config, start=start)
    bar = publish.start_progress(app, f"canary release of {app} at {run.release.commit[:12]}",
                                 ends=looks.windows[-1].not_before)  # fmt: skip
    earlier, decision = Earlier(), Decision(Action.ROLL_BACK, "no judgement was made", True)
    since = start  # restarts are read look by look, each since the look before
    for window in looks.windows:
        weights = spec.traffic.weights(window.index)
        p.set_traffic(run.plat, app, spec, weights)
        seen = _observe(run, looks, window)
        if isinstance(seen, Decision):  # an operator's command, or no data to judge
            decision = seen
            break
        readiness = retrying(lambda: p.check_serving(run.plat, app, spec))
        since, traffic = datetime.now(UTC), look_traffic(run.plat, app, spec, weights, since)
        record, earlier = analysis.judge_look(seen, looks, canary_share=weights.canary,
                                              readiness=readiness, earlier=earlier,
                                              traffic=traffic, table_of=app)  # fmt: skip
        records.append(record)
        decision = publish_look(app, record, looks.looks)
        artifacts.progress(bar, looks.progress(datetime.now(UTC), start))  # once per look
        if not decision.final and window.index in spec.manual_gates:
            decision = _ask(run, "after-look", f"Look {window.index} passed. Continue?",
                            prior=decision)  # fmt: skip
        if decision.final:
            break
    artifacts.progress(bar, 100.0)
    if records:  # one link per metric to its Prometheus graph over the analysis (built
        last = looks.windows[records[-1].index - 1]  # here: URLs, no I/O, no task run)
        publish.publish_graph_links(app, analysis.graph_links(run.source, run.config,
                                                                 spec.scopes, last))  # fmt: skip
    return decision


def _observe(run: _Run, looks: LookPlan, window: JudgementWindow) -> Observation | Decision:
    """Wait for the window's data (taking a command), then observe it; the decision that
    ends the analysis instead: an operator's command, or metrics that cannot be read."""
    weights = run.spec.traffic.weights(window.index)
    try:
        if window.index == 1 and weights.canary > 0 and weights.baseline > 0:
            wait_for_both_tracks(run.plat, run.app, run.spec, run.source, run.config)
        command = wait_for_look(run.app, run.run_id, window)
        if command is not None:
            return Decision.commanded(command, look=window.index, looks=looks.looks)
        return analysis.observe(run.source, run.config, run.spec.scopes, window)
    except MetricsError as exc:  # after retries: a rollback without a verdict
        words = str(exc).strip().removesuffix("; the call may be retried")
        return Decision.unjudged(words, look=window.index, looks=looks.looks)


def _report(run: _Run, decision: Decision, records: list[JudgementRecord], before: str | None,
            *, plan: list[str], cleanup: list[str]) -> ReleaseEnded:  # fmt: skip
    """Read production back; the release's end: its report, its event (ReleaseEnded)."""
    app, release, spec = run.app, run.release, run.spec
    outcome, reason = _read_back(run, before, decision)
    lead = decision.manual or not decision.judged  # the reason leads the headline
    title = headline(outcome.value, reason, records, lead)
    report_id = artifacts.publish_report(app, markdown_report(
        app=app, image=release.image, commit=release.commit, outcome=outcome.value,
        reason=reason, records=records, thresholds=spec.analysis.thresholds, cleanup=cleanup,
        plan=plan, by_person=lead,
    ), f"{app} {release.commit[:12]}: {title}")  # fmt: skip
    first, last = (records[0], records[-1]) if records else (None, None)
    lifetime, url, link = spec.analysis.lifetime, current.run_link(), artifacts.report_link(report_id)
    ended = ReleaseEnded.model_validate({
        "app": app, "outcome": outcome, "image": release.image, "commit": release.commit,
        "reason": reason, "headline": title, "report": str(report_id), "url": url,
        "score": last.judgement.summary_score if last and decision.judged else None,
        "failing": failing_metrics(records) if decision.judged else [],
        "judgements": len(records),
        "previous_image": before, "by_person": decision.manual,
        "overridden": decision.overridden and outcome is Outcome.PROMOTED,
        # analysis time until the decision (the windows grow from the analysis start)
        "decision_seconds": (last.window_end - last.window_start).total_seconds() if last else None,
        # the analysis time the spec planned: what an early decision saved is the rest
        "lifetime_seconds": lifetime.total_seconds() if lifetime is not None else None,
        "window_start": first.window_start if first else None,
        "window_end": last.window_end if last else None,
        "control_scope": spec.scopes.control, "experiment_scope": spec.scopes.experiment,
        "pushed_at": run.pushed_at, "judge": run.config.judge.name,
        "version": run.version, "run": run.run_id, "message": messages.ended(
            app=app, version=run.version, commit=release.commit, headline=title, run=url,
            seconds=messages.seconds_between(run.pushed_at or run.started, datetime.now(UTC)),
            report=link),
    })  # fmt: skip
    emit(ended)
    if run.configured_by == "policy":
        _record(run, ended, link)
    return ended


def _record(run: _Run, ended: ReleaseEnded, report: str) -> None:
    """The end into the app's ReleasePolicy's status; a failure to write it is logged and
    never changes the release's end (production is already read back)."""
    try:
        p.record_release(run.plat, run.app, ended, report)
    except Exception as exc:
        get_run_logger().warning("%s: could not write the ReleasePolicy's status: %s", run.app,
                                 in_words(exc))  # fmt: skip


def _read_back(run: _Run, before: str | None, decision: Decision) -> tuple[Outcome, str]:
    """The outcome is what production runs now, read back from the platform."""
    try:
        now = p.read_production_image(run.plat, run.app, run.spec)
    except Exception as exc:  # the report must still go out
        return release_end(decision, decision.reason, image=run.release.image, before=before,
                           now=None, read_error=in_words(exc))  # fmt: skip
    return release_end(decision, decision.reason, image=run.release.image, before=before, now=now)
