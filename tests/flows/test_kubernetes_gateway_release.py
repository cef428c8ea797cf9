"""The whole canary-release flow through a KubernetesCluster block with
``traffic_router: gateway-api``, on the real control plane (as test_kubernetes_release.py does
it for Istio): the user's HTTPRoute (a header-matched rule with a RequestHeaderModifier filter,
the default rule, a rule to another Service) is sampled while the flow runs and must be the
same outside the weights throughout, and byte for byte the same afterwards; the per-track
Services the release made are gone."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

import flows.canary_release as release_flow
from blocks.kubernetes import KubernetesCluster
from tests.flows.conftest import fast_retries, released
from tests.flows.test_kubernetes_release import IMAGE_REPOSITORY, NEW_IMAGE, Cluster, _renamed
from tests.platforms.kubernetes.conftest import user_view
from tests.platforms.kubernetes.httproutes import (
    HTTP_ROUTE,
    minus_weights,
    user_http_route,
    user_service,
)
from tests.support.istio_prometheus import IstioPrometheus, Workload
from tests.support.kube import Namespace


class GatewayCluster(Cluster):
    """Cluster's app, routed by the Gateway API: its Service and HTTPRoute, and the block
    saved again with ``traffic_router: gateway-api``."""

    def __init__(self, ns: Namespace, prometheus: IstioPrometheus, directory: Path, app: str) -> None:
        super().__init__(ns, prometheus, directory, app)
        ns.seed(_renamed(user_service(), app))
        ns.admin.create(HTTP_ROUTE, _renamed(user_http_route(), app))
        self.route_before = self.route()
        endpoint = ns.cluster.endpoint
        KubernetesCluster(namespace=ns.name, host=endpoint.url, token=SecretStr(ns.token),
                          ca_cert_path=str(endpoint.ca), image_repository=IMAGE_REPOSITORY,
                          rollout_timeout_seconds=60, traffic_router="gateway-api",
                          ).save(f"real-{app}", overwrite=True)

    def route(self) -> dict[str, Any]:
        found = self.ns.admin.get(HTTP_ROUTE, self.app)
        assert found is not None
        return found

    def assert_route_restored(self) -> None:
        self.ns.settle()
        assert user_view(self.route()) == user_view(self.route_before)
        assert self.ns.names("Service") == [self.app]
        assert self.ns.names("Deployment") == [self.app]


@pytest.fixture
def gateway(namespace: Namespace, prometheus: IstioPrometheus, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Callable[[str], GatewayCluster]:  # fmt: skip
    fast_retries(monkeypatch)
    return lambda app: GatewayCluster(namespace, prometheus, tmp_path, app)


@contextlib.contextmanager
def _sampled(c: GatewayCluster) -> Iterator[dict[str, Any]]:
    """Samples of the route while the flow runs: how many differed outside the weights, and
    which backends the default rule named."""
    before = minus_weights(c.route_before)
    seen: dict[str, Any] = {"changed": 0, "backends": set()}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            route = c.route()
            seen["changed"] += minus_weights(route) != before
            default = next(r for r in route["spec"]["rules"] if r.get("name") == "default")
            seen["backends"].add(tuple(b["name"] for b in default["backendRefs"]))
            if len(default["backendRefs"]) == 3 and "during" not in seen:
                seen["during"] = route
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield seen
    finally:
        stop.set()
        sampler.join(timeout=10)


def test_a_healthy_canary_is_promoted_through_the_gateway_api(gateway) -> None:
    c = gateway("gg-gw-good")
    with _sampled(c) as seen:
        state = release_flow.canary_release(**c.release_args(), return_state=True)
    result = released(state)
    assert state.name == "Promoted", result["reason"]
    assert c.production_image() == NEW_IMAGE
    assert seen["changed"] == 0
    assert (f"{c.app}-primary", f"{c.app}-baseline", f"{c.app}-canary") in seen["backends"]
    c.assert_route_restored()
    for when, route in (("before", c.route_before), ("during", seen["during"]), ("after", c.route())):
        print(f"--- HTTPRoute {c.app} {when} the release (spec) ---")  # shown with -s
        print(yaml.safe_dump(route["spec"], sort_keys=False))


def test_a_canary_answering_errors_is_rolled_back_through_the_gateway_api(gateway) -> None:
    c = gateway("gg-gw-bad")
    c.prometheus.set(f"{c.app}-canary", Workload(rate=1000.0, errors=0.05))
    with _sampled(c) as seen:
        state = release_flow.canary_release(**c.release_args(), return_state=True)
    assert state.name == "RolledBack", released(state)
    assert c.production_image() == c.prod_image
    assert seen["changed"] == 0
    c.assert_route_restored()
