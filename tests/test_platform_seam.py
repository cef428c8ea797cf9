"""One platform seam: every platform the flows can be given implements canary.ports.Platform,
and the flows' platform tasks reach a platform through nothing else."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from blocks.kubernetes import KubernetesCluster
from blocks.local import LocalPlatform
from canary.ports import (
    AppPlatform,
    CommitOrder,
    ConfigFileReader,
    ImageVersions,
    Platform,
    ReleasePolicies,
)
from tests.flows.fakes import FakePlatform, Recorder

ROOT = Path(__file__).resolve().parents[1]


def methods(*protocols: type) -> set[str]:
    return {name for protocol in protocols for name, value in vars(protocol).items()
            if callable(value) and not name.startswith("_")}  # fmt: skip


SEAM = methods(Platform)


@pytest.mark.parametrize("platform", [
    LocalPlatform(), KubernetesCluster(host="https://k8s.test", token="t"),
    FakePlatform(Recorder()),
], ids=["local", "kubernetes", "fake"])  # fmt: skip
def test_every_platform_implements_the_seam(platform: Platform) -> None:
    assert isinstance(platform, Platform)
    assert isinstance(platform.for_app("shop", None), AppPlatform)


def test_the_optional_capabilities_are_typed_protocols() -> None:
    """Found with isinstance on a protocol, never by probing attribute names."""
    local = LocalPlatform()
    assert isinstance(local, ImageVersions)
    assert not isinstance(KubernetesCluster(host="https://k8s.test", token="t"), ImageVersions)
    builder = local.for_app("shop", None).builder()
    assert isinstance(builder, ConfigFileReader) and isinstance(builder, CommitOrder)
    fake = FakePlatform(Recorder()).for_app("shop", None).builder()
    assert isinstance(fake, ConfigFileReader) and isinstance(fake, CommitOrder)
    source = (ROOT / "tasks" / "platform.py").read_text()
    assert "getattr(" not in source


def test_the_flows_call_only_the_seam_on_a_platform() -> None:
    """tasks/platform.py is the flows' one door to a platform: every attribute it calls on
    a `plat`/`platform` object is a Platform method (or an optional capability's)."""
    tree = ast.parse((ROOT / "tasks" / "platform.py").read_text())
    called = {node.func.attr for node in ast.walk(tree)
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and isinstance(node.func.value, ast.Name) and node.func.value.id in ("plat", "platform")}  # fmt: skip
    assert called, "tasks/platform.py calls nothing on a platform: the test looks at the wrong names"
    allowed = SEAM | methods(ImageVersions) | methods(ReleasePolicies)
    assert called <= allowed, sorted(called - allowed)


def test_every_router_implements_the_router_port(tmp_path: Path) -> None:
    """restore included: the cleanup's last step is a router method on every platform."""
    from canary.platforms.local.haproxy import HAProxyRouter
    from canary.ports import TrafficRouter

    routers = [HAProxyRouter(tmp_path / "admin.sock"), FakePlatform(Recorder()).for_app("shop", None).router(),
               KubernetesCluster(host="https://k8s.test", token="t").for_app("shop", None).router()]  # fmt: skip
    for router in routers:
        assert isinstance(router, TrafficRouter), type(router)


def test_the_kubernetes_router_is_chosen_by_name() -> None:
    from canary.errors import ConfigError
    from canary.platforms.kubernetes.istio import IstioRouter
    from canary.platforms.kubernetes.routers import ROUTERS, RouterSettings, make_router

    cluster = KubernetesCluster(host="https://k8s.test", token="t")
    assert cluster.traffic_router == "istio" and isinstance(cluster.router("shop", None), IstioRouter)
    with pytest.raises(ValueError, match=r"traffic_router 'linkerd' is not known; choose one of \['gateway-api', 'istio'\]"):
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


def test_the_spec_names_the_router_its_options_are_for() -> None:
    from canary.config.kubernetes import IstioOptions, KubernetesRelease
    from canary.errors import ConfigError
    from canary.platforms.kubernetes.istio import IstioRouter
    from canary.platforms.kubernetes.routers import ROUTERS, RouterSettings, router_options

    flat = KubernetesRelease.model_validate({"virtual_service": "shop", "routes": ["web"]})
    tagged = KubernetesRelease.model_validate({"router": {"kind": "istio", "virtual_service": "shop",
                                                          "routes": ["web"]}})  # fmt: skip
    assert flat == tagged and tagged.router == IstioOptions(virtual_service="shop", routes=("web",))
    assert router_options(KubernetesRelease(), IstioOptions) == IstioOptions()
    with pytest.raises(ConfigError, match=r"router: `kind:` must name a known router: istio"):
        KubernetesRelease.model_validate({"router": {"kind": "linkerd"}})
    with pytest.raises(ConfigError, match=r"unknown key 'virtualService'"):
        KubernetesRelease.model_validate({"router": {"kind": "istio", "virtualService": "x"}})
    with pytest.raises(ConfigError, match=r"under `router:` only"):
        KubernetesRelease.model_validate({"host": "a", "router": {"kind": "istio"}})

    class Other(IstioOptions):  # another router's options (a stand-in)
        pass

    cluster = KubernetesCluster(host="https://k8s.test", token="t")
    with pytest.raises(ConfigError, match="is for 'istio', but the cluster routes with"):
        router_options(tagged, Other)
    assert isinstance(ROUTERS["istio"](cluster.get_client(), tagged, RouterSettings("track")), IstioRouter)
