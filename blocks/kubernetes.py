"""``KubernetesCluster``: a Prefect block saying which cluster and namespace to release in.

It replaces prefect-kubernetes' credentials block on purpose: that one brings a second,
async client and keeps the cluster config (tokens included) as plain JSON. Here the token is
a ``SecretStr`` (stored encrypted, never shown in the UI, repr or ``model_dump()``) and is
revealed only when the API client is built. Sources are tried in the prefect-kubernetes
order: explicit host (+ token), then a kubeconfig (path + context), then in-cluster.
"""

from __future__ import annotations

from typing import Any

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, model_validator

from canary.errors import ConfigError
from canary.platforms.kubernetes import (
    IstioRouter,
    KnativeBuilder,
    KubeClient,
    KubernetesWorkloads,
    TektonBuilder,
    new_api_client,
)


class KubernetesCluster(Block):
    """Where the canary release runs: a namespace on a cluster, and how to log in to it.

    Give ``host`` (+ ``token``) to talk to an API server directly, or ``kubeconfig_path``
    (+ ``context``), or set ``in_cluster`` when the flow runs in a pod with a service account
    (see deployments/kubernetes/rbac.yaml for the permissions it needs).
    """

    _block_type_name = "Kubernetes Cluster"
    _block_type_slug = "canary-kubernetes-cluster"
    _description = "A Kubernetes namespace (and credentials) for canary releases."

    namespace: str = Field("default", description="Namespace of the app, its routes and builds.")
    host: str | None = Field(None, description="API server URL, e.g. https://10.0.0.1:6443.")
    token: SecretStr | None = Field(None, description="Bearer token for `host`.")
    ca_cert_path: str | None = Field(None, description="CA bundle that signed the server's cert.")
    verify_ssl: bool = Field(True, description="Verify the API server's TLS certificate.")
    kubeconfig_path: str | None = Field(None, description="kubeconfig file (default: ~/.kube/config).")
    context: str | None = Field(None, description="kubeconfig context (default: its current one).")
    in_cluster: bool = Field(False, description="Use the pod's service account.")
    request_timeout: float = Field(30.0, gt=0, description="Per-request timeout in seconds.")
    image_repository: str | None = Field(
        None, description="Registry path builds push to, e.g. registry.example.com/team; "
        "an app's image is <image_repository>/<app>."
    )
    build_system: str = Field("tekton", description="'tekton' (TaskRun + kaniko) or 'knative'.")

    @model_validator(mode="after")
    def _one_source(self) -> KubernetesCluster:
        if self.token is not None and not self.host:
            raise ValueError("token needs host: it is sent to that API server only")
        if self.host and (self.kubeconfig_path or self.context or self.in_cluster):
            raise ValueError("set host (+ token), or kubeconfig_path/context, or in_cluster; not several")
        if self.in_cluster and (self.kubeconfig_path or self.context):
            raise ValueError("in_cluster excludes kubeconfig_path and context")
        return self

    def get_api_client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` for this cluster (holds the token: do not log)."""
        return new_api_client(
            host=self.host,
            token=self.token.get_secret_value() if self.token is not None else None,
            kubeconfig=self.kubeconfig_path,
            context=self.context,
            in_cluster=True if self.in_cluster else None,
            verify_ssl=self.verify_ssl,
            ca_cert=self.ca_cert_path,
        )

    def get_client(self) -> KubeClient:
        """The adapters' client, bound to ``namespace``."""
        return KubeClient(self.get_api_client(), self.namespace, request_timeout=self.request_timeout)

    def workloads(self, **options: Any) -> KubernetesWorkloads:
        return KubernetesWorkloads(self.get_client(), **options)

    def router(self, **options: Any) -> IstioRouter:
        return IstioRouter(self.get_client(), **options)

    def builder(self, image: str, *, system: str = "tekton", **options: Any) -> TektonBuilder | KnativeBuilder:
        """A Tekton (default) or Knative Build builder pushing to ``image``."""
        if system not in ("tekton", "knative"):
            raise ValueError(f"system must be 'tekton' or 'knative', not {system!r}")
        kind = TektonBuilder if system == "tekton" else KnativeBuilder
        return kind(self.get_client(), image=image, **options)

    # -- what the flows call (the same methods on every platform block) -----------------
    def builder_for(self, app: str) -> TektonBuilder | KnativeBuilder:
        if not self.image_repository:
            raise ConfigError(
                f"KubernetesCluster block {self._block_document_name!r}: set image_repository "
                "(the registry path builds push to) before building on the cluster"
            )
        return self.builder(f"{self.image_repository.rstrip('/')}/{app}", system=self.build_system)

    def production_image(self, app: str) -> str | None:
        return self.workloads().production_image(app)

    def production_commit(self, app: str) -> str | None:
        """Unknown on Kubernetes (images carry no commit we can trust): releases are then
        ordered by push time (canary.queue)."""
        return None

    def reconcile(self, app: str) -> dict[str, Any]:
        """Repair a crashed release: 100 % primary (read back), our Deployments deleted,
        the user's routes restored: in that order, so no request reaches a deleted pod."""
        router = self.router()
        router.rollback(app)
        workloads = self.workloads()
        removed = workloads.leftovers(app)
        for track in ("baseline", "canary"):
            workloads.remove(app, track)
        router.restore(app)
        return {"weights": "100% primary (verified)", "removed": removed}

    def restore_routes(self, app: str) -> None:
        self.router().restore(app)
