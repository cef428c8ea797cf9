"""`canary status | history | promote | abort | retry | approve | reject`: releases as an
operator sees and steers them, through the Prefect API (cli.api)."""

from __future__ import annotations

import time
from typing import Any

from cli.api import Api, Release

#: canary.judge.interval's table: the decision row of each look
DECISION = "decision"


class CommandError(RuntimeError):
    """A command that cannot be carried out; the message says why and what to do."""


def _one_live(api: Api, app: str, *, state: str | None = None) -> Release:
    live = [r for r in api.releases(app, live=True) if state is None or r.state_type == state]
    if not live:
        what = {"PAUSED": "paused (waiting for a person)", None: "running"}.get(state, state)
        raise CommandError(f"no {what} canary release of {app!r}; `canary status` shows what runs")
    return live[0]


def status(api: Api, app: str | None) -> list[dict[str, Any]]:
    """Running releases: their look, split, latest judgement and time left."""
    rows = []
    for r in api.releases(app, live=True):
        table = api.latest_table(r.run_id)
        decision = next((row for row in table if row.get("metric") == DECISION), None)
        look = table[0].get("look") if table else None
        progress = api.progress(r.run_id)
        left = None
        if progress and r.seconds and 0 < progress < 100:
            left = r.seconds * (100 - progress) / progress
        rows.append({
            "app": r.app, "commit": r.commit[:12], "version": r.version, "state": r.state,
            "look": look, "canary share": _share(api, r.run_id),
            "latest judgement": decision.get("reason") if decision else None,
            "progress": None if progress is None else round(progress),
            "time left (s)": None if left is None else round(left), "run": api.run_url(r.run_id),
        })  # fmt: skip
    return rows


def _share(api: Api, run_id: str) -> int | None:
    """The canary's share of the newest look (from its table's description)."""
    tables = api.artifacts(run_id, kind="table", limit=1)
    text = (tables[0].description or "") if tables else ""
    marker = "canary share "
    if marker in text:
        digits = text.split(marker, 1)[1].split("%", 1)[0]
        return int(digits) if digits.isdigit() else None
    return None


def history(api: Api, app: str, limit: int = 20) -> list[dict[str, Any]]:
    """Past releases: outcome, score, how long, and the link to the report."""
    events = {e.payload.get("commit"): e for e in api.events(app)}
    rows = []
    for r in api.releases(app, live=False, limit=limit):
        e = events.get(r.commit)
        payload = e.payload if e is not None else {}
        rows.append({
            "started": r.started.isoformat(timespec="seconds") if r.started else None,
            "commit": r.commit[:12], "version": r.version, "outcome": r.state,
            "score": payload.get("score"), "duration (s)": None if r.seconds is None else round(r.seconds),
            "why": r.message, "report": api.run_url(r.run_id),
        })  # fmt: skip
    return rows


def command(api: Api, app: str, action: str, *, by: str, wait: float) -> dict[str, Any]:
    """promote / abort the app's running release; waits for it to end (up to `wait` s)."""
    from tasks.commands import send

    release = _one_live(api, app)
    if action == "abort" and not any(n.startswith("traffic-") for n in api.task_run_names(release.run_id)):
        # not analysing yet (queued for its turn or its lock): nothing to roll back
        api.cancel(release.run_id, f"aborted by {by} (canary abort) before it started")
        return {"app": app, "run": api.run_url(release.run_id), "action": "cancelled while queued"}
    send(app, action, release.run_id, by=by)
    ended = _wait_final(api, release.run_id, wait)
    return {"app": app, "run": api.run_url(release.run_id), "action": action,
            "state": ended.state if ended else "still running", "why": ended.message if ended else None}  # fmt: skip


def _wait_final(api: Api, run_id: str, wait: float) -> Release | None:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        run = api.run(run_id)
        if not run.live:
            return run
        time.sleep(1.0)
    return None


def retry(api: Api, app: str, commit: str) -> dict[str, Any]:
    """Release `commit` again with the parameters of its last release (also if it was
    released before: `retry` lets the queue take it)."""
    past = [r for r in api.releases(app) if r.commit.startswith(commit.lower())]
    if not past:
        raise CommandError(f"no earlier canary release of {app!r} at commit {commit!r}; "
                           "`canary history " + app + "` lists them")  # fmt: skip
    params = {k: v for k, v in past[0].parameters.items() if v is not None}
    params["retry"] = True
    run = api.create_run("canary-release", "canary-release", params)
    return {"app": app, "commit": past[0].commit[:12], "run": api.run_url(run.run_id)}


def answer(api: Api, app: str, *, approve: bool, comment: str, by: str) -> dict[str, Any]:
    """Answer a paused release's manual gate or judgement (approve / reject)."""
    from tasks.judgement import APPROVE

    release = _one_live(api, app, state="PAUSED")
    key = getattr(api.run_state(release.run_id).state_details, "pause_key", None) or ""
    gate = key.removeprefix("manual-").removesuffix(f"-{app}")
    if gate not in APPROVE:
        raise CommandError(f"the paused run {release.name} waits at {key!r}, not at a canary gate")
    decision = APPROVE[gate] if approve else "roll back"
    note = f"{comment} ({by})" if comment else by
    api.resume(release.run_id, {"decision": decision, "comment": note})
    return {"app": app, "run": api.run_url(release.run_id), "gate": gate, "decision": decision}
