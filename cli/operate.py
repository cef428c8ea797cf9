"""`canary status | history | promote | abort | retry | approve | reject`: releases as an
operator sees and steers them, through the Prefect store (cli.api binds it to a server).
(`canary rollback`: cli/rollback.py.) History lists the releases and the restores
(`restore-production` runs: `canary rollback`, the automation on a regression).

Failed builds are part of both: `history` lists them ("build failed", the reason's first
line), `status` shows a running build and one that failed within the last hour. An app
the server knows nothing of is an error that names the apps it knows.

`canary promote` / `canary abort` leave an OperatorCommand for the running release; an
abort ends it ``aborted`` (canary.values.outcome.Outcome.ABORTED: production never
changed), a queued release is cancelled before it starts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Literal

from canary.values.events import BuildFailed, OperatorCommand, ReleaseEnded
from canary.values.outcome import Outcome
from cli.api import Api, Release

#: canary.judge.interval's table: the decision row of each look
DECISION = "decision"

#: One row of a command's output (printed as a table or as JSON; keys are snake_case).
Row = dict[str, object]
#: The time now (a test passes a fake clock).
Clock = Callable[[], datetime]
#: `canary status` shows a failed build for this long.
RECENT_BUILD_FAILURE = timedelta(hours=1)
#: A failed build's outcome in `canary history` (its state in `canary status`).
BUILD_FAILED = "build failed"


def _now() -> datetime:
    return datetime.now(UTC)


class CommandError(RuntimeError):
    """A command that cannot be carried out; the message says why and what to do."""


def _one_live(api: Api, app: str, *, state: str | None = None) -> Release:
    live = [r for r in api.releases(app, live=True) if state is None or r.state_type == state]
    if not live:
        what = {"PAUSED": "paused (waiting for a person)", None: "running"}.get(state, state)
        raise CommandError(f"no {what} canary release of {app!r}; `canary status` shows what runs")
    return live[0]


def status(api: Api, app: str | None, *, clock: Clock = _now) -> list[Row]:
    """Running releases (their look, split, latest judgement and time left), running builds,
    and builds that failed within the last hour (RECENT_BUILD_FAILURE).

    Args:
        api: The server.
        app: One app's (None: every app's).
        clock: The time now (a test's fake clock).

    Returns:
        One row per release or build; none for a known app with nothing running.

    Raises:
        CommandError: The app is unknown: the message names the apps the server knows.
    """
    now = clock()
    rows = [_release_row(api, r, now) for r in api.releases(app, live=True)]
    rows += _build_rows(api, app, since=now - RECENT_BUILD_FAILURE, running=True)
    if app is not None and not rows:
        _check_known(api, app)
    return rows


def _release_row(api: Api, r: Release, now: datetime) -> Row:
    table, description = api.latest_table(r.id)
    decision = next((row for row in table if row.get("metric") == DECISION), None)
    progress, ends = api.progress(r.id)
    return {
        "app": r.app, "commit": r.commit[:12], "version": r.version, "state": r.state_name,
        "look": table[0].get("look") if table else None, "canary_share": _share(description),
        "latest_judgement": decision.get("reason") if decision else None,
        "progress": None if progress is None else round(progress),
        "time_left_seconds": time_left(ends, now), "why": r.message, "run": api.run_url(r.id),
    }  # fmt: skip


def time_left(ends: datetime | None, now: datetime) -> int | None:
    """Seconds until the analysis' planned end (warm-up included), never below 0.

    Counted down from a fixed planned end, so it never grows (a rate extrapolated from the
    progress grew during the warm-up, when the progress stands still).

    Args:
        ends: The planned end (None: not known yet, e.g. before the analysis starts).
        now: The time now.

    Returns:
        Whole seconds, or None.
    """
    return None if ends is None else max(0, math.ceil((ends - now).total_seconds()))


def _share(description: str) -> int | None:
    """The canary's share of a look, from its table's description (``canary share N%``)."""
    marker = "canary share "
    if marker in description:
        digits = description.split(marker, 1)[1].split("%", 1)[0]
        return int(digits) if digits.isdigit() else None
    return None


def history(api: Api, app: str, limit: int = 20) -> list[Row]:
    """Past releases and failed builds: outcome, score, how long, and the report's link.

    Args:
        api: The server.
        app: The app.
        limit: At most this many rows.

    Returns:
        One row per ended release or failed build, newest first.

    Raises:
        CommandError: The app is unknown: the message names the apps the server knows.
    """
    ends = [e.event for e in api.events(app) if isinstance(e.event, ReleaseEnded)]
    by_run = {e.url.rstrip("/").rsplit("/", 1)[-1]: e for e in reversed(ends) if e.url}
    by_commit = {e.commit: e for e in reversed(ends) if e.commit}  # the newest wins
    rows: list[Row] = []
    runs = [*api.releases(app, live=False, limit=limit),
            *api.releases(app, live=False, limit=limit, flow="restore-production")]  # fmt: skip
    for r in runs:
        release = r.name.startswith("canary-release-")
        end = (by_run.get(r.id) or by_commit.get(r.commit)) if release else None
        rows.append({
            "started": _iso(r.started), "commit": r.commit[:12], "version": r.version,
            "outcome": _outcome(r), "score": end.score if end is not None else None,
            "duration_seconds": None if r.seconds is None else round(r.seconds),
            "why": r.message,
            "report": api.report_url(end.report) if end is not None and end.report else None,
            "run": api.run_url(r.id),
        })  # fmt: skip
    rows += _build_rows(api, app, since=None, running=False, history=True)
    if not rows:
        _check_known(api, app)
    rows.sort(key=lambda row: str(row.get("started") or ""), reverse=True)
    return rows[:limit]


def _build_rows(api: Api, app: str | None, *, since: datetime | None, running: bool,
                history: bool = False) -> list[Row]:  # fmt: skip
    """Failed builds (their ``canary.build.failed`` events, and failed or crashed build runs
    that left none) since `since`, and (``running``) the builds still running."""
    failed = {e.event.commit: (e.occurred, e.event)
              for e in reversed(api.events(app, [BuildFailed.name], limit=200))
              if isinstance(e.event, BuildFailed) and (since is None or e.occurred >= since)}  # fmt: skip
    runs = {r.commit: r for r in reversed(api.releases(app, flow="build", limit=50))}
    rows: list[Row] = []
    for commit, (occurred, event) in failed.items():
        rows.append(_build_row(event.app, commit, BUILD_FAILED, occurred, _first_line(event.reason),
                               runs.get(commit), api, history))  # fmt: skip
    for commit, run in runs.items():
        when = run.started or run.created
        if commit in failed or when is None or (since is not None and when < since):
            continue
        if run.state_type in ("FAILED", "CRASHED"):
            rows.append(_build_row(run.app, commit, BUILD_FAILED, when, _first_line(run.message),
                                   run, api, history))  # fmt: skip
        elif running and run.live:
            rows.append(_build_row(run.app, commit, "building", when, run.message, run, api, history))
    return rows


def _outcome(run: Release) -> str:
    """A history row's outcome: a release's state; a restore's (``canary rollback``: manual)."""
    if not run.name.startswith("restore-production-") or run.state_type != "COMPLETED":
        return run.state_name
    return "Restored (manual)" if run.parameters.get("by") else "Restored"


def _build_row(app: str, commit: str, state: str, when: datetime, why: str | None,
               run: Release | None, api: Api, history: bool) -> Row:  # fmt: skip
    link = api.run_url(run.id) if run is not None else None
    if history:
        return {"started": _iso(when), "commit": commit[:12], "version": None, "outcome": state,
                "score": None, "duration_seconds": None, "why": why, "report": None, "run": link}  # fmt: skip
    return {"app": app, "commit": commit[:12], "version": None, "state": state, "look": None,
            "canary_share": None, "latest_judgement": None, "progress": None,
            "time_left_seconds": None, "why": why, "run": link}  # fmt: skip


def _first_line(text: str | None) -> str | None:
    lines = (text or "").strip().splitlines()
    return lines[0] if lines else None


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat(timespec="seconds") if moment else None


def _check_known(api: Api, app: str) -> None:
    """Nothing (a known app), or CommandError naming the apps the server knows."""
    known = api.apps()
    if app not in known:
        raise CommandError(f"unknown app {app!r}: this server has no release, build or event of "
                           f"it (known apps: {', '.join(known) or 'none yet'})")  # fmt: skip


def command(api: Api, app: str, action: Literal["promote", "abort"], *, by: str,
            wait: float) -> Row:  # fmt: skip
    """Promote now / abort the app's running release; waits for it to end (up to ``wait`` s).

    An abort of a release that is not analysing yet (queued for its turn or its lock)
    cancels it: there is nothing to roll back.

    Args:
        api: The server.
        app: The app.
        action: ``promote`` or ``abort``.
        by: Who asked, in words.
        wait: Seconds to wait for the release to end.

    Returns:
        What was done, and how the release ended (its state and outcome) if it did.

    Raises:
        CommandError: No release of the app is running.
    """
    release = _one_live(api, app)
    link = api.run_url(release.id)
    if release.state_type == "PAUSED":  # it reads no command while it waits for a person
        raise CommandError(f"{release.name} waits for a person ({release.message}): "
                           f"`canary approve {app}` / `canary reject {app}` answer it")  # fmt: skip
    if action == "abort" and not any(n.startswith("traffic-") for n in api.task_run_names(release.id)):
        api.cancel(release.id, f"aborted by {by} (canary abort) before it started")
        return {"app": app, "run": link, "action": "cancelled while queued"}
    api.send(OperatorCommand(app=app, action=action, run=release.id, by=by))
    ended = wait_final(api, release.id, wait)
    outcome = Outcome.from_state_name(ended.state_name) if ended else None
    return {"app": app, "run": link, "action": action,
            "state": ended.state_name if ended else "still running",
            "outcome": outcome.value if outcome else None,
            "why": ended.message if ended else None}  # fmt: skip


def wait_final(api: Api, run_id: str, wait: float) -> Release | None:
    """The run once it ended (polled every second), None if it did not within ``wait`` s."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        run = api.run(run_id)
        if not run.live:
            return run
        time.sleep(1.0)
    return None


def retry(api: Api, app: str, commit: str) -> Row:
    """Release a commit again with the parameters of its last release (also if it was
    released before: ``retry`` lets the queue take it).

    Args:
        api: The server.
        app: The app.
        commit: The commit (a prefix will do).

    Returns:
        The new run.

    Raises:
        CommandError: The commit was never released.
    """
    past = [r for r in api.releases(app) if r.commit.startswith(commit.lower())]
    if not past:
        raise CommandError(f"no earlier canary release of {app!r} at commit {commit!r}; "
                           "`canary history " + app + "` lists them")  # fmt: skip
    params = {k: v for k, v in past[0].parameters.items() if v is not None}
    params["retry"] = True
    run = api.create_run("canary-release", "canary-release", params)
    return {"app": app, "commit": past[0].commit[:12], "run": api.run_url(run.id)}


def answer(api: Api, app: str, *, approve: bool, comment: str, by: str) -> Row:
    """Answer a paused release's manual gate or judgement (approve / reject).

    Args:
        api: The server.
        app: The app.
        approve: Approve (True) or reject.
        comment: The person's comment.
        by: Who answered, in words.

    Returns:
        The gate and the decision sent.

    Raises:
        CommandError: No release of the app waits at a canary gate.
    """
    from store.gates import APPROVE

    release = _one_live(api, app, state="PAUSED")
    key = release.pause_key or ""
    gate = key.removeprefix("manual-").removesuffix(f"-{app}")
    if gate not in APPROVE:
        raise CommandError(f"the paused run {release.name} waits at {key!r}, not at a canary gate")
    decision = APPROVE[gate] if approve else "roll back"
    note = f"{comment} ({by})" if comment else by
    api.resume(release.id, {"decision": decision, "comment": note})
    return {"app": app, "run": api.run_url(release.id), "gate": gate, "decision": decision}
