"""What the platform carried at each look, on a real Prefect test server: the split read
back from the router and the platform's restarts, in the run's log and in the report.

The fake router restarts (as the local supervisor restarts HAProxy) while the first look's
data is collected: it comes back at 100 % production, so the first look's read-back differs
from the planned split, and the restart is reported with its time. The next window sets the
split again, so the later looks carry what was planned.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import flows.canary_release as release_flow
import tasks.analysis
from canary.values.carried import split
from canary.values.weights import Weights
from tests.flows import api
from tests.flows.conftest import released


def _restart_during_the_first_look(monkeypatch: Any, env: Any) -> None:
    observe = tasks.analysis.observe
    calls: list[int] = []

    def observed(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            env.platform.restart_router(env.app)
        return observe(*args, **kwargs)

    monkeypatch.setattr(tasks.analysis, "observe", observed)


def test_a_restart_and_the_split_it_dropped_show_in_the_log_and_the_report(make_env, monkeypatch) -> None:
    env = make_env("gg-restart", sequential=True)
    _restart_during_the_first_look(monkeypatch, env)
    state = release_flow.canary_release(**env.release_args(), return_state=True)
    result = released(state)
    run_id = state.state_details.flow_run_id

    planned = Weights(primary=80, baseline=10, canary=10)  # the spec's first step: 10 %
    assert split(planned) == "80/10/10"
    report = next(a for a in api.artifacts_of(run_id, "markdown")
                  if a.key == "canary-report-gg-restart").data  # fmt: skip
    if os.environ.get("CANARY_EVIDENCE"):  # the report kept for a person to read
        Path(os.environ["CANARY_EVIDENCE"]).write_text(report.split("## Pictures", 1)[0])
    assert "look 1: the router carried 100/0/0, not the planned 80/10/10" in report
    assert "look 1 planned 80/10/10, carried 100/0/0 **(differs)**" in report
    assert "look 2 planned 60/20/20, carried 60/20/20," in report  # set again: as planned
    restart = env.platform.restarts[0]
    at = f"{restart.at:%H:%M:%S} UTC"
    assert f"1 restart during the analysis**: haproxy at {at}" in report
    assert (f"- {at}: **haproxy restarted (pid 4711 was killed by SIGKILL; restarted as pid "
            "4712)**") in report  # fmt: skip
    timeline = report.split("## Timeline", 1)[1].split("\n## ", 1)[0]
    # in time order: it happened while look 1's data was read, after its window ended
    assert timeline.index("look 1 planned") < timeline.index("haproxy restarted") \
        < timeline.index("look 2 planned")

    logs = api.poll(lambda: api.logs_matching("gg-restart look 1: "),
                    lambda found: len(found) >= 2)  # fmt: skip
    assert any("the router carried 100/0/0, not the planned 80/10/10" in m for m in logs), logs
    assert any(f"haproxy restarted (pid 4711 was killed by SIGKILL; restarted as pid 4712) at {at}"
               in m for m in logs), logs  # fmt: skip
    assert not api.logs_matching("gg-restart look 2: the router carried")
    assert result["outcome"] in ("promoted", "rolled-back")  # the look goes on as it would have


def test_a_split_that_cannot_be_read_back_is_reported_and_never_fails_the_release(make_env, monkeypatch) -> None:
    """Reading back is a side channel: a router that does not answer at the look leaves
    'unknown' in the report and a warning, and the release ends as it would have."""
    from canary.errors import PlatformError

    env = make_env("gg-unread", sequential=True)
    reads: list[int] = []
    router = env.platform.router(env.app, None)
    read = router.read_weights

    def flaky(app: str) -> Weights:
        reads.append(1)
        if len(reads) == 3:  # deploy's pin, window 1's set, then look 1's read-back
            raise PlatformError("the admin socket does not answer")
        return read(app)

    monkeypatch.setattr(router, "read_weights", flaky)
    state = release_flow.canary_release(**env.release_args(), return_state=True)
    result = released(state)
    assert result["outcome"] == "promoted", result
    report = next(a for a in api.artifacts_of(state.state_details.flow_run_id, "markdown")
                  if a.key == "canary-report-gg-unread").data  # fmt: skip
    assert "look 1 planned 80/10/10, carried unknown (not read back) **(differs)**" in report
    assert "**look 1: the split could not be read back** (the router: PlatformError: the admin " \
           "socket does not answer" in report
