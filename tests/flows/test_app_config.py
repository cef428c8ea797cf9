"""canary-release with the release config the build carried from the app's commit, and
the trigger of prefect.yaml passing that object through Prefect's templating unchanged."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
import yaml

import flows.canary_release as release_flow
from canary.errors import ConfigError
from tests.flows import api
from tests.flows.conftest import CANARY_CONFIG, COMMIT, IMAGE, released

ROOT = Path(__file__).resolve().parents[2]


def carried(app: str | None = None, steps: tuple[int, ...] = (7, 14)) -> dict[str, str]:
    spec = {"canary_config": "canary.yaml", "traffic": {"steps": list(steps)},
            "analysis": {"lifetime": "2s", "interval": "1s", "begin_after": "0s", "step": "1s",
                         "thresholds": {"pass": 95, "marginal": 75}},
            "scopes": {"control": "baseline", "experiment": "canary",
                       "extended_scope_params": {"rate_window": "5s"}},
            **({"app": app} if app else {})}  # fmt: skip
    return {"release": yaml.safe_dump(spec), "canary_config": CANARY_CONFIG.read_text(),
            "canary_config_name": "canary.yaml"}  # fmt: skip


def test_app_config_is_used_over_the_spec_file(make_env):
    env = make_env("gg-carried")
    args = env.release_args(config="/nonexistent/deployments/releases/gg-carried.yaml")
    state = release_flow.canary_release(**args, app_config=carried(), return_state=True)
    assert released(state)["outcome"] == "promoted"
    canary_shares = [c[2].canary for c in env.rec.calls if c[0] == "set_weights"]
    assert 7 in canary_shares and 14 in canary_shares  # the carried traffic plan, not a file's


def test_app_config_for_another_app_is_refused_before_any_platform_call(make_env):
    env = make_env("gg-carried-other")
    with pytest.raises(ConfigError, match="is for app 'storefront', not 'gg-carried-other'"):
        release_flow.canary_release(**env.release_args(), app_config=carried(app="storefront"))
    # the platform block is loaded (it may keep the app's ReleasePolicy), but nothing is
    # called on it, and the metrics block is never loaded
    assert env.rec.calls == [] and env.loaded == ["fake-platform/test"]


def _trigger(path: Path) -> dict:
    [deployment] = [d for d in yaml.safe_load(path.read_text())["deployments"]
                    if d["name"] == "canary-release"]  # fmt: skip
    [trigger] = deployment["triggers"]
    return trigger


def test_both_prefect_files_pass_app_config_through() -> None:
    for name in ("prefect.yaml", "prefect.kubernetes.yaml"):
        assert _trigger(ROOT / name)["parameters"]["app_config"] == "{{ event.payload.app_config }}"


def test_the_trigger_passes_the_payload_object_as_the_parameter() -> None:
    """On the real test server: a single-expression template keeps the object's type."""
    from prefect.events import DeploymentEventTrigger, emit_event
    from prefect.events.worker import EventsWorker

    trigger = _trigger(ROOT / "prefect.yaml")
    name = f"app-config-{uuid.uuid4().hex[:8]}"
    deployment_id = release_flow.canary_release.to_deployment(
        name=name, triggers=[DeploymentEventTrigger(
            name=name, expect=set(trigger["expect"]),
            match={"prefect.resource.id": "canary.app.gg-template-*"},
            parameters=trigger["parameters"])],  # fmt: skip
    ).apply()
    config = carried()
    wanted = {"gg-template-a": config, "gg-template-b": None}
    # On SQLite the server loads a new automation into its triggers' cache in a task after
    # the commit: an event that arrives first is never matched. So an app whose run has
    # not appeared is announced again (a second run of the same app would carry the same
    # parameters), until both apps have one or the deadline passes.
    def apps(found: list) -> set[str]:
        return {r.parameters["app"] for r in found}

    runs: list = []
    end = time.monotonic() + 90
    while time.monotonic() < end:
        for app in wanted.keys() - apps(runs):
            emit_event(event="canary.build.succeeded",
                       resource={"prefect.resource.id": f"canary.app.{app}", "app": app},
                       payload={"image": IMAGE, "commit": COMMIT, "repo": "r", "pushed_at": None,
                                "version": None, "app_config": wanted[app]})  # fmt: skip
        EventsWorker.drain_all()
        runs = api.poll(lambda: _runs_of(deployment_id), lambda r: apps(r) >= wanted.keys(),
                        deadline=10)  # fmt: skip
        if apps(runs) >= wanted.keys():
            break
    given = {r.parameters["app"]: r.parameters.get("app_config") for r in runs}
    assert given == wanted


def _runs_of(deployment_id: uuid.UUID) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(deployment_filter=DeploymentFilter(
            id=DeploymentFilterId(any_=[deployment_id])))  # fmt: skip
