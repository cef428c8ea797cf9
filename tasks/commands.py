"""Moved to store.commands (typed: canary.values.events.OperatorCommand).

Compatibility only: flows/canary_release.py and flows/reanalysis.py still import these names
from here. Delete this module once they import from their homes (see the import map in
the i21-store report).
"""

from __future__ import annotations

from canary.values.events import JSON
from store import commands


def take(app: str, run_id: str) -> dict[str, JSON] | None:
    """The command left for this run, once, as the dict the release flow reads.

    Args:
        app: The app.
        run_id: The release run's id.

    Returns:
        {"action", "run", "by", "at"}, or None when there is none for this run.
    """
    command = commands.take(app, run_id)
    return None if command is None else command.payload()
