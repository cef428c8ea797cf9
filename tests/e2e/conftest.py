"""The whole chain for real: Prefect server, worker, relay, HAProxy, Prometheus, goldengoose.

One chain for the tests/e2e package (a fresh Prefect DB costs ~15-25 s here), started by
tests/support/live_chain.py (shared with tests/faults, which starts a chain of its own);
production starts on v1 under steady bounded load through HAProxy, which the canary
releases then split.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.live_chain import APP, Live, Load, git, start_live

__all__ = ["APP", "Live", "git", "live"]


@pytest.fixture(scope="package")  # one chain for tests/e2e, whose files run on one xdist worker
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    load = None
    try:
        with start_live(tmp_path_factory.mktemp("chain")) as state:
            load = Load(f"http://127.0.0.1:{state.chain.config.app_port}/", rate=60,
                        duration=600)  # fmt: skip
            yield state
    finally:
        if load is not None:
            load.join(20)
