"""The release flow's steps around a look that are sequencing, not tasks.

Waiting for a look's window (taking an operator's command meanwhile), waiting until both
tracks' requests are visible before the first look, reading back what the platform carried
at the look (the split, the restarts), and publishing a look (its event and log lines; its
table is made by its judge task run): each calls tasks and the store, in order, so it lives
with the flows (tasks/ holds only tasks).
"""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import get_run_logger

from canary.analysis.decision import Decision
from canary.analysis.windows import JudgementWindow
from canary.config import CanaryConfig
from canary.config.release import ReleaseSpec
from canary.errors import in_words
from canary.ports import MetricSource, Platform
from canary.report import JudgementRecord, explain_failing
from canary.telemetry import look_event
from canary.values.carried import LookTraffic, Restart
from canary.values.events import OperatorCommand
from canary.values.weights import Weights
from canary.waiting import wait_until
from store.commands import POLL_SECONDS as COMMAND_POLL_SECONDS
from store.commands import take as take_command
from store.events import emit
from tasks.analysis import wait_for_requests
from tasks.platform import check_serving, read_restarts, read_traffic

__all__ = ["look_traffic", "publish_look", "wait_for_both_tracks", "wait_for_look"]


def wait_for_look(app: str, run_id: str, window: JudgementWindow) -> OperatorCommand | None:
    """Wait until the window's data exists, taking an operator's command meanwhile (read
    every store.commands.POLL_SECONDS, and as the wait ends).

    Args:
        app: The app released.
        run_id: This release run's id (a command names the run it is for).
        window: The look's window (its ``not_before``).

    Returns:
        The command that ended the wait early, or None.
    """
    return wait_until(window.not_before, tick=lambda: take_command(app, run_id),
                      every=COMMAND_POLL_SECONDS)


def wait_for_both_tracks(plat: Platform, app: str, spec: ReleaseSpec, source: MetricSource,
                         config: CanaryConfig) -> None:  # fmt: skip
    """Before the first look: until both tracks' requests are visible in the metric store
    (wait_for_requests), or a track stops serving (its readiness guard then rolls back).

    Args:
        plat: The platform (each track's readiness).
        app: The app released.
        spec: The release spec (its scopes and ready timeout).
        source: The metric store.
        config: The canary config (its request counter).

    Raises:
        MetricsError: The requests stayed invisible for the spec's ready timeout.
    """

    def not_serving() -> str | None:
        why = check_serving(plat, app, spec).values()
        return next((reason for reason in why if reason is not None), None)

    waited = wait_for_requests(source, config, spec.scopes, app, datetime.now(UTC),
                               spec.ready_timeout_seconds, stop=not_serving)  # fmt: skip
    if waited >= 2:
        get_run_logger().info("%s: both tracks' requests visible in Prometheus after %.1f s",
                              app, waited)  # fmt: skip


def look_traffic(plat: Platform, app: str, spec: ReleaseSpec, planned: Weights,
                 since: datetime) -> LookTraffic:  # fmt: skip
    """What the platform carried at a look: the split read back from the router, and the
    restarts since `since`. Reading them never fails the release: what could not be read
    is kept in words (LookTraffic.error) and the look goes on as it would have. Read in the
    flow's own run (plain functions in tasks/platform.py): two reads a look are not worth two task runs,
    each three events the server records and matches against every automation; what they
    read is in the look's record, its table and the report.

    Args:
        plat: The platform.
        app: The app released.
        spec: The release spec.
        planned: The split set for the look's window.
        since: Restarts from this moment on (the look before; the analysis start).

    Returns:
        The look's traffic, for its record and the report.
    """
    errors: list[str] = []
    carried: Weights | None = None
    restarts: list[Restart] = []
    try:
        carried = read_traffic(plat, app, spec)
    except Exception as exc:
        errors.append(f"the router: {in_words(exc)}")
    try:
        restarts = read_restarts(plat, app, spec, since)
    except Exception as exc:
        errors.append(f"the restarts: {in_words(exc)}")
    return LookTraffic(planned, carried, tuple(restarts), "; ".join(errors))


def publish_look(app: str, record: JudgementRecord, looks: int) -> Decision:
    """Publish a look: its `canary.release.look` event and log lines (a warning for each
    failing metric, for a split the router carried that differs from the planned one, for
    each restart). Its table artifact was made by its judge task run (judge_look).

    Args:
        app: The app released.
        record: The look, as judge_look made it.
        looks: The planned number of looks.

    Returns:
        The look's decision.
    """
    result, decision = record.judgement, record.decision
    assert decision is not None  # judge_look always decides
    logger = get_run_logger()
    traffic = record.traffic  # the split read back at the look (else the planned one)
    try:  # telemetry: a failure here never changes the release
        if traffic is not None:
            emit(look_event(app, look=record.index, looks=looks, judgement=result,
                            weights=traffic.carried or traffic.planned, decision=decision))  # fmt: skip
    except Exception as exc:
        logger.warning("%s look %d: no look event: %s", app, record.index, exc)
    logger.info("%s look %d/%d: score %s → %s; %s", app, record.index, looks,
                result.summary_score, decision.action.value, decision.reason)  # fmt: skip
    for line in explain_failing(result):
        logger.warning("%s look %d: %s", app, record.index, line)
    for line in record.traffic.warnings() if record.traffic is not None else ():
        logger.warning("%s look %d: %s", app, record.index, line)
    return decision
