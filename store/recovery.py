"""After a release ended badly (crashed, cancelled, its process killed): put production back
in order, read back what it runs, report the end on the release's own run and emit its
``canary.release.<outcome>`` event, once.

Plain functions (not tasks): the release's own state hooks call them in the dying process
(or the runner's, after the process is gone), where no task may run, and the ``reconcile``
flow calls them when the process is gone. Both may run for the same release; the report
and the event are then published once, by whichever comes first.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from uuid import UUID

from canary.cleanup import run_cleanup
from canary.config.release import ReleaseSpec
from canary.ports import Platform
from canary.report import headline, markdown_report
from canary.values import messages
from canary.values.events import ReleaseEnded
from canary.values.outcome import outcome_from_production
from canary.values.repair import Recovery
from store.artifacts import publish_report, report_link, reported
from store.client import run_url
from store.events import emit

__all__ = ["Recovery", "cleanup_platform", "recover_release"]


def cleanup_platform(platform: Platform, app: str,
                     spec: ReleaseSpec | None) -> tuple[list[str], BaseException | None]:  # fmt: skip
    """The cleanup order of canary.cleanup, straight on the platform's adapters.

    Args:
        platform: The platform block.
        app: The app.
        spec: The release spec the adapters are made with (None: the platform's fallback).

    Returns:
        The steps in words, and the first error (None: every step held).
    """
    bound = platform.for_app(app, spec)
    router, workloads = bound.router(), bound.workloads()
    return run_cleanup({
        "roll_back_traffic": lambda: router.rollback(app),
        "remove_baseline": lambda: workloads.remove(app, "baseline"),
        "remove_canary": lambda: workloads.remove(app, "canary"),
        "restore_routes": bound.restore_routes,
    })  # fmt: skip


def recover_release(platform: Platform, app: str, spec: ReleaseSpec | None, *,
                    run_id: UUID | str, image: str | None, commit: str | None,
                    why: str) -> Recovery:  # fmt: skip
    """Clean up after a release run, read back production, report and emit its end once.

    Args:
        platform: The platform block.
        app: The app.
        spec: The spec the release judged with (see canary.appconfig.spec_of_run).
        run_id: The release run.
        image: The release's image (its parameter).
        commit: The release's commit (its parameter).
        why: How the run ended, in words (canary.values.outcome.describe_end).

    Returns:
        What was found and done.
    """
    steps, error = cleanup_platform(platform, app, spec)
    production = None
    with contextlib.suppress(Exception):  # the report must go out even if this read fails
        production = platform.for_app(app, spec).production_image()
    outcome = outcome_from_production(now=production, image=image or "", before=None)
    reason = (f"{why}; production runs {production or 'an unknown image'} (read back)"
              + (f"; cleanup failed: {error}" if error else ""))  # fmt: skip
    recovery = Recovery(app=app, run=str(run_id), outcome=outcome, reason=reason,
                        production=production, cleanup=tuple(steps), published=False)  # fmt: skip
    if reported(run_id, app):
        return recovery
    markdown = markdown_report(app=app, image=image or "-", commit=commit or "-",
                               outcome=outcome.value, reason=reason, records=[],
                               thresholds=None, cleanup=steps)  # fmt: skip
    report = publish_report(app, markdown, f"{app} {(commit or '')[:12]}: {outcome.value} ({why})",
                            run_id=run_id)  # fmt: skip
    url = run_url(str(run_id))
    title = headline(outcome.value, reason, [])
    emit(ReleaseEnded(app=app, outcome=outcome, image=image, commit=commit, reason=reason,
                      headline=title, report=str(report) if report else None, url=url,
                      recovered_run=str(run_id), run=str(run_id), message=messages.ended(
                          app=app, version=None, commit=commit, headline=title, seconds=None,
                          report=report_link(report) if report else None, run=url)))  # fmt: skip
    return replace(recovery, published=True)
