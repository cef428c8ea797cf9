"""Which traffic router splits an app's traffic on the cluster, chosen by configuration.

The flows only see `canary.ports.TrafficRouter`; the `KubernetesCluster` block's
`traffic_router` field names the implementation, and this registry builds it with the
app's options. Two ship: Istio (VirtualService + DestinationRule) and the Gateway API
(HTTPRoute backendRefs over per-track Services). Another mesh or gateway (Linkerd or SMI
TrafficSplit) is a class
implementing TrafficRouter (set_weights, read_weights, rollback, restore; every change read
back), its options model in the `RouterOptions` union of canary.config.kubernetes (the
release spec's `kubernetes.router: {kind: <name>, ...}`), and one entry here under that
name: no flow, task or block changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from canary.config.kubernetes import (
    BaseRouterOptions,
    GatewayApiOptions,
    IstioOptions,
    KubernetesRelease,
)
from canary.errors import ConfigError
from canary.platforms.kubernetes.client import KubeClient
from canary.platforms.kubernetes.gateway_api import GatewayApiRouter
from canary.platforms.kubernetes.istio import IstioRouter
from canary.ports import TrafficRouter

__all__ = ["ROUTERS", "RouterFactory", "RouterSettings", "make_router", "router_options",
           "track_service"]


@dataclass(frozen=True)
class RouterSettings:
    """The cluster-wide settings a router may need (from the KubernetesCluster block)."""

    track_label: str
    istio_api_version: str = "v1"


#: A router's factory: (client, the app's `kubernetes:` options, cluster settings) -> router.
RouterFactory = Callable[[KubeClient, KubernetesRelease, RouterSettings], TrafficRouter]

Options = TypeVar("Options", bound=BaseRouterOptions)


def router_options(options: KubernetesRelease, model: type[Options]) -> Options:
    """The app's router options as `model` (its defaults when the spec gives none).

    Raises:
        ConfigError: the spec's `router:` is for another kind of router.
    """
    defaults = model.model_validate({})
    given = options.router
    if given is None:
        return defaults
    if not isinstance(given, model):
        raise ConfigError(f"the release spec's kubernetes.router is for {given.kind!r}, but the "
                          f"cluster routes with {defaults.kind!r} (its traffic_router)")  # fmt: skip
    return given


def _istio(client: KubeClient, options: KubernetesRelease, settings: RouterSettings) -> TrafficRouter:
    istio = router_options(options, IstioOptions)
    return IstioRouter(client, virtual_service=istio.virtual_service, routes=istio.routes or None,
                       host=istio.host, destination_rule=istio.destination_rule,
                       mirror=options.traffic == "mirror", track_label=settings.track_label,
                       api_version=settings.istio_api_version)  # fmt: skip


def _gateway_api(client: KubeClient, options: KubernetesRelease,
                 settings: RouterSettings) -> TrafficRouter:  # fmt: skip
    gateway = router_options(options, GatewayApiOptions)
    return GatewayApiRouter(client, http_route=gateway.http_route, rule=gateway.rule,
                            service=gateway.service, mirror=options.traffic == "mirror",
                            track_label=settings.track_label)  # fmt: skip


#: name (the `kind` of its options) -> factory
ROUTERS: dict[str, RouterFactory] = {
    "istio": _istio,
    "gateway-api": _gateway_api,
}


def track_service(kind: str, options: KubernetesRelease, app: str) -> str | None:
    """The Service the workloads copy into per-track Services, for a router that splits by
    Service (the Gateway API's); None for one that needs none (Istio).

    Raises:
        ConfigError: the app's options are for another router.
    """
    if kind != "gateway-api":
        return None
    return router_options(options, GatewayApiOptions).service or app


def make_router(kind: str, client: KubeClient, options: KubernetesRelease,
                settings: RouterSettings) -> TrafficRouter:  # fmt: skip
    """The router named `kind`, for one app's options.

    Raises:
        ConfigError: no router is registered under `kind`, or the app's options are for
            another router.
    """
    try:
        factory = ROUTERS[kind]
    except KeyError:
        raise ConfigError(
            f"traffic_router {kind!r} is not known; choose one of {sorted(ROUTERS)} (a new "
            "router implements canary.ports.TrafficRouter and is registered in "
            "canary.platforms.kubernetes.routers.ROUTERS)"
        ) from None
    return factory(client, options, settings)
