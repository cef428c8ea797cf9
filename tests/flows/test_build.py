"""The build flow on a real Prefect test server, with a fake platform builder."""

from __future__ import annotations

import pytest
import yaml

import flows.build as build_flow
from canary.errors import BuildError, ConfigError, PlatformError
from tests.flows import api
from tests.flows.conftest import CANARY_CONFIG, COMMIT


def test_success_returns_image_and_emits_succeeded(make_env):
    env = make_env("gg-build")
    args = env.build_args(commit=COMMIT.upper())  # a commit id is accepted in any case
    result = build_flow.build(**args)
    image = f"registry.test/gg-build:{COMMIT[:12]}"
    assert result == {"app": "gg-build", "commit": COMMIT, "image": image, "repo": args["repo"],
                      "pushed_at": None, "version": None, "app_config": None}
    assert env.rec.calls == [("config_files", "gg-build", args["repo"], COMMIT),
                             ("production_commit", "gg-build"),
                             ("build", "gg-build", args["repo"], COMMIT)]  # fmt: skip
    assert env.loaded == ["fake-platform/test"]
    event = api.events("canary.build.succeeded", "gg-build")[0]
    assert event.resource["app"] == "gg-build"
    assert event.payload == {"image": image, "commit": COMMIT, "repo": args["repo"],
                             "pushed_at": None, "version": None, "app_config": None}
    assert api.events("canary.build.failed", "gg-build", at_least=0) == []


def test_transient_build_error_is_retried(make_env):
    env = make_env("gg-build-flaky")
    env.rec.fail("build", lambda: PlatformError("registry 502", transient=True), times=1)
    result = build_flow.build(**env.build_args())
    assert result["image"].startswith("registry.test/gg-build-flaky:")
    assert env.rec.count("build") == 2


def test_build_error_emits_failed_with_reason(make_env):
    env = make_env("gg-build-broken")
    env.rec.fail("build", lambda: BuildError("step compile: exit code 2"), times=None)
    state = build_flow.build(**env.build_args(), return_state=True)
    assert state.is_failed()
    with pytest.raises(BuildError, match="step compile: exit code 2"):
        state.result()
    assert env.rec.count("build") == 1  # a failed build is never retried
    event = api.events("canary.build.failed", "gg-build-broken")[0]
    assert event.payload["reason"] == "step compile: exit code 2"
    assert event.payload["commit"] == COMMIT
    assert api.events("canary.build.succeeded", "gg-build-broken", at_least=0) == []


@pytest.mark.parametrize(("n", "commit"), list(enumerate(["main", "abc1234", COMMIT + "0"])))
def test_bad_commit_is_rejected_before_building(make_env, n, commit):
    app = f"gg-build-ref-{n}"  # one app per case: its failed event is the only one
    env = make_env(app)
    with pytest.raises(ConfigError, match=f"commit '{commit}' is not a full 40-hex"):
        build_flow.build(**env.build_args(commit=commit))
    assert env.rec.calls == [] and env.loaded == []
    [event] = api.events("canary.build.failed", app)
    assert event.payload["commit"] == commit and commit in event.payload["reason"]


def test_a_repository_name_is_mapped_to_a_valid_app_name(make_env):
    env = make_env("gold-goose")
    result = build_flow.build(**env.build_args(app="Gold_Goose"))  # the GitHub repository name
    assert result["app"] == "gold-goose"
    assert api.events("canary.build.succeeded", "gold-goose")[0].resource["app"] == "gold-goose"


def test_a_repository_name_that_maps_to_nothing_is_rejected_before_building(make_env):
    env = make_env("gg-build-app")
    with pytest.raises(ConfigError, match="maps to no valid app name"):
        build_flow.build(**env.build_args(app="___"))
    assert env.rec.calls == [] and env.loaded == []


# -- idempotent by commit -------------------------------------------------------------------


def test_a_second_build_of_a_built_commit_is_skipped(make_env):
    env = make_env("gg-build-twice")
    build_flow.build(**env.build_args())
    state = build_flow.build(**env.build_args(), return_state=True)
    assert state.is_cancelled() and state.name == "Skipped", state
    assert "already handled by run build-gg-build-twice-" in state.message
    assert env.rec.count("build") == 1  # one build, however many deliveries
    assert len(api.events("canary.build.succeeded", "gg-build-twice")) == 1


def test_a_build_of_the_commit_production_runs_is_skipped(make_env):
    env = make_env("gg-build-prod")
    env.platform.production_commit_value = COMMIT
    state = build_flow.build(**env.build_args(), return_state=True)
    assert state.is_cancelled() and state.name == "Skipped"
    assert state.message == f"production already runs commit {COMMIT[:12]}: nothing to build or release"
    assert env.rec.count("build") == 0
    assert api.events("canary.build.succeeded", "gg-build-prod", at_least=0) == []


# -- the release config travels with the app (.canary/ of the commit) ----------------------


def canary_files(**change: object) -> dict[str, str]:
    """A .canary/ with a release spec (no app: named after the repository) and its config."""
    spec = {"canary_config": "canary.yaml",
            "analysis": {"lifetime": "3s", "interval": "1s", "begin_after": "0s", "step": "1s",
                         "thresholds": {"pass": 95, "marginal": 75}}, **change}  # fmt: skip
    return {"release.yaml": yaml.safe_dump(spec), "canary.yaml": CANARY_CONFIG.read_text()}


def test_the_commits_canary_directory_is_validated_and_carried_in_the_event(make_env):
    env = make_env("gg-build-carry")
    env.platform.config_files = canary_files()
    result = build_flow.build(**env.build_args())
    carried = result["app_config"]
    assert carried == {"release": env.platform.config_files["release.yaml"],
                       "canary_config": CANARY_CONFIG.read_text(),
                       "canary_config_name": "canary.yaml"}  # fmt: skip
    event = api.events("canary.build.succeeded", "gg-build-carry")[0]
    assert event.payload["app_config"] == carried


def test_the_spec_may_name_the_app(make_env):
    env = make_env("gg-build-named")
    env.platform.config_files = canary_files(app="storefront")
    result = build_flow.build(**env.build_args())
    assert result["app"] == "storefront"
    assert [c[:2] for c in env.rec.calls] == [("config_files", "gg-build-named"),
                                              ("production_commit", "storefront"),
                                              ("build", "storefront")]  # fmt: skip
    event = api.events("canary.build.succeeded", "storefront")[0]
    assert event.resource["app"] == "storefront"


def test_a_bad_canary_directory_fails_the_build_before_building(make_env):
    env = make_env("gg-build-badcfg")
    env.platform.config_files = canary_files(analysis={"lifetime": "3s", "interval": "1s",
                                                       "thresholds": {"pass": 95}, "colour": 1})
    with pytest.raises(ConfigError, match=r"\.canary/release\.yaml: analysis: unknown key .colour."):
        build_flow.build(**env.build_args())
    assert env.rec.count("build") == 0
    [event] = api.events("canary.build.failed", "gg-build-badcfg")
    assert "at 0123456789ab: .canary/release.yaml: analysis: unknown key 'colour'" in (
        event.payload["reason"])
    assert api.events("canary.build.succeeded", "gg-build-badcfg", at_least=0) == []
