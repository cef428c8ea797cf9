"""The real Kubernetes control plane in the tests (controlplane/), one per test run.

``control_plane`` (session) starts it once and shares it between pytest-xdist workers: the
first worker to need it starts it under a lock, each worker registers itself, and the last
one to finish stops it and deletes its state. With ``CANARY_KUBE_STATE`` pointing at a plane
that runs already (`make kube`), the tests use that one and leave it running.

``namespace`` (per test) is a fresh namespace holding the release runner's ServiceAccount,
Role and RoleBinding exactly as deployments/kubernetes/rbac.yaml has them, and a token for that
ServiceAccount from the TokenRequest API: the adapters under test run with that token, so
the real authorizer answers 403 for anything the Role does not grant. Seeding and reading
back go through the admin's client certificate.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import kubernetes.client as k8s
import yaml
from kubernetes.client.exceptions import ApiException

from canary.platforms.kubernetes import DEPLOYMENT, POD, Kind, KubeClient
from canary.platforms.kubernetes.istio import destination_rule_kind, virtual_service_kind
from canary.platforms.kubernetes.knative import BUILD
from canary.platforms.kubernetes.manifests import rollout_progress
from canary.platforms.kubernetes.tekton import TASKRUN
from canary.platforms.local import procs
from controlplane.cluster import ControlPlane, Endpoint
from controlplane.install import problems

ROOT = Path(__file__).resolve().parents[2]
RBAC = ROOT / "deployments" / "kubernetes" / "rbac.yaml"
RUNNER = "prefect-canary"  # the ServiceAccount, Role and RoleBinding of rbac.yaml
KINDS: dict[str, Kind] = {
    "Deployment": DEPLOYMENT, "Pod": POD, "VirtualService": virtual_service_kind(),
    "DestinationRule": destination_rule_kind(), "TaskRun": TASKRUN, "Build": BUILD,
    "ReplicaSet": Kind("ReplicaSet", "apps", "v1", "replicasets", "AppsV1Api", "replica_set"),
    "Service": Kind("Service", "", "v1", "services", "CoreV1Api", "service"),
}


def not_built() -> str | None:
    """Why the control plane cannot start here (None: it can)."""
    found = problems()
    return "; ".join(found) + " (run `make setup`)" if found else None


# -- the session's control plane ----------------------------------------------------------
@dataclass
class Cluster:
    """A running control plane and clients for it."""

    endpoint: Endpoint
    plane: ControlPlane

    def api_client(self, token: str | None = None) -> k8s.ApiClient:
        """The admin (client certificate), or whoever ``token`` belongs to."""
        config = k8s.Configuration()
        config.host = self.endpoint.url
        config.ssl_ca_cert = str(self.endpoint.ca)
        if token is None:
            config.cert_file = str(self.endpoint.client_cert)
            config.key_file = str(self.endpoint.client_key)
        else:
            config.api_key = {"BearerToken": f"Bearer {token}"}
        return k8s.ApiClient(config)

    def kubectl(self, *args: str, input: str | None = None) -> str:
        return self.plane.kubectl(*args, input=input)

    def audit(self, user: str, since: float = 0.0) -> list[dict[str, Any]]:
        """The audit log's events of ``user`` (ResponseComplete), newer than ``since`` (epoch)."""
        events = []
        with contextlib.suppress(FileNotFoundError), open(self.endpoint.audit_log) as log:
            for line in log:
                if f'"username":"{user}"' not in line:  # cheap: the log holds every test's requests
                    continue
                event = json.loads(line)
                if event.get("user", {}).get("username") != user or event.get("stage") != "ResponseComplete":
                    continue
                stamp = event.get("requestReceivedTimestamp", "")
                if since and _epoch(stamp) < since:
                    continue
                events.append(event)
        return events


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() if stamp else 0.0


def _run_dir() -> Path:
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"solo-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    return Path(tempfile.gettempdir()) / f"canary-kube-{run}"


def _users(path: Path) -> set[int]:
    return {pid for pid in procs.read_json(path, []) or [] if Path(f"/proc/{pid}").exists()}


@contextlib.contextmanager
def shared_control_plane() -> Iterator[Cluster]:
    """The control plane for this test run (see the module's docstring)."""
    external = os.environ.get("CANARY_KUBE_STATE")
    if external:
        plane = ControlPlane(Path(external), say=lambda _: None)
        endpoint = plane.running()
        if endpoint is None:
            raise RuntimeError(f"CANARY_KUBE_STATE={external} names no running control plane "
                               "(start it with `make kube`, or unset it)")
        yield Cluster(endpoint, plane)
        return
    state = _run_dir()
    plane = ControlPlane(state, say=lambda _: None)
    users = state.parent / f"{state.name}.users"
    with procs.locked(state.parent / f"{state.name}.lock"):
        procs.write_json(users, sorted(_users(users) | {os.getpid()}))
        endpoint = plane.up()
    try:
        yield Cluster(endpoint, plane)
    finally:
        with procs.locked(state.parent / f"{state.name}.lock"):
            left = _users(users) - {os.getpid()}
            procs.write_json(users, sorted(left))
            if not left:
                plane.down(wipe=True)
                users.unlink(missing_ok=True)
                (state.parent / f"{state.name}.lock").unlink(missing_ok=True)  # the last user


