"""The Gateway API router (traffic_router: gateway-api): its options and pure rule editing,
then whole release sequences on the real control plane, as the release runner (rbac.yaml's
Role), with the Gateway API's own HTTPRoute CRD (controlplane/upstream.lock) checking every
route we write. The user's HTTPRoute must be the same outside the weights before, during and
after a release, and byte for byte the same after it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from blocks.kubernetes import KubernetesCluster
from canary.config.kubernetes import GatewayApiOptions, KubernetesRelease
from canary.errors import ConfigError
from canary.platforms.kubernetes import TRACK_LABEL, KubeClient, KubernetesWorkloads
from canary.platforms.kubernetes.gateway_api import (
    GatewayApiRouter,
    apply_weights,
    managed_rules,
    weights_of,
)
from canary.platforms.kubernetes.routers import ROUTERS, RouterSettings, make_router, track_service
from canary.platforms.kubernetes.workloads import track_service as service_for_track
from canary.values.weights import Weights
from tests.support.kube import Namespace

from .conftest import APP, IMAGE_REPO, finish, user_view
from .httproutes import (
    backends,
    minus_weights,
    read_route,
    seed_gateway,
    user_http_route,
    user_service,
)

STEPS = (Weights(90, 5, 5), Weights(80, 10, 10), Weights(50, 25, 25))
IMAGE = f"{IMAGE_REPO}@sha256:{'9' * 64}"
PRIMARY_ONLY = {((f"{APP}-primary", 100),)}


# -- options and pure functions ---------------------------------------------------------------
def test_the_release_spec_names_the_route_the_rule_and_the_service() -> None:
    options = KubernetesRelease.model_validate(
        {"router": {"kind": "gateway-api", "http_route": "shop", "rule": "default", "service": "shop-svc"}})
    assert options.router == GatewayApiOptions(http_route="shop", rule="default", service="shop-svc")
    by_index = KubernetesRelease.model_validate({"router": {"kind": "gateway-api", "rule": 2}})
    assert isinstance(by_index.router, GatewayApiOptions) and by_index.router.rule == 2
    for bad in ({"rule": 16}, {"rule": "Not A Name"}, {"http_route": "UPPER"}, {"parent_refs": []}):
        with pytest.raises(ConfigError):
            KubernetesRelease.model_validate({"router": {"kind": "gateway-api", **bad}})
    with pytest.raises(ConfigError, match="must name a known router: istio, gateway-api"):
        KubernetesRelease.model_validate({"router": {"kind": "linkerd"}})


def test_the_registry_builds_it_and_the_workloads_get_the_service_to_copy() -> None:
    assert "gateway-api" in ROUTERS
    client = KubeClient(None, "shop")  # type: ignore[arg-type]  # never called
    router = make_router("gateway-api", client, KubernetesRelease(traffic="mirror"), RouterSettings("t"))
    assert isinstance(router, GatewayApiRouter) and router.mirror and router.track_label == "t"
    assert track_service("gateway-api", KubernetesRelease(), APP) == APP
    given = KubernetesRelease.model_validate({"router": {"kind": "gateway-api", "service": "svc"}})
    assert track_service("gateway-api", given, APP) == "svc"
    assert track_service("istio", KubernetesRelease(), APP) is None
    with pytest.raises(ConfigError, match="cluster routes with 'istio'"):
        make_router("istio", client, given, RouterSettings("t"))


def test_rules_are_chosen_by_their_one_service_by_name_or_by_index() -> None:
    spec = user_http_route()["spec"]
    assert managed_rules(spec, None, APP, APP) == [1, 2]
    assert managed_rules(spec, "default", APP, APP) == [2]
    assert managed_rules(spec, 1, APP, APP) == [1]
    with pytest.raises(ConfigError, match="does not send all its traffic"):
        managed_rules(spec, "admin", APP, APP)
    with pytest.raises(ConfigError, match="no rule 7"):
        managed_rules(spec, 7, APP, APP)
    with pytest.raises(ConfigError, match="no rule sending its traffic to Service 'other'"):
        managed_rules(spec, None, "other", APP)


def test_a_split_rewrites_backend_refs_only_and_mirrors_through_request_mirror() -> None:
    spec = user_http_route()["spec"]
    original = spec["rules"][1]["backendRefs"][0]
    split = apply_weights(copy.deepcopy(spec), [1, 2], original, APP, Weights(80, 10, 10))
    assert split["rules"][0] == spec["rules"][0]
    assert split["rules"][1]["backendRefs"] == [{"name": f"{APP}-{t}", "port": 80, "weight": w}
                                                for t, w in (("primary", 80), ("baseline", 10), ("canary", 10))]
    assert {k: v for k, v in split["rules"][1].items() if k != "backendRefs"} == \
        {k: v for k, v in spec["rules"][1].items() if k != "backendRefs"}
    assert weights_of(split, [1, 2], APP, APP) == Weights(80, 10, 10)
    assert weights_of(spec, [1, 2], APP, APP) == Weights.all_primary()

    mirrored = apply_weights(copy.deepcopy(split), [1, 2], original, APP, Weights(80, 10, 10), mirror=True)
    beta = mirrored["rules"][1]
    assert beta["backendRefs"] == [{"name": f"{APP}-primary", "port": 80, "weight": 100}]
    assert beta["filters"][0] == spec["rules"][1]["filters"][0]  # theirs first, as it was
    assert [(f["type"], f["requestMirror"]["backendRef"]["name"], f["requestMirror"]["percent"])
            for f in beta["filters"][1:]] == [("RequestMirror", f"{APP}-baseline", 10),
                                              ("RequestMirror", f"{APP}-canary", 10)]
    assert len(mirrored["rules"][2]["filters"]) == 2  # the default rule had none: ours only
    assert weights_of(mirrored, [1, 2], APP, APP) == Weights(80, 10, 10)
    back = apply_weights(mirrored, [1, 2], original, APP, Weights.all_primary(), mirror=True)
    assert back["rules"][1]["filters"] == spec["rules"][1]["filters"]
    assert "filters" not in back["rules"][2]


def test_a_per_track_service_copies_the_apps_ports_and_selects_one_track() -> None:
    source = user_service()
    source["spec"].update(type="NodePort", ports=[{"name": "http", "port": 80, "targetPort": 8080,
                                                    "protocol": "TCP", "nodePort": 30080}])
    made = service_for_track(source, APP, "canary", "canary", TRACK_LABEL)
    assert made["metadata"]["name"] == f"{APP}-canary"
    assert made["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "prefect-canary"
    assert made["spec"] == {"type": "ClusterIP", "selector": {"app": APP, TRACK_LABEL: "canary"},
                            "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}]}
    del source["spec"]["selector"]
    with pytest.raises(ConfigError, match="has no selector"):
        service_for_track(source, APP, "primary", "primary", TRACK_LABEL)


# -- on the real control plane ----------------------------------------------------------------
@pytest.fixture
def gateway(namespace: Namespace, production: dict[str, Any]) -> dict[str, Any]:
    """Production as the user has it (Deployment, Service, HTTPRoute), as the server holds it."""
    return {**production, "route": seed_gateway(namespace)}


@pytest.fixture
def by_service(kube: KubeClient) -> KubernetesWorkloads:
    """Workloads that also make (and remove) the per-track Services."""
    return KubernetesWorkloads(kube, container="app", rollout_timeout=30.0, pod_check_interval=0.2,
                               service=APP)


def _start(router: GatewayApiRouter, workloads: KubernetesWorkloads, namespace: Namespace,
           before: str) -> None:
    router.set_weights(APP, Weights.all_primary())
    assert router.read_weights(APP) == Weights.all_primary()
    primary = namespace.read("Service", f"{APP}-primary")
    assert primary is not None and primary["spec"]["selector"] == {"app": APP, TRACK_LABEL: "primary"}
    workloads.deploy(APP, "baseline", workloads.production_image(APP))
    workloads.deploy(APP, "canary", IMAGE)
    workloads.wait_ready(APP, "baseline", timeout=15)
    workloads.wait_ready(APP, "canary", timeout=15)
    canary = namespace.read("Service", f"{APP}-canary")
    assert canary is not None and canary["spec"]["selector"] == {"app": APP, TRACK_LABEL: "canary"}
    assert minus_weights(read_route(namespace)) == before


def _restored(namespace: Namespace, gateway: dict[str, Any], before: str) -> None:
    after = read_route(namespace)
    assert minus_weights(after) == before
    assert user_view(after) == user_view(gateway["route"])  # byte for byte, the server's order
    assert namespace.names("Service") == [APP]
    namespace.settle()
    assert namespace.names("Deployment") == [APP]


def test_a_promotion_through_the_gateway_api_leaves_the_users_route_as_it_was(
        namespace: Namespace, gateway: dict[str, Any], kube: KubeClient,
        by_service: KubernetesWorkloads) -> None:
    router = GatewayApiRouter(kube)
    before = minus_weights(gateway["route"])
    assert router.read_weights(APP) == Weights.all_primary()
    _start(router, by_service, namespace, before)
    assert backends(read_route(namespace)) == PRIMARY_ONLY
    for weights in STEPS:
        router.set_weights(APP, weights)
        assert router.read_weights(APP) == weights
        assert backends(read_route(namespace)) == {(
            (f"{APP}-primary", weights.primary), (f"{APP}-baseline", weights.baseline),
            (f"{APP}-canary", weights.canary))}
        assert minus_weights(read_route(namespace)) == before
    by_service.promote(APP, IMAGE)
    finish(router, by_service)  # type: ignore[arg-type]  # the TrafficRouter port
    _restored(namespace, gateway, before)
    prod = namespace.read("Deployment", APP)
    assert prod is not None and prod["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE
    router.restore(APP)  # idempotent
    assert user_view(read_route(namespace)) == user_view(gateway["route"])


def test_a_rollback_through_the_gateway_api_is_all_primary_then_the_users_route(
        namespace: Namespace, gateway: dict[str, Any], kube: KubeClient,
        by_service: KubernetesWorkloads) -> None:
    router = GatewayApiRouter(kube)
    before = minus_weights(gateway["route"])
    _start(router, by_service, namespace, before)
    router.set_weights(APP, Weights(50, 25, 25))
    router.rollback(APP)
    assert router.read_weights(APP) == Weights.all_primary()
    assert backends(read_route(namespace)) == PRIMARY_ONLY
    assert minus_weights(read_route(namespace)) == before
    finish(router, by_service)  # type: ignore[arg-type]  # the TrafficRouter port
    _restored(namespace, gateway, before)
    prod = namespace.read("Deployment", APP)
    assert prod is not None and prod["spec"] == gateway["deployment"]["spec"]


def test_mirrored_traffic_goes_through_request_mirror_filters_next_to_the_users(
        namespace: Namespace, gateway: dict[str, Any], kube: KubeClient,
        by_service: KubernetesWorkloads) -> None:
    router = GatewayApiRouter(kube, rule="beta", mirror=True)
    before = minus_weights(gateway["route"])
    _start(router, by_service, namespace, before)
    router.set_weights(APP, Weights(80, 10, 10))
    assert router.read_weights(APP) == Weights(80, 10, 10)
    route = read_route(namespace)
    beta, default = route["spec"]["rules"][1], route["spec"]["rules"][2]
    assert [b["name"] for b in beta["backendRefs"]] == [f"{APP}-primary"]
    assert [(f["type"], f.get("requestMirror", {}).get("percent")) for f in beta["filters"]] == [
        ("RequestHeaderModifier", None), ("RequestMirror", 10), ("RequestMirror", 10)]
    assert default == gateway["route"]["spec"]["rules"][2]  # not the named rule: untouched
    assert minus_weights(route) == before
    finish(router, by_service)  # type: ignore[arg-type]  # the TrafficRouter port
    _restored(namespace, gateway, before)


def test_a_missing_route_or_a_service_not_ours_is_refused_before_any_write(
        namespace: Namespace, gateway: dict[str, Any], kube: KubeClient) -> None:
    with pytest.raises(ConfigError, match="HTTPRoute 'nope' not found"):
        GatewayApiRouter(kube, http_route="nope").set_weights(APP, Weights.all_primary())
    namespace.seed(user_service(f"{APP}-primary"))  # the user's, with one of our names
    with pytest.raises(ConfigError, match="not created by prefect-canary"):
        GatewayApiRouter(kube).set_weights(APP, Weights.all_primary())
    assert user_view(read_route(namespace)) == user_view(gateway["route"])



def test_a_crashed_release_is_reconciled_through_the_block(
        namespace: Namespace, gateway: dict[str, Any], tmp_path: Path) -> None:
    """A release that died at 50/25/25 (no cleanup ran): the block's reconcile (what the
    `reconcile` flow calls) puts all traffic on production, read back, deletes baseline and
    canary, and puts the user's HTTPRoute back byte for byte with our Services gone."""
    endpoint = namespace.cluster.endpoint
    cluster = KubernetesCluster(namespace=namespace.name, host=endpoint.url, token=SecretStr(namespace.token),
                                ca_cert_path=str(endpoint.ca), release_specs=str(tmp_path),
                                rollout_timeout_seconds=10, traffic_router="gateway-api")  # fmt: skip
    before = minus_weights(gateway["route"])
    router, workloads = cluster.router(APP, None), cluster.workloads(APP, None)
    router.set_weights(APP, Weights.all_primary())
    workloads.deploy(APP, "baseline", workloads.production_image(APP) or "")
    workloads.deploy(APP, "canary", IMAGE)
    router.set_weights(APP, Weights(50, 25, 25))
    assert namespace.names("Service") == sorted([APP, f"{APP}-primary", f"{APP}-baseline", f"{APP}-canary"])
    found = cluster.reconcile(APP, None)
    assert sorted(found["removed"]) == [f"{APP}-baseline", f"{APP}-canary"]  # type: ignore[arg-type]
    assert len(found["steps"]) == 4 and found["steps"][0] == "all traffic to production (read back)", found  # type: ignore[arg-type]
    _restored(namespace, gateway, before)
    assert cluster.reconcile(APP, None)["removed"] == []  # idempotent: nothing left
