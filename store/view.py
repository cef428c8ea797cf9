"""The store bound to one server: ``Store(api_url)``, for processes outside a Prefect run.

Every method is one function of store.runs, store.artifacts, store.events or
store.commands with this server's URL; nothing here reads the API another way. An
unreachable server raises store.client.ApiUnreachable, which says where it looked and what
to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from canary.values.events import OperatorCommand, ReleaseEvent
from canary.values.outcome import Outcome
from store import artifacts, commands, events, runs
from store.client import api_url_of, check, ui_url_of
from store.events import StoredEvent
from store.runs import RunRecord

__all__ = ["Store"]


class Store:
    """The store's functions bound to one Prefect server: what a process outside a Prefect
    run (the CLI, the demo, a bench) reads and writes.

    Args:
        api_url: The server's API URL (None: PREFECT_API_URL).

    Raises:
        ApiUnreachable: No API URL is given or set.
    """

    def __init__(self, api_url: str | None = None) -> None:
        self.api_url = api_url_of(api_url)
        self.ui_url = ui_url_of(self.api_url) or self.api_url.removesuffix("/api")

    def check(self) -> None:
        """Ask the server whether it is healthy (ApiUnreachable when it does not answer)."""
        check(self.api_url)

    def run_url(self, run_id: str) -> str:
        """A run's page in the Prefect UI."""
        return f"{self.ui_url}/runs/flow-run/{run_id}"

    def releases(self, app: str | None = None, *, live: bool | None = None, limit: int = 200,
                 flow: str = "canary-release") -> list[RunRecord]:  # fmt: skip
        """Runs of ``flow`` (newest first), of one app, live or ended ones only (store.runs.runs)."""
        return runs.runs(flow, app, live=live, limit=limit, api_url=self.api_url)

    def run(self, run_id: str) -> RunRecord:
        """One run (store.runs.run)."""
        return runs.run(run_id, api_url=self.api_url)

    def task_run_names(self, run_id: str) -> list[str]:
        """A run's task runs' names (store.runs.task_run_names)."""
        return runs.task_run_names(run_id, api_url=self.api_url)

    def cancel(self, run_id: str, message: str) -> None:
        """Ask a run to stop (store.runs.cancel)."""
        runs.cancel(run_id, message, api_url=self.api_url)

    def create_run(self, flow: str, deployment: str, parameters: dict[str, object]) -> RunRecord:
        """Start a deployment's run (store.runs.create_run)."""
        return runs.create_run(flow, deployment, parameters, api_url=self.api_url)

    def resume(self, run_id: str, run_input: dict[str, str]) -> None:
        """Resume a paused run with a person's input (store.runs.resume)."""
        runs.resume(run_id, run_input, api_url=self.api_url)

    def latest_table(self, run_id: str) -> tuple[list[dict[str, object]], str]:
        """A run's newest table: rows and description (store.artifacts.latest_table)."""
        return artifacts.latest_table(run_id, api_url=self.api_url)

    def progress(self, run_id: str) -> tuple[float | None, datetime | None]:
        """A run's progress in percent and its planned end (store.artifacts.progress_of)."""
        return artifacts.progress_of(run_id, api_url=self.api_url)

    def report_url(self, report_id: str) -> str:
        """A report artifact's page in the Prefect UI (store.artifacts.report_link)."""
        return artifacts.report_link(report_id, ui_url=self.ui_url)

    def events(self, app: str | None, names: Sequence[str] | None = None, *, days: int = 7,
               limit: int = 50) -> list[StoredEvent[ReleaseEvent]]:  # fmt: skip
        """An app's (None: every app's) events, typed, newest first (store.events.events;
        default: release ends, not the looks and starts that share their prefix)."""
        ends = list(names) if names else [outcome.event for outcome in Outcome]
        return events.events(app, names=ends, days=days, limit=limit, api_url=self.api_url)

    def apps(self, *, days: int = 7) -> list[str]:
        """Every app the server knows: of a release or build run, or of one of our events.

        Args:
            days: How far back events are read.

        Returns:
            The apps' names, sorted.
        """
        found = {r.app for flow in ("canary-release", "build")
                 for r in runs.runs(flow, limit=200, api_url=self.api_url)}  # fmt: skip
        found.update(e.event.app for e in events.events(
            prefixes=("canary.build.", "canary.release.", "canary.production."), days=days,
            limit=200, api_url=self.api_url))  # fmt: skip
        return sorted(a for a in found if a)

    def send(self, command: OperatorCommand) -> OperatorCommand:
        """Leave an operator command for a running release (store.commands.send)."""
        return commands.send(command, api_url=self.api_url)
