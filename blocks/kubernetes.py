"""``KubernetesCluster``: a Prefect block saying which cluster and namespace to release in.

It replaces prefect-kubernetes' credentials block on purpose: that one brings a second,
async client and keeps the cluster config (tokens included) as plain JSON. Here the token is
a ``SecretStr`` (stored encrypted, never shown in the UI, repr or ``model_dump()``) and is
revealed only when the API client is built. Sources are tried in the prefect-kubernetes
order: explicit host (+ token), then a kubeconfig (path + context), then in-cluster.

Options come from two places (docs/kubernetes.md lists them all): per-cluster ones are this
block's fields (build system, registry and its credentials, build service account, track
label, timeouts, which traffic router); per-app ones are the ``kubernetes:`` section of the
app's release spec (the router's options under ``router:``, split or mirror, replicas,
container, Dockerfile and context). The caller binds the app and that spec once with
``for_app`` (the spec the flow judges with: a block must not guess it from the flow run),
which hands out that app's adapters (``KubernetesApp``); ``spec_for`` is the one place that
says what is used when no spec is known.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, field_validator, model_validator

from canary.cleanup import run_cleanup
from canary.config import CanaryConfig
from canary.config.kubernetes import KubernetesRelease, object_name
from canary.config.release import ReleaseSpec, TrafficPlan
from canary.errors import ConfigError
from canary.platforms.kubernetes import (
    TRACK_LABEL,
    KnativeBuilder,
    KubeClient,
    KubernetesWorkloads,
    TektonBuilder,
    new_api_client,
    policies,
)
from canary.platforms.kubernetes.builds import KANIKO_IMAGE
from canary.platforms.kubernetes.client import ApiClient
from canary.platforms.kubernetes.routers import ROUTERS, RouterSettings, make_router, track_service
from canary.ports import TrafficRouter
from canary.values.events import ReleaseEnded

_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+")


def _is_subdomain(value: str) -> bool:
    try:
        return object_name(value) is not None
    except ValueError:
        return False


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
    build_system: Literal["tekton", "knative"] = Field(
        "tekton", description="'tekton' (TaskRun + kaniko) or 'knative' (Knative Build + kaniko).")
    build_service_account: str | None = Field(
        None, description="ServiceAccount the build pods run as (git and registry secrets "
        "attached to it are used); default: the namespace's `default`.")
    registry_secret: str | None = Field(
        None, description="Secret with registry credentials (docker config JSON, e.g. made by "
        "`kubectl create secret docker-registry`), mounted where kaniko reads it.")
    registry_secret_key: str = Field(
        ".dockerconfigjson", description="Key of `registry_secret` holding the docker config JSON.")
    kaniko_image: str = Field(KANIKO_IMAGE, description="The kaniko executor image builds run.")
    build_timeout_seconds: float = Field(1800.0, gt=0, description="How long a build may run.")
    rollout_timeout_seconds: float = Field(
        600.0, gt=0, description="How long a promotion waits for production's rolling update.")
    traffic_router: str = Field(
        "istio", description="What splits the traffic: a name in "
        "canary.platforms.kubernetes.routers.ROUTERS (istio, gateway-api).")
    istio_api_version: Literal["v1", "v1beta1", "v1alpha3"] = Field(
        "v1", description="networking.istio.io version to use (v1 needs Istio >= 1.22).")
    track_label: str = Field(
        TRACK_LABEL, description="Pod label telling primary, baseline and canary apart; "
        "production's selector must include it with the value `primary`.")
    release_specs: str = Field(
        "deployments/releases", description="Folder of release specs (<app>.yaml) to read an "
        "app's `kubernetes:` options from when the caller knows no spec (e.g. a build of a "
        "commit without .canary/, or a reconcile with no release run to read it from).")

    @field_validator("build_service_account", "registry_secret")
    @classmethod
    def _object_names(cls, value: str | None) -> str | None:
        return object_name(value)

    @field_validator("registry_secret_key")
    @classmethod
    def _secret_key(cls, value: str) -> str:
        if not _SECRET_KEY.fullmatch(value):
            raise ValueError(f"{value!r} is not a Secret key (letters, digits, '-', '_', '.')")
        return value

    @field_validator("traffic_router")
    @classmethod
    def _traffic_router(cls, value: str) -> str:
        if value not in ROUTERS:
            raise ValueError(f"traffic_router {value!r} is not known; choose one of {sorted(ROUTERS)}")
        return value

    @field_validator("track_label")
    @classmethod
    def _track_label(cls, value: str) -> str:
        prefix, _, name = value.rpartition("/")
        if not _LABEL_NAME.fullmatch(name) or (prefix and not _is_subdomain(prefix)):
            raise ValueError(f"track_label {value!r} is not a label key: use [prefix/]name, e.g. "
                             f"{TRACK_LABEL}")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> KubernetesCluster:
        if self.token is not None and not self.host:
            raise ValueError("token needs host: it is sent to that API server only")
        if self.host and (self.kubeconfig_path or self.context or self.in_cluster):
            raise ValueError("set host (+ token), or kubeconfig_path/context, or in_cluster; not several")
        if self.in_cluster and (self.kubeconfig_path or self.context):
            raise ValueError("in_cluster excludes kubeconfig_path and context")
        return self

    def get_api_client(self) -> ApiClient:
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

    # -- per-app options, from the app's release spec -----------------------------------
    def spec_for(self, app: str, spec: ReleaseSpec | None) -> ReleaseSpec | None:
        """The spec whose options `app`'s adapters use.

        `spec`, the one the caller judges with; when it knows none,
        ``<release_specs>/<app>.yaml`` if there is one; else None (every default applies).
        The only place a spec is looked up instead of given.

        Raises:
            ConfigError: the spec is for another app, or the file is not a valid spec.
        """
        if spec is None:
            path = Path(self.release_specs) / f"{app}.yaml"
            if not path.is_file():
                return None
            spec = ReleaseSpec.load(path)
        if spec.app != app:
            raise ConfigError(f"release spec {spec.source} is for app {spec.app!r}, not {app!r}: "
                              "pass the spec of the app being released")  # fmt: skip
        return spec

    def app_options(self, app: str, spec: ReleaseSpec | None) -> tuple[KubernetesRelease, int]:
        """(the app's ``kubernetes:`` options, the canary's largest traffic share in %)."""
        used = self.spec_for(app, spec)
        if used is None:
            return KubernetesRelease(), max(TrafficPlan().steps)
        return used.kubernetes, max(used.traffic.steps)

    def for_app(self, app: str, spec: ReleaseSpec | None) -> KubernetesApp:
        """`app` on this cluster with the options of `spec` (see `spec_for`), read once
        when the first adapter is made (production_commit needs none)."""
        return KubernetesApp(self, app, spec)

    def builder(self, image: str, *, system: str | None = None, dockerfile: str = "Dockerfile",
                context: str = ".") -> TektonBuilder | KnativeBuilder:  # fmt: skip
        """A Tekton or Knative Build builder pushing to ``image``, with this block's build
        options and the given Dockerfile and context.

        Raises:
            ConfigError: `system` is neither tekton nor knative.
        """
        system = system or self.build_system
        if system not in ("tekton", "knative"):
            raise ConfigError(f"build_system must be 'tekton' or 'knative', not {system!r}")
        kind = TektonBuilder if system == "tekton" else KnativeBuilder
        return kind(self.get_client(), image=image, service_account=self.build_service_account,
                    docker_config_secret=self.registry_secret,
                    docker_config_key=self.registry_secret_key, kaniko_image=self.kaniko_image,
                    timeout=self.build_timeout_seconds, dockerfile=dockerfile, context=context)

    # -- the same per-app calls, for scripts (the tasks use for_app) ---------------------
    def workloads(self, app: str, spec: ReleaseSpec | None) -> KubernetesWorkloads:
        """The Workloads port for `app`, sized and aimed by the spec's options."""
        return self.for_app(app, spec).workloads()

    def router(self, app: str, spec: ReleaseSpec | None) -> TrafficRouter:
        """The TrafficRouter port for `app`: `traffic_router`'s implementation with the
        spec's options."""
        return self.for_app(app, spec).router()

    def builder_for(self, app: str, spec: ReleaseSpec | None) -> TektonBuilder | KnativeBuilder:
        """The builder of `app`'s commits, with the spec's Dockerfile and context."""
        return self.for_app(app, spec).builder()

    def production_image(self, app: str, spec: ReleaseSpec | None) -> str | None:
        """The image `app`'s production runs now, None before the first."""
        return self.for_app(app, spec).production_image()

    def production_commit(self, app: str) -> str | None:
        """Unknown on Kubernetes (see KubernetesApp.production_commit)."""
        return None

    def reconcile(self, app: str, spec: ReleaseSpec | None) -> dict[str, object]:
        """Repair a crashed release of `app` (see KubernetesApp.reconcile)."""
        return self.for_app(app, spec).reconcile()

    def restore_routes(self, app: str, spec: ReleaseSpec | None) -> None:
        """Put `app`'s routes back as they were before the release."""
        self.for_app(app, spec).restore_routes()

    # -- ReleasePolicies (canary.ports): the app's ReleasePolicy in ``namespace`` ---------
    def release_config(self, app: str) -> tuple[ReleaseSpec, CanaryConfig] | None:
        """The spec and canary config of the ReleasePolicy named `app` (None: none, or no
        ReleasePolicy CRD on the cluster)."""
        return policies.release_config(self.get_client(), app)

    def record_release(self, app: str, ended: ReleaseEnded, report: str) -> None:
        """Write the release's end into the status of the ReleasePolicy named `app`."""
        status = policies.PolicyStatus(outcome=ended.outcome, commit=ended.commit or "",
                                       reason=ended.reason, report=report, judge=ended.judge or "")
        policies.write_status(self.get_client(), app, status)


