"""`canary rollback APP [--to COMMIT]`: put the last good release (or a named one) back in
production at once, through the `restore-production` deployment (flows/restore_production.py).

No analysis runs. The target comes from the same data `canary history` shows: the canary
releases' runs (their image and commit parameters) and the restores. The last good release
is the newest promoted release older than the promotion of what production runs now, with
another image; what production runs now is the newest production change (a promotion or a
restore). A release that runs (or waits for a person) is never rolled back beside: the
command refuses and says how to end it; the flow also takes the app's lock, and gives up
after ``lock_timeout`` seconds if a release took it meanwhile. The restore's run is
recorded (history shows it, ``Restored (manual)``), emits ``canary.production.restored``
with ``manual`` and who asked, and reads production back: the command prints what
production serves, and fails when it is not the target.
"""

from __future__ import annotations

import time

from canary.values.events import ProductionRestored
from cli.api import Api, Release
from cli.operate import CommandError, Row, wait_final

#: The flow and deployment that put an image back (prefect.yaml, prefect.kubernetes.yaml).
RESTORE = "restore-production"
#: Seconds the restore waits for the app's lock before it gives up (a release took it).
LOCK_TIMEOUT = 30.0
#: Seconds to wait for the restore's event once the run ended (the server persists late).
EVENT_WAIT = 20.0


def rollback(api: Api, app: str, *, to: str | None, by: str, wait: float) -> Row:
    """Put the last good release (or ``to``'s) back in production and read it back.

    Args:
        api: The server.
        app: The app.
        to: A commit (a prefix will do) from ``canary history APP``; None: the last good.
        by: Who asked, in words.
        wait: Seconds to wait for the restore to end.

    Returns:
        The target, and the image production serves now (read back).

    Raises:
        CommandError: Unknown app, a release runs, no earlier good release, an unknown
            commit, or production does not serve the target afterwards.
    """
    releases = api.releases(app)
    if not releases:
        raise CommandError(f"unknown app {app!r}: no canary release of it on this server "
                           "(`canary history APP` lists an app's releases)")  # fmt: skip
    _refuse_beside_a_release(app, releases)
    target = _named(app, releases, to) if to else _last_good(api, app, releases)
    params: dict[str, object] = {"app": app, "image": target.parameters["image"],
                                 "commit": target.commit, "version": target.version, "by": by,
                                 "lock_timeout": LOCK_TIMEOUT}  # fmt: skip
    if target.parameters.get("platform"):
        params["platform"] = target.parameters["platform"]
    run = api.create_run(RESTORE, RESTORE, params)
    link = api.run_url(run.id)
    ended = wait_final(api, run.id, wait)
    if ended is None:
        raise CommandError(f"the rollback {link} did not end within {wait:g} s (is a worker of "
                           f"its work pool running?); it goes on by itself")  # fmt: skip
    if ended.state_type != "COMPLETED":
        raise CommandError(f"the rollback ended {ended.state_name}: {ended.message} ({link})")
    restored = _restored_event(api, app, run.id)
    serves = restored.image if restored else None
    row: Row = {"app": app, "action": "rolled back", "to commit": target.commit[:12],
                "to version": target.version, "image": params["image"], "production serves": serves,
                "was": restored.previous_image if restored else None, "run": link}  # fmt: skip
    if serves != params["image"]:
        raise CommandError(f"production serves {serves} after the rollback, not {params['image']} "
                           f"(read back; {link})")  # fmt: skip
    return row


def _refuse_beside_a_release(app: str, releases: list[Release]) -> None:
    live = [r for r in releases if r.live]
    if not live:
        return
    run = live[0]
    end = (f"`canary reject {app}` rolls it back" if run.state_type == "PAUSED" else
           f"`canary abort {app}` stops it (production unchanged)")  # fmt: skip
    raise CommandError(f"a canary release of {app} runs ({run.name}, {run.state_name}); a "
                       f"rollback never runs beside one: {end}, then roll back")  # fmt: skip


def _named(app: str, releases: list[Release], commit: str) -> Release:
    """The newest release of ``commit`` (a prefix) that has an image."""
    found = [r for r in releases if r.commit.startswith(commit.lower()) and r.parameters.get("image")]
    commits = sorted({r.commit for r in found})
    if not found:
        raise CommandError(f"no release of {app!r} at commit {commit!r}; `canary history {app}` "
                           "lists them")  # fmt: skip
    if len(commits) > 1:
        raise CommandError(f"commit {commit!r} is ambiguous: {', '.join(c[:12] for c in commits)}; "
                           "give more of it")  # fmt: skip
    return found[0]


def _when(run: Release) -> float:
    moment = run.ended or run.started or run.created
    return moment.timestamp() if moment else 0.0


def _last_good(api: Api, app: str, releases: list[Release]) -> Release:
    """The newest promoted release older than the promotion of what production runs now."""
    promoted = sorted((r for r in releases if r.state_name == "Promoted"), key=_when, reverse=True)
    restores = [r for r in api.releases(app, live=False, flow=RESTORE)
                if r.state_type == "COMPLETED" and r.parameters.get("image")]  # fmt: skip
    changes = sorted([*promoted, *restores], key=_when, reverse=True)
    if not changes:
        raise CommandError(f"no earlier good release of {app}: none was promoted; "
                           f"`canary history {app}` lists its releases")  # fmt: skip
    now = str(changes[0].parameters["image"])
    at = next((i for i, r in enumerate(promoted) if r.parameters.get("image") == now), -1)
    earlier = [r for r in promoted[at + 1:] if r.parameters.get("image") != now]
    if not earlier:
        raise CommandError(f"no earlier good release of {app}: production runs {now}, and no "
                           f"release promoted before it is in the history; `canary rollback "
                           f"{app} --to COMMIT` names one of `canary history {app}`")  # fmt: skip
    return earlier[0]


def _restored_event(api: Api, app: str, run_id: str) -> ProductionRestored | None:
    """The restore run's ``canary.production.restored`` event (what it read back)."""
    deadline = time.monotonic() + EVENT_WAIT
    while True:
        for stored in api.events(app, (ProductionRestored.name,), days=1):
            if isinstance(stored.event, ProductionRestored) and stored.event.run == run_id:
                return stored.event
        if time.monotonic() > deadline:
            return None
        time.sleep(0.5)
