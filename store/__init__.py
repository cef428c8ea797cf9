"""The Prefect store: the one home of every read and write through Prefect's client.

Runs (``store.runs``: what Prefect knows about flow runs; ``store.current``: the run the
caller runs in), locks (``store.locks``: the per-app global concurrency limits;
``store.turn``: waiting for a release's turn), artifacts (``store.artifacts``), events
(``store.events``: our typed events from canary.values.events, emitted and read back) and
operator commands (``store.commands``: a Prefect Variable per app).

Every reading function takes ``api_url`` (None: the server of the current settings, e.g.
inside a flow run), so processes outside a Prefect run (the CLI, the demo, the benches)
read the same records the same way. Nothing else in the project imports
``prefect.client``, ``prefect.events``, ``prefect.artifacts``, ``prefect.variables``,
``prefect.runtime`` or ``prefect.flow_runs`` (pyproject's ruff ban and import contracts).
"""