class KubernetesApp:
    """One app on a cluster with its release spec's options (canary.ports.AppPlatform).

    Made by `KubernetesCluster.for_app`: per-cluster settings come from the block, per-app
    ones from the spec, resolved once, when the first adapter is made. Adapters are made
    when asked for, so a reconcile never needs the build settings.
    """

    def __init__(self, cluster: KubernetesCluster, app: str, spec: ReleaseSpec | None) -> None:
        """Bind `app` and its release spec to `cluster`.

        Args:
            cluster: the block with the per-cluster settings.
            app: the app's name.
            spec: the release spec the caller judges with (None: none known).
        """
        self.cluster, self.app, self.spec = cluster, app, spec
        self._options: tuple[KubernetesRelease, int] | None = None

    @property
    def options(self) -> KubernetesRelease:
        """The `kubernetes:` section of the app's spec (KubernetesCluster.app_options).

        Raises:
            ConfigError: the spec is for another app, or the fallback spec is invalid.
        """
        return self._resolved()[0]

    @property
    def max_share(self) -> int:
        """The canary's largest traffic share in %, which sizes its replicas."""
        return self._resolved()[1]

    def _resolved(self) -> tuple[KubernetesRelease, int]:
        if self._options is None:
            self._options = self.cluster.app_options(self.app, self.spec)
        return self._options

    def workloads(self) -> KubernetesWorkloads:
        """The Workloads port for the app, sized and aimed by its options."""
        c = self.cluster
        return KubernetesWorkloads(c.get_client(), replicas=self.options.replicas,
                                   max_share=self.max_share, container=self.options.container,
                                   track_label=c.track_label,
                                   rollout_timeout=c.rollout_timeout_seconds,
                                   service=track_service(c.traffic_router, self.options, self.app))  # fmt: skip

    def router(self) -> TrafficRouter:
        """The cluster's `traffic_router`, with the app's router options.

        Raises:
            ConfigError: the spec's `router:` names another router than the cluster's.
        """
        c = self.cluster
        return make_router(c.traffic_router, c.get_client(), self.options,
                           RouterSettings(c.track_label, c.istio_api_version))  # fmt: skip

    def builder(self) -> TektonBuilder | KnativeBuilder:
        """The builder of the app's commits, pushing to ``<image_repository>/<app>``.

        Raises:
            ConfigError: the block has no `image_repository`.
        """
        c = self.cluster
        if not c.image_repository:
            raise ConfigError(
                f"KubernetesCluster block {c._block_document_name!r}: set image_repository "
                "(the registry path builds push to) before building on the cluster"
            )
        return c.builder(f"{c.image_repository.rstrip('/')}/{self.app}",
                         dockerfile=self.options.dockerfile, context=self.options.context)

    def production_image(self) -> str | None:
        """The image production runs now, None before the first."""
        return self.workloads().production_image(self.app)

    def production_commit(self) -> str | None:
        """Unknown on Kubernetes (images carry no commit we can trust): releases are then
        ordered by push time (canary.queue)."""
        return None

    def reconcile(self) -> dict[str, object]:
        """Repair a crashed release in the cleanup order of canary.cleanup.

        100 % primary (read back), our Deployments deleted (never while traffic may still
        reach them), the user's routes restored.

        Returns:
            What was removed, the steps run and the image production runs.

        Raises:
            CanaryError: the first failure, after every step ran.
        """
        app, router, workloads = self.app, self.router(), self.workloads()
        removed = workloads.leftovers(app)
        steps, error = run_cleanup({
            "roll_back_traffic": lambda: router.rollback(app),
            "remove_baseline": lambda: workloads.remove(app, "baseline"),
            "remove_canary": lambda: workloads.remove(app, "canary"),
            "restore_routes": lambda: router.restore(app),
        })  # fmt: skip
        if error is not None:
            error.add_note("reconcile of " + app + ": " + "; ".join(steps))
            raise error
        return {"weights": "100% primary (verified)", "removed": removed, "steps": steps,
                "primary": workloads.production_image(app)}  # fmt: skip

    def restore_routes(self) -> None:
        """Put the user's routes back as they were before the release (idempotent)."""
        self.router().restore(self.app)
