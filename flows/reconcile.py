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
"""

from __future__ import annotations

import contextlib
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.states import Crashed

from canary.config.release import ReleaseSpec
from canary.errors import ConfigError
from canary.values.release import check_app_name
from tasks.history import find_released_apps
from tasks.platform import reconcile_app
from tasks.publish import publish_report
from tasks.recovery import (
    describe_end,
    found_in_words,
    free_leaked_lock,
    held_by_the_dead,
    recover_release,
    spec_of_run,
)
from tasks.runs import current_flow_run
from tasks.setup import ensure_release_lock, load_block
from tasks.turn import take_lock


def _run_name() -> str:
    from prefect.runtime import flow_run

    return f"reconcile-{flow_run.parameters.get('app') or 'every-app'}"


@flow(name="reconcile", flow_run_name=_run_name)
def reconcile(app: str | None = None, platform: str = "local-platform/local",
              run_id: str | None = None) -> dict[str, Any]:  # fmt: skip
    """`run_id`: the canary-release run that ended badly (its id, or its event resource id).
    Without `app`: every app with a release history, one subflow run each."""
    logger = get_run_logger()
    if app is None:
        if run_id is not None:
            raise ConfigError("run_id names one app's release: give its app too")
        return _every_app(platform)
    app = check_app_name(app)
    me = str(current_flow_run().id)
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
        plat = load_block(platform)
        run = _ended_run(run_id) if run_id else None
        spec, spec_words = spec_of_run(app, run.parameters or {}) if run else (None, None)
        found = reconcile_app(plat, app, spec)
        recovered = _recover(plat, app, spec, run) if run else None
    freed = free_leaked_lock(app, me=me) if dead else None
    if freed:
        logger.warning("%s: %s", app, freed)
    words = _in_words(app, found, freed, recovered, spec_words)
    for line in words:
        logger.info("%s", line)
    publish_report(app, "\n".join([f"# Reconcile of `{app}`", "", *[f"- {w}" for w in words], ""]),
                   f"{app}: reconcile")  # fmt: skip
    return {"app": app, "found": found, "freed_lock": freed, "recovered": recovered}


def _every_app(platform: str) -> dict[str, Any]:
    logger = get_run_logger()
    apps = find_released_apps()
    results: dict[str, Any] = {}
    failed: dict[str, str] = {}
    for name in apps:
        try:
            results[name] = reconcile(app=name, platform=platform)
        except Exception as exc:  # the others are still repaired; this run fails at the end
            failed[name] = f"{type(exc).__name__}: {exc}"
            logger.error("reconcile of %s failed: %s", name, failed[name])
    logger.info("reconciled %d app(s)%s", len(results),
                f"; failed: {', '.join(failed)}" if failed else "")  # fmt: skip
    if failed:
        raise RuntimeError("reconcile failed for " + "; ".join(f"{a}: {w}" for a, w in failed.items()))
    return {"apps": apps, "results": results}


def _ended_run(run_id: str) -> FlowRun:
    """Release `run_id`, whose end this reconcile reports; a run still marked Running holds
    no lock (we have it), so its process is gone: it is marked Crashed first."""
    run_uuid = UUID(run_id.rsplit(".", 1)[-1])
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_uuid)
        if run.state is not None and not run.state.is_final():
            client.set_flow_run_state(run_uuid, Crashed(message=(
                "the release stopped sending heartbeats and its lock was free: its process "
                "is gone")), force=True)  # fmt: skip
            run = client.read_flow_run(run_uuid)
    return run


def _recover(plat: Any, app: str, spec: ReleaseSpec | None, run: FlowRun) -> dict[str, Any]:
    """Report the end of release `run` (cleaned up again with the spec it judged with)."""
    params = run.parameters or {}
    return recover_release(plat, app, spec, run_id=run.id, image=params.get("image"),
                           commit=params.get("commit"), why=describe_end(run.state))  # fmt: skip


def _in_words(app: str, found: dict[str, Any], freed: str | None,
              recovered: dict[str, Any] | None, spec_words: str | None) -> list[str]:  # fmt: skip
    """What reconcile found and did, as sentences (the platform's report is a dict)."""
    lines = ([spec_words] if spec_words else []) + found_in_words(found)
    if freed:
        lines.append(freed)
    if recovered is not None:
        lines.append(f"release run {recovered['run']}: {recovered['outcome']}: {recovered['reason']}")
    return lines
