"""A ReleasePolicy read by the strict loader (canary.config.policy), `canary validate` of a
policy file, and the one precedence of a release's config sources (canary.appconfig)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from canary.appconfig import config_source, policy_lookup, release_config_of, spec_of_run
from canary.config.policy import NOT_IN_SCHEMA, Policy, policy_file, read_policy
from canary.config.release import ReleaseSpec
from canary.errors import ConfigError
from cli.check import validate

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deployments" / "kubernetes" / "examples" / "releasepolicy.yaml"


def example() -> dict[str, Any]:
    """The shipped example policy, a fresh copy."""
    return copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))


def test_the_example_policy_loads_with_the_same_models_as_the_files() -> None:
    policy = read_policy(example())
    assert (policy.namespace, policy.name, policy.where) == ("shop", "myapp", "ReleasePolicy shop/myapp")
    assert policy.spec.app == "myapp" and policy.spec.traffic.steps == (10, 25, 50)
    assert policy.spec.kubernetes.router is not None and policy.spec.kubernetes.router.virtual_service == "myapp"
    config = policy.canary_config()
    assert config.sequential and [m.name for m in config.metrics] == ["error-rate", "latency"]


@pytest.mark.parametrize(("change", "words"), [
    (lambda p: p.update(kind="Deployment"), "not a ReleasePolicy"),
    (lambda p: p.update(apiVersion="prefect-canary.dev/v1"), "apiVersion"),
    (lambda p: p["metadata"].pop("name"), "metadata.name: required"),
    (lambda p: p["spec"].update(extra=1), "spec: unknown key 'extra'"),
    (lambda p: p["spec"]["release"].update(canary_config="c.yaml"), "spec.release.canary_config"),
    (lambda p: p["spec"].update(canaryConfigRef={"name": "c"}), "exactly one of canaryConfig"),
    (lambda p: p["spec"].pop("canaryConfig"), "exactly one of canaryConfig"),
    (lambda p: p["spec"]["release"]["analysis"].update(lookback="5m"), "sequential judge"),
    (lambda p: p["spec"]["release"].update(app="My_App"), "spec.release: app: app 'My_App' is not a valid name"),
    (lambda p: p["spec"]["canaryConfig"]["metrics"][0]["analysisConfigurations"]["canary"].update(direction="up"),
     "ReleasePolicy shop/myapp: spec.canaryConfig: metric 'error-rate' (metrics[0]): "
     "analysisConfigurations.canary.direction: 'up' is not one of"),
])  # fmt: skip
def test_the_loader_refuses_naming_the_policy_and_the_key(change: Any, words: str) -> None:
    policy = example()
    change(policy)
    with pytest.raises(ConfigError) as caught:
        read_policy(policy).canary_config()
    assert words in str(caught.value)


# -- what the CRD's schema cannot say: the API server accepts it, the loader refuses it --------
@pytest.mark.parametrize(("change", "words"), [
    (lambda p: p["spec"]["canaryConfig"]["metrics"][0]["query"].update(metricname="x"), "unknown key 'metricname'"),
    (lambda p: p["spec"]["release"]["analysis"].update(lifetime="0s"), "lifetime must be longer than 0"),
    (lambda p: p["spec"]["release"]["analysis"].update(step="1.5s"), "step must be a whole number"),
    (lambda p: p["spec"]["release"]["analysis"].update(control_offset="1m"), "sequential judge"),
])  # fmt: skip
def test_what_the_schema_cannot_say_the_loader_refuses(change: Any, words: str) -> None:
    policy = example()
    change(policy)
    with pytest.raises(ConfigError, match=words):
        read_policy(policy).canary_config()
    assert len(NOT_IN_SCHEMA) >= 4


def test_a_canary_config_in_a_config_map_is_read_through_the_reader() -> None:
    policy = example()
    inline = policy["spec"].pop("canaryConfig")
    policy["spec"]["canaryConfigRef"] = {"name": "myapp-canary"}
    loaded = read_policy(policy)
    asked: list[tuple[str, str]] = []

    def read(name: str, key: str) -> str | None:
        asked.append((name, key))
        return yaml.safe_dump(inline) if name == "myapp-canary" else None

    assert loaded.canary_config(read).name == "myapp" and asked == [("myapp-canary", "canary.yaml")]
    with pytest.raises(ConfigError, match="ConfigMap 'myapp-canary' key 'canary.yaml': not found"):
        loaded.canary_config(lambda name, key: None)
    policy["spec"]["canaryConfigRef"] = {"name": "Bad Name"}
    with pytest.raises(ConfigError, match="canaryConfigRef.name"):
        read_policy(policy)


def test_canary_validate_accepts_a_policy_file_with_its_config_map(tmp_path: Path) -> None:
    rows = validate(str(EXAMPLE))
    assert [r["ok"] for r in rows] == [True, True] and "release spec for 'myapp'" in str(rows[1]["check"])
    policy = example()
    inline = policy["spec"].pop("canaryConfig")
    policy["spec"]["canaryConfigRef"] = {"name": "myapp-canary", "key": "c.yaml"}
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "myapp-canary"},
                  "data": {"c.yaml": yaml.safe_dump(inline)}}  # fmt: skip
    both = tmp_path / "policy.yaml"
    both.write_text(yaml.safe_dump_all([policy, config_map]))
    assert all(r["ok"] for r in validate(str(both)))
    alone = tmp_path / "alone.yaml"
    alone.write_text(yaml.safe_dump(policy))
    with pytest.raises(ConfigError, match="not found"):
        validate(str(alone))
    assert policy_file(tmp_path / "absent.yaml") is None


# -- precedence ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("carried", "policy", "config", "wins"), [
    (True, True, "deployments/releases/x.yaml", "commit"),
    (True, False, None, "commit"),
    (False, True, "deployments/releases/x.yaml", "policy"),
    (False, True, None, "policy"),
    (False, False, "deployments/releases/x.yaml", "deployment"),
    (False, False, None, "repository"),
])  # fmt: skip
def test_the_commit_then_the_policy_then_the_deployments_config_then_the_repository(
        carried: bool, policy: bool, config: str | None, wins: str) -> None:  # fmt: skip
    assert config_source(carried=carried, policy=policy, config=config) == wins


def _policy() -> Policy:
    return read_policy(example())


def test_release_config_of_reads_the_policy_only_when_the_commit_carries_none(tmp_path: Path) -> None:
    calls: list[str] = []

    def lookup() -> tuple[ReleaseSpec, Any]:
        calls.append("policy")
        policy = _policy()
        return policy.spec, policy.canary_config()

    spec, config, source = release_config_of("myapp", "c" * 40, None, "absent.yaml", lookup)
    assert calls == ["policy"] and spec.source == "ReleasePolicy shop/myapp: spec.release" and config.name == "myapp"
    assert source == "policy"
    with pytest.raises(ConfigError, match="is for app 'myapp', not 'other'"):
        release_config_of("other", "c" * 40, None, None, lookup)
    with pytest.raises(ConfigError, match="app_config"):  # the commit's (malformed here) wins, unread policy
        release_config_of("myapp", "c" * 40, {"release": "x"}, None, lookup)
    assert calls == ["policy", "policy"]
    with pytest.raises(ConfigError, match="absent.yaml"):  # no policy: the deployment's file
        release_config_of("myapp", "c" * 40, None, str(tmp_path / "absent.yaml"), lambda: None)


def test_a_crashed_release_is_repaired_with_its_policy_when_the_policy_configured_it() -> None:
    policy = _policy()
    spec, words = spec_of_run("myapp", {"app": "myapp", "commit": "c" * 40},
                              lambda: (policy.spec, policy.canary_config()))
    assert spec == policy.spec
    assert words == "repaired with the options of ReleasePolicy shop/myapp: spec.release, as the release used them"
    spec, words = spec_of_run("myapp", {"app": "myapp", "commit": "c" * 40, "config": "absent.yaml"},
                              lambda: None)  # no policy any more: the deployment's file, which is gone
    assert spec is None and words.startswith("the release spec absent.yaml of the release could not be read again")


def test_policy_lookup_only_for_platforms_that_keep_policies() -> None:
    class Keeps:
        def release_config(self, app: str) -> None:
            return None

        def record_release(self, app: str, ended: object, report: str) -> None:
            raise AssertionError("not called here")

    assert policy_lookup(object(), "myapp") is None
    lookup = policy_lookup(Keeps(), "myapp")
    assert lookup is not None and lookup() is None
