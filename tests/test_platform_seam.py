"""One platform seam: every platform the flows can be given implements canary.ports.Platform,
and the flows' platform tasks reach a platform through nothing else."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from blocks.kubernetes import KubernetesCluster
from blocks.local import LocalPlatform
from canary.ports import Platform
from tests.flows.fakes import FakePlatform, Recorder

ROOT = Path(__file__).resolve().parents[1]
SEAM = [name for name, value in vars(Platform).items()
        if callable(value) and not name.startswith("_")]  # fmt: skip


@pytest.mark.parametrize("platform", [
    LocalPlatform(), KubernetesCluster(host="https://k8s.test", token="t"),
    FakePlatform(Recorder()),
], ids=["local", "kubernetes", "fake"])  # fmt: skip
def test_every_platform_implements_the_seam(platform: object) -> None:
    assert isinstance(platform, Platform)


def test_the_flows_call_only_the_seam_on_a_platform() -> None:
    """tasks/platform.py is the flows' one door to a platform: every attribute it calls on
    a `plat`/`platform` object is a Platform method (or the optional image_version)."""
    tree = ast.parse((ROOT / "tasks" / "platform.py").read_text())
    called = {node.func.attr for node in ast.walk(tree)
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and isinstance(node.func.value, ast.Name) and node.func.value.id in ("plat", "platform")}  # fmt: skip
    assert called, "tasks/platform.py calls nothing on a platform: the test looks at the wrong names"
    assert called <= set(SEAM), sorted(called - set(SEAM))
