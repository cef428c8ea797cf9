"""Flow `reconcile`: repair what a crashed release left behind, and say what was fixed.

Also run at the start of every canary release (inside its lock). Run on its own, it takes
the same per-app lock, so it waits for a live release instead of tearing it down. It is
started by an automation when a canary-release run ends Crashed, Cancelled or Failed (or
stops sending heartbeats): `run_id` names that run, whose end it then reports (on that run,
once) after putting production in order. Restores 100 % primary (verified by reading back),
removes baseline and canary, restores the user's routes, and frees the app's lock if a
killed process or a server restart left it taken with nobody alive to hold it.

The platform's adapters are made with the spec that release judged with, read again from
its parameters (its commit's `.canary/`, else its `config`, else the default spec): on
Kubernetes its `kubernetes:` section names the VirtualService, routes and DestinationRule
to put back. Without `run_id` no spec is known and the platform's fallback applies.

One app's reconcile returns a ReconcileReport (canary.values.repair), said in words in the
run's log and its report artifact; without `app`, the reports of every app.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace

from prefect import flow, get_run_logger

from canary.appconfig import policy_lookup, spec_of_run
from canary.config.release import ReleaseSpec
from canary.errors import ConfigError
from canary.ports import Platform
from canary.values.outcome import describe_end
from canary.values.release import check_app_name
from canary.values.repair import ReconcileReport, Recovery
from store import current
from store.artifacts import publish_report
from store.blocks import load_block
from store.locks import free_leaked_lock, held_by_the_dead
from store.recovery import recover_release
from store.runs import RunRecord, mark_crashed
from store.turn import take_lock
from tasks.history import find_released_apps
from tasks.platform import reconcile_app
from tasks.setup import ensure_release_lock, read_policy_spec

#: The state message of a release run found silent with its lock free.
GONE = ("the release stopped sending heartbeats and its lock was free: its process "
        "is gone")  # fmt: skip


def _run_name() -> str:
    """``reconcile-<app>``, or ``reconcile-every-app``."""
    return f"reconcile-{current.parameter('app') or 'every-app'}"


@flow(name="reconcile", flow_run_name=_run_name)
def reconcile(app: str | None = None, platform: str = "local-platform/local",
              run_id: str | None = None) -> ReconcileReport | dict[str, ReconcileReport]:  # fmt: skip
    """Repair one app (or every app with a release history, one subflow run each).

    Args:
        app: The app (None: every app with a release history).
        platform: The platform block, ``<type-slug>/<name>``.
        run_id: The canary-release run that ended badly (its id, or its event resource
            id ``prefect.flow-run.<id>``), whose end is then reported.

    Returns:
        The app's report; without ``app``, each app's report by app.

    Raises:
        ConfigError: ``run_id`` without ``app``.
        RuntimeError: Without ``app``: the reconcile of some app failed (the others ran).
    """
    logger = get_run_logger()
    if app is None:
        if run_id is not None:
            raise ConfigError("run_id names one app's release: give its app too")
        return _every_app(platform)
    app = check_app_name(app)
    me = current.run_id()
    lock = ensure_release_lock(app)
    # A lock held by the dead (a killed release) is not waited for: its lease lapses only
    # after a minute, and production must not stay split that long. Nothing alive can
    # hold it meanwhile, so the repair runs now; the lock frees itself (or is reset) after.
    dead = held_by_the_dead(app, me=me)
    with contextlib.ExitStack() as held:
        if dead:
            logger.info("%s: the lock %r is held by a run that is gone; repairing now, without "
                        "waiting for its lease to lapse", app, lock)  # fmt: skip
        else:
            take_lock(app, lock, held, me=me)
        report = _repair(load_block(platform), app, run_id)
    freed = free_leaked_lock(app, me=me) if dead else None
    if freed:
        logger.warning("%s: %s", app, freed)
        report = replace(report, freed_lock=freed)
    for line in report.in_words():
        logger.info("%s", line)
    publish_report(app, report.markdown(), f"{app}: reconcile")
    return report


def _repair(plat: Platform, app: str, run_id: str | None) -> ReconcileReport:
    """Under the lock: the platform's reconcile, then the end of release ``run_id``."""
    run = _ended_run(run_id) if run_id else None
    spec_words: str | None
    if run:
        spec, spec_words = spec_of_run(app, run.parameters, policy_lookup(plat, app))
    else:
        spec, spec_words = _policy_spec(plat, app)
    found = reconcile_app(plat, app, spec)
    recovered = _recover(plat, app, spec, run) if run else None
    return ReconcileReport(app=app, found=found, spec=spec_words, recovered=recovered)


def _policy_spec(plat: Platform, app: str) -> tuple[ReleaseSpec | None, str | None]:
    """With no release run to read: the app's ReleasePolicy's spec (as a release would rank
    it over the platform's own fallback), or None; a repair runs even if it cannot be read."""
    try:
        spec = read_policy_spec(plat, app)
    except Exception as exc:
        return None, f"the app's ReleasePolicy could not be read ({exc}); repaired with the platform's fallback spec"
    return spec, (f"repaired with the options of {spec.source}" if spec is not None else None)


def _every_app(platform: str) -> dict[str, ReconcileReport]:
    """Reconcile every app with a release history, each in its own subflow run."""
    logger = get_run_logger()
    results: dict[str, ReconcileReport] = {}
    failed: dict[str, str] = {}
    for name in find_released_apps():
        try:
            done = reconcile(app=name, platform=platform)
        except Exception as exc:  # the others are still repaired; this run fails at the end
            failed[name] = f"{type(exc).__name__}: {exc}"
            logger.error("reconcile of %s failed: %s", name, failed[name])
            continue
        if isinstance(done, ReconcileReport):
            results[name] = done
    logger.info("reconciled %d app(s)%s", len(results),
                f"; failed: {', '.join(failed)}" if failed else "")  # fmt: skip
    if failed:
        raise RuntimeError("reconcile failed for " + "; ".join(f"{a}: {w}" for a, w in failed.items()))
    return results


def _ended_run(run_id: str) -> RunRecord:
    """Release ``run_id``, whose end this reconcile reports; a run still marked Running
    holds no lock (we have it), so its process is gone: it is marked Crashed first."""
    return mark_crashed(run_id.rsplit(".", 1)[-1], GONE)


def _recover(plat: Platform, app: str, spec: ReleaseSpec | None, run: RunRecord) -> Recovery:
    """Report the end of release ``run`` (cleaned up again with the spec it judged with)."""
    image, commit = run.parameters.get("image"), run.parameters.get("commit")
    return recover_release(plat, app, spec, run_id=run.id,
                           image=None if image is None else str(image),
                           commit=None if commit is None else str(commit),
                           why=describe_end(None if run.state_name == "?" else run.state_name,
                                              run.message))  # fmt: skip
