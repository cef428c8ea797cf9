"""Operator commands for a running release: ``canary promote`` / ``canary abort``.

The CLI leaves an OperatorCommand in a Prefect Variable named after the app; the release
reads it while it waits for its next look (every POLL_SECONDS, and once more as each wait
ends) and acts on it: promote now (the rest of the analysis skipped, recorded as a manual
decision) or roll back now. A command names the run it is for, so a stale one never reaches
the next release.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

from prefect.client.schemas.actions import VariableCreate, VariableUpdate
from prefect.exceptions import ObjectNotFound

from canary.values.events import OperatorCommand
from store.client import client

__all__ = ["ACTIONS", "POLL_SECONDS", "send", "take", "variable_name"]

ACTIONS = ("promote", "abort")
#: Seconds between two reads of a release's command while it waits for a look: one API
#: request each, the most frequent a release makes (every 2 s it was a fifth of all of a
#: lone release's requests: docs/scaling.md). A command is acted on within this, or after
#: the look in progress when it comes during one.
POLL_SECONDS = 5.0


def variable_name(app: str) -> str:
    """The Variable an app's command waits in (``canary-command-<app>``)."""
    return f"canary-command-{app}"


def send(command: OperatorCommand, *, api_url: str | None = None) -> OperatorCommand:
    """Leave a command for a release run (the CLI's side); it replaces an earlier one.

    Args:
        command: The command (its ``at`` is set to now when missing).
        api_url: An explicit API URL, or None.

    Returns:
        The command as left.
    """
    if command.at is None:
        command = command.model_copy(update={"at": datetime.now(UTC)})
    value = command.payload()
    name = variable_name(command.app)
    with client(api_url) as prefect:
        if prefect.read_variable_by_name(name) is not None:
            prefect.update_variable(VariableUpdate(name=name, value=value))
        else:
            prefect.create_variable(VariableCreate(name=name, value=value))
    return command


def take(app: str, run_id: str, *, api_url: str | None = None) -> OperatorCommand | None:
    """The command left for this run, once (the release's side).

    Args:
        app: The app.
        run_id: The release run's id: a command for another run is left alone.
        api_url: An explicit API URL, or None.

    Returns:
        The command (then deleted), or None when there is none for this run.
    """
    name = variable_name(app)
    with client(api_url) as prefect:
        variable = prefect.read_variable_by_name(name)
        if variable is None or not isinstance(variable.value, dict):
            return None
        try:
            command = OperatorCommand.parse(variable.value, app=app)
        except ValueError:  # not a command of ours (an action we do not know)
            return None
        if command.run != str(run_id):
            return None
        with contextlib.suppress(ObjectNotFound):
            prefect.delete_variable_by_name(name)
    return command
