"""Which traffic router splits an app's traffic on the cluster, chosen by configuration.

The flows only see `canary.ports.TrafficRouter`; the `KubernetesCluster` block's
`traffic_router` field names the implementation, and this registry builds it with the
app's options. Istio (VirtualService + DestinationRule) is the one shipped today. Another
mesh or gateway (Gateway API HTTPRoute weights, Linkerd or SMI TrafficSplit) is a class
implementing TrafficRouter (set_weights, read_weights, rollback, restore; every change read
back) registered here under its name: no flow, task or block method changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from canary.config.kubernetes import KubernetesRelease
from canary.errors import ConfigError
from canary.platforms.kubernetes.client import KubeClient
from canary.platforms.kubernetes.istio import IstioRouter
from canary.ports import TrafficRouter

__all__ = ["ROUTERS", "RouterSettings", "make_router"]


@dataclass(frozen=True)
class RouterSettings:
    """The cluster-wide settings a router may need (from the KubernetesCluster block)."""

    track_label: str
    istio_api_version: str = "v1"


def _istio(client: KubeClient, options: KubernetesRelease, settings: RouterSettings) -> TrafficRouter:
    return IstioRouter(client, virtual_service=options.virtual_service,
                       routes=options.routes or None, host=options.host,
                       destination_rule=options.destination_rule,
                       mirror=options.traffic == "mirror", track_label=settings.track_label,
                       api_version=settings.istio_api_version)  # fmt: skip


#: name -> factory(client, the app's `kubernetes:` options, cluster settings)
ROUTERS: dict[str, Callable[[KubeClient, KubernetesRelease, RouterSettings], TrafficRouter]] = {
    "istio": _istio,
}


def make_router(kind: str, client: KubeClient, options: KubernetesRelease,
                settings: RouterSettings) -> TrafficRouter:  # fmt: skip
    """The router named `kind`, for one app's options."""
    try:
        factory = ROUTERS[kind]
    except KeyError:
        raise ConfigError(
            f"traffic_router {kind!r} is not known; choose one of {sorted(ROUTERS)} (a new "
            "router implements canary.ports.TrafficRouter and is registered in "
            "canary.platforms.kubernetes.routers.ROUTERS)"
        ) from None
    return factory(client, options, settings)