def install_release_policies(cluster: Cluster) -> Cluster:
    """The shipped ReleasePolicy CRD installed and Established (idempotent: the control plane
    is shared between workers, and a server-side apply of the same CRD changes nothing)."""
    from canary.config.policy import GROUP, PLURAL
    from canary.config.policy_schema import render

    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=render())
    cluster.kubectl("wait", "--for=condition=Established", f"crd/{PLURAL}.{GROUP}", "--timeout=60s")
    return cluster


# -- a namespace per test -----------------------------------------------------------------
def runner_manifests(namespace: str) -> list[dict[str, Any]]:
    """rbac.yaml's ServiceAccount, Role and RoleBinding, in ``namespace``."""
    docs = [d for d in yaml.safe_load_all(RBAC.read_text()) if d]
    for doc in docs:
        doc["metadata"]["namespace"] = namespace
        for subject in doc.get("subjects") or []:
            subject["namespace"] = namespace
    return docs


@dataclass
class Namespace:
    """One test's namespace: ``kube`` acts as the release runner, ``admin`` as the cluster's owner."""

    name: str
    cluster: Cluster
    token: str
    kube: KubeClient
    admin: KubeClient

    @property
    def runner(self) -> str:
        return f"system:serviceaccount:{self.name}:{RUNNER}"

    def seed(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.admin.create(KINDS[obj["kind"]], obj)

    def read(self, kind: str, name: str) -> dict[str, Any] | None:
        return self.admin.get(KINDS[kind], name)

    def names(self, kind: str) -> list[str]:
        items = self.admin.list(KINDS[kind])
        return sorted(o["metadata"]["name"] for o in items if not o["metadata"].get("deletionTimestamp"))

    def set_status(self, kind: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        """Write a custom object's status, as its controller would (no Tekton or Knative runs here)."""
        what = KINDS[kind]
        api = k8s.CustomObjectsApi(self.admin.api_client)
        for _ in range(10):
            obj = self.read(kind, name)
            assert obj is not None, f"{kind} {name} does not exist"
            obj["status"] = status
            try:
                return dict(api.replace_namespaced_custom_object_status(
                    what.group, what.version, self.name, what.plural, name, obj))
            except ApiException as error:
                if error.status != 409:
                    raise
        raise AssertionError(f"{kind} {name}: status kept conflicting")

    def settle(self, timeout: float = 60.0) -> None:
        """Until every Deployment is rolled out and no pod is terminating (the controllers and
        kwok caught up), or fail naming what is not."""
        deadline = time.monotonic() + timeout
        while True:
            waiting = []
            for deployment in self.admin.list(DEPLOYMENT):
                done, progress = rollout_progress(deployment)
                if not done:
                    waiting.append(f"Deployment {deployment['metadata']['name']}: {progress}")
            waiting += [f"pod {p['metadata']['name']} terminating" for p in self.admin.list(POD)
                        if p["metadata"].get("deletionTimestamp")]
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"namespace {self.name} did not settle in {timeout:g} s: "
                                     + "; ".join(waiting))
            time.sleep(0.1)

    def wait(self, what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout:g} s")
            time.sleep(0.05)


def make_namespace(cluster: Cluster, prefix: str = "t", *, request_timeout: float = 10.0) -> Namespace:
    name = f"{prefix[:40].rstrip('-')}-{secrets.token_hex(3)}"
    admin_api = cluster.api_client()
    core = k8s.CoreV1Api(admin_api)
    core.create_namespace({"metadata": {"name": name, "labels": {"prefect-canary.dev/test": "true"}}})
    admin = KubeClient(admin_api, name, request_timeout=request_timeout)
    rbac = k8s.RbacAuthorizationV1Api(admin_api)
    for doc in runner_manifests(name):
        if doc["kind"] == "ServiceAccount":
            core.create_namespaced_service_account(name, doc)
        elif doc["kind"] == "Role":
            rbac.create_namespaced_role(name, doc)
        elif doc["kind"] == "RoleBinding":
            rbac.create_namespaced_role_binding(name, doc)
    token = core.create_namespaced_service_account_token(
        RUNNER, name, {"spec": {"expirationSeconds": 3600}}).status.token
    deadline = time.monotonic() + 30
    while True:  # pods are refused until the serviceaccount controller made `default`
        try:
            core.read_namespaced_service_account("default", name)
            break
        except ApiException as error:
            if error.status != 404 or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    kube = KubeClient(cluster.api_client(token), name, request_timeout=request_timeout)
    return Namespace(name, cluster, token, kube, admin)


def delete_namespace(namespace: Namespace) -> None:
    with contextlib.suppress(ApiException):
        k8s.CoreV1Api(namespace.admin.api_client).delete_namespace(namespace.name)
