"""The release spec a flow judges with is the one every platform call gets (issue 19): a
commit's `.canary/release.yaml` reaches the platform's adapters (on Kubernetes its
`kubernetes:` section and its traffic steps), and a reconcile after a release uses the
spec that release used. The fake platform logs the spec of each call (FakePlatform.specs).
"""

from __future__ import annotations

from typing import Any

import yaml

import flows.build as build_flow
import flows.canary_release as release_flow
import flows.reconcile as reconcile_flow
from tests.flows.conftest import CANARY_CONFIG, PLATFORM, released
from tests.flows.test_app_config import carried

#: The `kubernetes:` section of the commit's spec: none of it is a default.
KUBERNETES = {"virtual_service": "storefront", "routes": ["beta"], "replicas": 3,
              "container": "app", "dockerfile": "build/Dockerfile", "context": "services/api"}  # fmt: skip


def with_kubernetes(app_config: dict[str, str]) -> dict[str, str]:
    release = yaml.safe_load(app_config["release"])
    return {**app_config, "release": yaml.safe_dump({**release, "kubernetes": KUBERNETES})}


def the_commits(spec: Any) -> bool:
    return (spec is not None and spec.kubernetes.router.virtual_service == "storefront"
            and spec.kubernetes.replicas == 3 and spec.kubernetes.container == "app"
            and spec.traffic.steps == (7, 14))  # fmt: skip


def test_a_release_passes_the_commits_spec_to_every_platform_call(make_env):
    env = make_env("gg-spec-release")  # its config file has no kubernetes: section
    state = release_flow.canary_release(**env.release_args(), app_config=with_kubernetes(carried()),
                                        return_state=True)  # fmt: skip
    assert released(state)["outcome"] == "promoted"
    methods = {method for method, _, _ in env.platform.specs}
    assert {"reconcile", "production_image", "workloads", "router", "restore_routes"} <= methods
    assert all(app == env.app and the_commits(spec) for _, app, spec in env.platform.specs), [
        (method, spec and spec.kubernetes) for method, _, spec in env.platform.specs]


def test_a_release_without_a_commit_spec_passes_its_config_file(make_env):
    env = make_env("gg-spec-file")
    released(release_flow.canary_release(**env.release_args(), return_state=True))
    sources = {spec.source for _, _, spec in env.platform.specs}
    assert sources == {str(env.spec)}


def test_a_build_passes_the_commits_spec_to_its_builder(make_env):
    env = make_env("gg-spec-build")
    release = yaml.safe_load(carried()["release"])
    env.platform.config_files = {"release.yaml": yaml.safe_dump({**release, "kubernetes": KUBERNETES}),
                                 "canary.yaml": CANARY_CONFIG.read_text()}  # fmt: skip
    build_flow.build(**env.build_args())
    # the builder that reads .canary/ cannot have its spec yet; the one that builds has it
    (read, _, before), (build, _, spec) = env.platform.specs
    assert (read, before) == ("builder_for", None)
    assert build == "builder_for" and the_commits(spec)
    assert (spec.kubernetes.dockerfile, spec.kubernetes.context) == ("build/Dockerfile", "services/api")


def test_a_build_of_a_commit_without_canary_directory_passes_no_spec(make_env):
    env = make_env("gg-spec-build-none")
    build_flow.build(**env.build_args())
    assert [spec for _, _, spec in env.platform.specs] == [None, None]


def test_reconcile_after_a_release_uses_the_spec_that_release_judged_with(make_env, monkeypatch):
    env = make_env("gg-spec-reconcile")
    state = release_flow.canary_release(**env.release_args(), app_config=with_kubernetes(carried()),
                                        return_state=True)  # fmt: skip
    released(state)
    env.platform.specs.clear()
    reports: list[str] = []
    monkeypatch.setattr(reconcile_flow, "publish_report", lambda app, text, title: reports.append(text))
    result = reconcile_flow.reconcile(app=env.app, platform=PLATFORM,
                                      run_id=f"prefect.flow-run.{state.state_details.flow_run_id}")  # fmt: skip
    assert result.recovered is not None and result.recovered.published is False  # the release reported its own end
    assert {m for m, _, _ in env.platform.specs} >= {"reconcile", "router", "workloads", "restore_routes"}
    assert all(the_commits(spec) for _, _, spec in env.platform.specs)
    assert "options of the commit's .canary/release.yaml, as the release used them" in reports[0]


def test_reconcile_falls_back_when_the_releases_spec_is_gone(make_env, monkeypatch):
    env = make_env("gg-spec-gone")
    state = release_flow.canary_release(**env.release_args(), return_state=True)
    released(state)
    env.spec.unlink()  # e.g. a worker with another checkout
    env.platform.specs.clear()
    reports: list[str] = []
    monkeypatch.setattr(reconcile_flow, "publish_report", lambda app, text, title: reports.append(text))
    reconcile_flow.reconcile(app=env.app, platform=PLATFORM,
                             run_id=str(state.state_details.flow_run_id))  # fmt: skip
    assert env.platform.specs and all(spec is None for _, _, spec in env.platform.specs)
    assert f"the release spec {env.spec} of the release could not be read again" in reports[0]
    assert "the platform's fallback spec" in reports[0]


def test_reconcile_without_a_release_run_passes_no_spec(make_env):
    env = make_env("gg-spec-norun")
    reconcile_flow.reconcile(app=env.app, platform=PLATFORM)
    assert env.platform.specs == [("reconcile", env.app, None)]
