"""One platform seam: every platform the flows can be given implements canary.ports.Platform,
and the flows' platform tasks reach a platform through nothing else."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

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


def test_every_router_implements_the_router_port(tmp_path: Path) -> None:
    """restore included: the cleanup's last step is a router method on every platform."""
    from canary.platforms.local.haproxy import HAProxyRouter
    from canary.ports import TrafficRouter

    routers = [HAProxyRouter(tmp_path / "admin.sock"), FakePlatform(Recorder()).router("shop", None),
               KubernetesCluster(host="https://k8s.test", token="t").router("shop", None)]  # fmt: skip
    for router in routers:
        assert isinstance(router, TrafficRouter), type(router)


def test_the_kubernetes_router_is_chosen_by_name() -> None:
    from canary.errors import ConfigError
    from canary.platforms.kubernetes.istio import IstioRouter
    from canary.platforms.kubernetes.routers import ROUTERS, RouterSettings, make_router

    cluster = KubernetesCluster(host="https://k8s.test", token="t")
    assert cluster.traffic_router == "istio" and isinstance(cluster.router("shop", None), IstioRouter)
    with pytest.raises(ValueError, match=r"traffic_router 'linkerd' is not known; choose one of \['istio'\]"):
        KubernetesCluster(host="https://k8s.test", token="t", traffic_router="linkerd")
    with pytest.raises(ConfigError, match="registered in canary.platforms.kubernetes.routers.ROUTERS"):
        make_router("smi", cluster.get_client(), cluster.app_options("shop", None)[0], RouterSettings("track"))
    # a new router is a registration, not a flow change
    made: list[str] = []

    def recording(client: Any, options: Any, settings: RouterSettings) -> IstioRouter:
        made.append(settings.track_label)
        return IstioRouter(client)

    ROUTERS["recording"] = recording
    try:
        cluster = KubernetesCluster(host="https://k8s.test", token="t", traffic_router="recording")
        cluster.router("shop", None)
        assert made == [cluster.track_label]
    finally:
        del ROUTERS["recording"]
