"""`canary status | history | promote | abort | retry | approve | reject`: releases as an
operator sees and steers them, through the Prefect store (cli.api binds it to a server).
(`canary rollback`: cli/rollback.py.) History lists the releases and the restores
(`restore-production` runs: `canary rollback`, the automation on a regression).

`canary promote` / `canary abort` leave an OperatorCommand for the running release; an
abort ends it ``aborted`` (canary.values.outcome.Outcome.ABORTED: production never
changed), a queued release is cancelled before it starts.
"""

from __future__ import annotations

import time
from typing import Literal

from canary.values.events import OperatorCommand, ReleaseEnded
from canary.values.outcome import Outcome
from cli.api import Api, Release

#: canary.judge.interval's table: the decision row of each look
DECISION = "decision"

#: One row of a command's output (printed as a table or as JSON).
Row = dict[str, object]


class CommandError(RuntimeError):
    """A command that cannot be carried out; the message says why and what to do."""


def _one_live(api: Api, app: str, *, state: str | None = None) -> Release:
    live = [r for r in api.releases(app, live=True) if state is None or r.state_type == state]
    if not live:
        what = {"PAUSED": "paused (waiting for a person)", None: "running"}.get(state, state)
        raise CommandError(f"no {what} canary release of {app!r}; `canary status` shows what runs")
    return live[0]


def status(api: Api, app: str | None) -> list[Row]:
    """Running releases: their look, split, latest judgement and time left.

    Args:
        api: The server.
        app: One app's releases (None: every app's).

    Returns:
        One row per running release.
    """
    rows: list[Row] = []
    for r in api.releases(app, live=True):
        table, description = api.latest_table(r.id)
        decision = next((row for row in table if row.get("metric") == DECISION), None)
        progress = api.progress(r.id)
        left = None
        if progress and r.seconds and 0 < progress < 100:
            left = r.seconds * (100 - progress) / progress
        rows.append({
            "app": r.app, "commit": r.commit[:12], "version": r.version, "state": r.state_name,
            "look": table[0].get("look") if table else None, "canary share": _share(description),
            "latest judgement": decision.get("reason") if decision else None,
            "progress": None if progress is None else round(progress),
            "time left (s)": None if left is None else round(left), "run": api.run_url(r.id),
        })  # fmt: skip
    return rows


def _share(description: str) -> int | None:
    """The canary's share of a look, from its table's description (``canary share N%``)."""
    marker = "canary share "
    if marker in description:
        digits = description.split(marker, 1)[1].split("%", 1)[0]
        return int(digits) if digits.isdigit() else None
    return None


def history(api: Api, app: str, limit: int = 20) -> list[Row]:
    """Past releases: outcome, score, how long, and the link to the report.

    Args:
        api: The server.
        app: The app.
        limit: At most this many releases.

    Returns:
        One row per ended release, newest first.
    """
    ends = {e.event.commit: e.event for e in api.events(app) if isinstance(e.event, ReleaseEnded)}
    rows: list[Row] = []
    runs = [*api.releases(app, live=False, limit=limit),
            *api.releases(app, live=False, limit=limit, flow="restore-production")]  # fmt: skip
    for r in sorted(runs, key=lambda r: r.started.timestamp() if r.started else 0.0, reverse=True):
        end = ends.get(r.commit) if r.name.startswith("canary-release-") else None
        rows.append({
            "started": r.started.isoformat(timespec="seconds") if r.started else None,
            "commit": r.commit[:12], "version": r.version, "outcome": _outcome(r),
            "score": end.score if end is not None else None,
            "duration (s)": None if r.seconds is None else round(r.seconds),
            "why": r.message, "report": api.run_url(r.id),
        })  # fmt: skip
    return rows[:limit]


def _outcome(run: Release) -> str:
    """A history row's outcome: a release's state; a restore's (``canary rollback``: manual)."""
    if not run.name.startswith("restore-production-") or run.state_type != "COMPLETED":
        return run.state_name
    return "Restored (manual)" if run.parameters.get("by") else "Restored"


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
