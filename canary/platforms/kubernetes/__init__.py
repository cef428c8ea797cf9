"""Kubernetes adapters: the only package that imports the ``kubernetes`` client.

    api = new_api_client(host=..., token=...)           # or kubeconfig=/context=, or in-cluster
    client = KubeClient(api, namespace="production")
    TektonBuilder(client, image="registry/team/app")    # Builder
    KubernetesWorkloads(client)                         # Workloads
    IstioRouter(client)                                 # TrafficRouter (a VirtualService)
    GatewayApiRouter(client)                            # TrafficRouter (an HTTPRoute)

A release, in the order that never sends traffic anywhere unintended: pin 100 % primary;
deploy baseline and canary; wait ready; step the weights; promote or roll back (100 %
primary, verified); remove baseline and canary; restore the user's routes.
"""

from .client import DEPLOYMENT, POD, Kind, KubeClient, new_api_client
from .errors import ConflictError, InvalidObjectError, NotFoundError, WaitTimeout
from .gateway_api import GatewayApiRouter
from .istio import IstioRouter
from .knative import KnativeBuilder
from .manifests import PREFIX, TRACK_LABEL
from .tekton import TektonBuilder
from .workloads import KubernetesWorkloads

__all__ = [
    "DEPLOYMENT",
    "POD",
    "ConflictError",
    "GatewayApiRouter",
    "InvalidObjectError",
    "IstioRouter",
    "Kind",
    "KnativeBuilder",
    "KubeClient",
    "KubernetesWorkloads",
    "PREFIX",
    "TRACK_LABEL",
    "NotFoundError",
    "TektonBuilder",
    "WaitTimeout",
    "new_api_client",
]
