"""The shipped ReleasePolicy CRD is the one generated from the config models, and it is a
structural schema (what the API server demands; checked for real in
tests/platforms/kubernetes/test_release_policies.py)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import yaml

from canary.config.policy_schema import crd, render, spec_schema

ROOT = Path(__file__).resolve().parents[2]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_crds", ROOT / "scripts" / "generate_crds.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_shipped_crd_is_the_generated_one() -> None:
    generator = _generator()
    target = ROOT / "deployments" / "kubernetes" / "crds" / "releasepolicy.yaml"
    assert target == generator.TARGET
    assert target.read_text() == render(), "run: python scripts/generate_crds.py"
    assert yaml.safe_load(target.read_text()) == crd()
    assert generator.main(["--check"]) == 0


def _nodes(node: object, path: str = "spec") -> Iterator[tuple[str, dict[str, object]]]:
    if not isinstance(node, dict):
        return
    yield path, node
    for key, child in (node.get("properties") or {}).items():
        yield from _nodes(child, f"{path}.{key}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield from _nodes(node[key], f"{path}[{key}]")


def test_the_schema_is_structural() -> None:
    for path, node in _nodes(spec_schema()):
        assert "$ref" not in node and "$defs" not in node, path
        assert "anyOf" not in node and "oneOf" not in node and "allOf" not in node, path
        assert "type" in node or node.get("x-kubernetes-int-or-string") or node.get(
            "x-kubernetes-preserve-unknown-fields"), path
        assert "default" not in node or path in ("spec.canaryConfig.judge", "spec.canaryConfig.judge.name"), path
        for bound in ("exclusiveMinimum", "exclusiveMaximum"):
            assert node.get(bound) in (None, True), path


def test_the_schema_carries_the_release_spec_and_the_canary_config() -> None:
    properties = spec_schema()["properties"]
    assert isinstance(properties, dict)
    release, config = properties["release"], properties["canaryConfig"]
    assert "canary_config" not in release["properties"]  # the policy carries it
    assert set(release["required"]) == {"app", "analysis"}
    analysis = release["properties"]["analysis"]
    assert {"end_time", "start_time"}.isdisjoint(analysis["properties"])
    assert analysis["properties"]["lifetime"]["x-kubernetes-int-or-string"] is True
    assert "pass" in analysis["properties"]["thresholds"]["properties"]
    metric = config["properties"]["metrics"]["items"]
    assert "canary" in metric["properties"]["analysisConfigurations"]["properties"]
    assert metric["properties"]["query"]["x-kubernetes-preserve-unknown-fields"] is True
    columns = [c["name"] for c in crd()["spec"]["versions"][0]["additionalPrinterColumns"]]  # type: ignore[index]
    assert columns == ["App", "Judge", "Lifetime", "Outcome", "Age"]
