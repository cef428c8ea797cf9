"""The local platform: a whole canary release on one machine with real processes.

Git checkout builds (`GitBuilder`), supervised processes (`ProcessWorkloads`), HAProxy
weights through its admin socket (`HAProxyRouter`), Prometheus via file_sd, and the
`LocalStack` that starts/stops HAProxy and Prometheus (`python -m canary.platforms.local`).
See README.md next to this file for the state layout and the app spec (canary.yaml).
"""

from canary.platforms.local.builder import Artifact, GitBuilder
from canary.platforms.local.haproxy import HAProxyRouter
from canary.platforms.local.spec import AppSpec
from canary.platforms.local.stack import LocalStack
from canary.platforms.local.workloads import ProcessWorkloads, Workload

__all__ = [
    "AppSpec",
    "Artifact",
    "GitBuilder",
    "HAProxyRouter",
    "LocalStack",
    "ProcessWorkloads",
    "Workload",
]
