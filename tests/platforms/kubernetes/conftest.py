"""Fixtures on the real control plane (tests/support/kube.py): the release runner's client in
a fresh namespace per test, and a user's production app (Deployment + VirtualService) already
in place and rolled out, as a cluster would have it. The names and objects here are shared
with tests/flows and tests/test_kubernetes_deployment_set.py."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from canary.errors import CanaryError, is_transient
from canary.platforms.kubernetes import (
    TRACK_LABEL,
    IstioRouter,
    KnativeBuilder,
    KubeClient,
    KubernetesWorkloads,
    TektonBuilder,
    new_api_client,
)
from tests.support.kube import Namespace
from tests.support.kube_builds import BuildController
from tests.support.kube_proxy import FaultProxy

APP = "goldengoose"
REPO = "https://github.com/example/goldengoose.git"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
IMAGE_REPO = "registry.example.com/shop/goldengoose"
PROD_IMAGE = f"{IMAGE_REPO}@sha256:{'a' * 64}"
MANIFESTS = Path(__file__).resolve().parents[3] / "deployments" / "kubernetes"
T = TypeVar("T")


def role_rules(name: str = "prefect-canary") -> list[dict[str, Any]]:
    """The rules of the adapters' Role in deployments/kubernetes/rbac.yaml."""
    docs = yaml.safe_load_all((MANIFESTS / "rbac.yaml").read_text())
    return next(d for d in docs if d and d["kind"] == "Role" and d["metadata"]["name"] == name)["rules"]


def production_deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": APP, "labels": {"app": APP, "app.kubernetes.io/instance": "shop"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": APP, TRACK_LABEL: "primary"}},
            "template": {
                "metadata": {"labels": {"app": APP, TRACK_LABEL: "primary", "version": "v1"},
                             "annotations": {"prometheus.io/scrape": "true"}},
                "spec": {"containers": [
                    {"name": "app", "image": PROD_IMAGE, "ports": [{"containerPort": 8080}],
                     "env": [{"name": "MODE", "value": "prod"}]},
                    {"name": "sidecar", "image": "registry.example.com/tools/logship:2.1"},
                ]},
            },
        },
    }


def user_virtual_service() -> dict[str, Any]:
    """A user's VirtualService: a header-matched route, the default route, and a route to
    another host that must never be touched; labels and annotations of their own."""
    return {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": APP, "labels": {"team": "shop"},
                     "annotations": {"owner": "shop-team", "note": "kept as is"}},
        "spec": {
            "hosts": [APP, "goldengoose.example.com"],
            "gateways": ["mesh", "shop-gateway"],
            "http": [
                {"name": "admin", "match": [{"uri": {"prefix": "/admin"}}],
                 "route": [{"destination": {"host": "admin-console", "port": {"number": 80}}}]},
                {"name": "beta", "match": [{"headers": {"x-beta": {"exact": "1"}}}],
                 "route": [{"destination": {"host": APP, "port": {"number": 8080}}}],
                 "timeout": "5s"},
                {"name": "default", "retries": {"attempts": 2, "perTryTimeout": "2s"},
                 "route": [{"destination": {"host": APP, "port": {"number": 8080}}}]},
            ],
        },
    }


def users_destination_rule() -> dict[str, Any]:
    """A DestinationRule the user already has for the app's host (mTLS, a subset of theirs)."""
    return {
        "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
        "metadata": {"name": "goldengoose-traffic", "annotations": {"owner": "shop-team"}},
        "spec": {"host": APP, "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}},
                 "subsets": [{"name": "legacy", "labels": {"version": "v0"}}]},
    }


@pytest.fixture
def kube(namespace: Namespace) -> KubeClient:
    """The release runner's client: rbac.yaml's Role, enforced by the real authorizer."""
    return namespace.kube


@pytest.fixture
def production(namespace: Namespace) -> dict[str, Any]:
    """Production as the user has it, rolled out; the objects as the server then holds them."""
    namespace.seed(production_deployment())
    namespace.seed(user_virtual_service())
    namespace.settle()
    return {"deployment": namespace.read("Deployment", APP), "vs": namespace.read("VirtualService", APP)}


@pytest.fixture
def builds(namespace: Namespace) -> Iterator[BuildController]:
    """Plays the Tekton and Knative controllers (none runs here): see tests/support/kube_builds.py."""
    with BuildController(namespace) as controller:
        yield controller


@pytest.fixture
def proxy(namespace: Namespace) -> Iterator[FaultProxy]:
    """Fault injection in front of the real API server (tests/support/kube_proxy.py)."""
    with FaultProxy(namespace.cluster.endpoint.url, namespace.cluster.endpoint.ca) as faults:
        yield faults


@pytest.fixture
def proxied(namespace: Namespace, proxy: FaultProxy) -> KubeClient:
    """The release runner's client (same token, same Role), through the fault proxy."""
    return KubeClient(new_api_client(host=proxy.url, token=namespace.token), namespace.name,
                      request_timeout=5.0)


@dataclass(frozen=True)
class Request:
    """One request of the release runner, as the API server's audit log has it."""

    verb: str
    group: str
    resource: str  # plural, or plural/subresource
    name: str
    code: int


def runner_requests(namespace: Namespace, since: float = 0.0) -> list[Request]:
    """What the release runner asked the real API server (audit log, in order), since ``since``."""
    found = []
    for event in namespace.cluster.audit(namespace.runner, since):
        ref = event.get("objectRef") or {}
        resource = ref.get("resource", "") + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        found.append(Request(event["verb"], ref.get("apiGroup", ""), resource, ref.get("name", ""),
                             int((event.get("responseStatus") or {}).get("code", 0))))
    return found


@pytest.fixture
def workloads(kube: KubeClient) -> KubernetesWorkloads:
    return KubernetesWorkloads(kube, container="app", rollout_timeout=30.0, pod_check_interval=0.2)


@pytest.fixture
def router(kube: KubeClient) -> IstioRouter:
    return IstioRouter(kube)


@pytest.fixture
def tekton(kube: KubeClient) -> TektonBuilder:
    return TektonBuilder(kube, image=IMAGE_REPO, timeout=10.0, window=1.0)


@pytest.fixture
def knative(kube: KubeClient) -> KnativeBuilder:
    return KnativeBuilder(kube, image=IMAGE_REPO, timeout=10.0, window=1.0)


def retrying(fn: Callable[..., T], *args: Any, attempts: int = 6, log: list[BaseException] | None = None,
             **kwargs: Any) -> T:
    """What the Prefect tasks do: repeat the call on transient errors only, with backoff."""
    for attempt in range(attempts):
        try:
            return fn(*args, **kwargs)
        except CanaryError as error:
            if log is not None:
                log.append(error)
            if not is_transient(error) or attempt == attempts - 1:
                raise
            time.sleep(0.01 * 2**attempt)
    raise AssertionError("unreachable")


def finish(router: IstioRouter, workloads: KubernetesWorkloads, app: str = APP) -> None:
    """The flow's `finally`: 100 % primary (verified), remove baseline and canary, restore."""
    router.rollback(app)
    for track in ("baseline", "canary"):
        workloads.remove(app, track)
    router.restore(app)


def user_view(obj: dict[str, Any] | None) -> str:
    """What must come back byte for byte: everything but the server's bookkeeping of writes
    (resourceVersion, generation, managedFields): uid, creationTimestamp, labels, annotations
    and spec, in the server's own key order."""
    assert obj is not None
    view = copy.deepcopy(obj)
    for key in ("resourceVersion", "generation", "managedFields"):
        view["metadata"].pop(key, None)
    return json.dumps(view)
