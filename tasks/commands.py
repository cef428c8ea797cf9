"""Operator commands for a running release: `canary promote` / `canary abort`.

The CLI leaves a command in a Prefect Variable named after the app; the release reads it
while it waits for its next look (every couple of seconds) and acts on it: promote now
(the rest of the analysis skipped, recorded as a manual decision) or roll back now. A
command names the run it is for, so a stale one never reaches the next release.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

ACTIONS = ("promote", "abort")


def variable_name(app: str) -> str:
    return f"canary-command-{app}"


def send(app: str, action: str, run_id: str, *, by: str = "an operator") -> dict[str, Any]:
    """Leave `action` for release run `run_id` of `app` (the CLI's side)."""
    from prefect.client.schemas.actions import VariableCreate, VariableUpdate

    if action not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
    value = {"action": action, "run": str(run_id), "by": by, "at": datetime.now(UTC).isoformat()}
    name = variable_name(app)
    with get_client(sync_client=True) as client:
        if client.read_variable_by_name(name) is not None:
            client.update_variable(VariableUpdate(name=name, value=value))
        else:
            client.create_variable(VariableCreate(name=name, value=value))
    return value


def take(app: str, run_id: str) -> dict[str, Any] | None:
    """The command left for this run, once (the release's side); None when there is none."""
    name = variable_name(app)
    with get_client(sync_client=True) as client:
        variable = client.read_variable_by_name(name)
        if variable is None:
            return None
        value = variable.value if isinstance(variable.value, dict) else None
        if value is None or value.get("run") != str(run_id) or value.get("action") not in ACTIONS:
            return None
        with contextlib.suppress(ObjectNotFound):
            client.delete_variable_by_name(name)
    return value
