"""The release's working artifacts, each made inside a task run.

Why tasks: the Prefect UI lists a run's artifacts by id (random), and its run page (the
one our links open) shows the artifacts of the flow run itself above those of its task
runs. Made here, the progress bar and the graph links sit under "Task runs", and the
report, made by the flow itself, is the one artifact at the top (docs/operations.md,
"Where to look"). A look's table is made by the look's judge task run
(tasks.analysis.judge_look), which is a task run already. Not retried: an artifact that
failed once is reported by the run; the release does not wait for it.
"""

from __future__ import annotations

from datetime import datetime

from prefect import task
from prefect.cache_policies import NO_CACHE

from store import artifacts
from store.artifacts import Progress

__all__ = ["publish_graph_links", "start_progress"]


@task(name="start-progress", task_run_name="start-progress-{app}", cache_policy=NO_CACHE)
def start_progress(app: str, description: str, ends: datetime | None = None) -> Progress:
    """store.artifacts.start_progress in a task run (the bar is then moved by its id)."""
    return artifacts.start_progress(app, description, ends=ends)


@task(name="publish-graph-links", task_run_name="publish-graph-links-{app}", cache_policy=NO_CACHE)
def publish_graph_links(app: str, links: list[tuple[str, str]]) -> None:
    """store.artifacts.publish_graph_links (one link per metric) in a task run."""
    artifacts.publish_graph_links(app, links)
