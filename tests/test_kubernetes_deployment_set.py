"""The Kubernetes deployment set agrees with itself and with the local one.

prefect.kubernetes.yaml is a second copy of prefect.yaml's deployments (a prefect file cannot
include another), so this test is what keeps the two from drifting: same deployments, same
entrypoints, triggers and schedules, the same parameters with the cluster's block names. The
image, work pool, namespace and ServiceAccount are named in several files (Dockerfile,
prefect.kubernetes.yaml, deployments/kubernetes/); each name is checked to be one name.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "deployments" / "kubernetes"
#: The only values that differ between the two prefect files: the blocks the flows load.
BLOCKS = {
    "local-platform/local": "canary-kubernetes-cluster/cluster",
    "prometheus-source/local": "prometheus-source/cluster",
}


def _prefect_file(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / name).read_text())


def _deployments(name: str) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in _prefect_file(name)["deployments"]}


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((MANIFESTS / name).read_text()) if d]


def _kustomization() -> dict[str, Any]:
    return yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())


def _dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def _containers() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(file, pod spec, container) of every container in deployments/kubernetes."""
    found = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in _docs(path.name):
            if doc["kind"] == "Deployment":
                pod = doc["spec"]["template"]["spec"]
                found += [(path.name, pod, c) for c in pod["containers"]]
    return found


# -- prefect.kubernetes.yaml vs prefect.yaml ---------------------------------------------


def test_same_deployments_in_the_same_order() -> None:
    assert list(_deployments("prefect.kubernetes.yaml")) == list(_deployments("prefect.yaml"))


@pytest.mark.parametrize("name", list(_deployments("prefect.yaml")))
def test_each_deployment_matches_but_for_pool_and_blocks(name: str) -> None:
    local, cluster = _deployments("prefect.yaml")[name], _deployments("prefect.kubernetes.yaml")[name]
    assert cluster["work_pool"]["name"] == "canary-kubernetes"
    assert local["work_pool"]["name"] == "canary-local"
    same = set(local) | set(cluster)
    for key in sorted(same - {"work_pool", "parameters"}):
        assert cluster.get(key) == local.get(key), f"{name}: {key} differs"
    expected = {k: BLOCKS.get(v, v) if isinstance(v, str) else v
                for k, v in local.get("parameters", {}).items()}  # fmt: skip
    assert cluster.get("parameters", {}) == expected


def test_every_trigger_is_named_uniquely_in_both_files() -> None:
    for file in ("prefect.yaml", "prefect.kubernetes.yaml"):
        names = [t["name"] for d in _deployments(file).values() for t in d.get("triggers", [])]
        assert len(names) == len(set(names)) and all(names), file


def test_the_cluster_file_runs_the_image_with_the_code_inside() -> None:
    cluster = _prefect_file("prefect.kubernetes.yaml")
    local = _prefect_file("prefect.yaml")
    assert cluster["prefect-version"] == local["prefect-version"]
    pool = cluster["definitions"]["work_pools"]["canary_kubernetes"]
    variables = pool["job_variables"]
    assert variables["image"] == "{{ $CANARY_IMAGE }}"
    assert variables["namespace"] == _kustomization()["namespace"]
    accounts = [d["metadata"]["name"] for d in _docs("rbac.yaml") if d["kind"] == "ServiceAccount"]
    assert variables["service_account_name"] in accounts
    assert variables["env"] == local["definitions"]["work_pools"]["canary_local"]["job_variables"]["env"]
    (step,) = cluster["pull"]
    workdir = re.search(r"^WORKDIR (\S+)$", _dockerfile(), re.M)
    assert workdir is not None
    assert step["prefect.deployments.steps.set_working_directory"]["directory"] == workdir.group(1)
    assert cluster["build"] is None and cluster["push"] is None


# -- the image and the manifests ---------------------------------------------------------


def test_the_worker_polls_the_pool_the_deployments_target() -> None:
    pool = _prefect_file("prefect.kubernetes.yaml")["definitions"]["work_pools"]["canary_kubernetes"]
    (worker,) = [c for f, _, c in _containers() if f == "worker.yaml"]
    command = worker["command"]
    assert command[command.index("--pool") + 1] == pool["name"]
    assert command[command.index("--type") + 1] == "kubernetes"
    assert f'"--pool", "{pool["name"]}"' in _dockerfile()  # the image's default command


def test_every_container_runs_the_projects_image_set_in_one_place() -> None:
    (image,) = _kustomization()["images"]
    assert set(image) == {"name", "newName", "newTag"}
    for file, _, container in _containers():
        assert container["image"].rsplit(":", 1)[0] == image["name"], file


def test_pods_run_as_the_images_non_root_user() -> None:
    user = re.search(r"^USER (\d+)$", _dockerfile(), re.M)
    assert user is not None
    for file, pod, _ in _containers():
        assert pod["securityContext"]["runAsNonRoot"] is True, file
        assert str(pod["securityContext"]["runAsUser"]) == user.group(1), file


def test_the_image_installs_the_pinned_requirements() -> None:
    dockerfile = _dockerfile()
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.M)
    assert "pip install -r requirements-kubernetes.txt" in dockerfile
    lines = (ROOT / "requirements-kubernetes.txt").read_text().splitlines()
    reqs = [line for line in lines if line and not line.startswith("#")]
    assert reqs[0] == "-r requirements.txt"
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*", r) for r in reqs[1:]), reqs
    assert any(r.startswith("prefect-kubernetes==") for r in reqs)
    assert not any("prefect-kubernetes" in r for r in (ROOT / "requirements.txt").read_text().splitlines())


def test_the_build_context_keeps_what_flow_runs_need() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}  # fmt: skip
    needed = {"canary", "blocks", "tasks", "flows", "webhook", "deployments",
              "requirements.txt", "requirements-kubernetes.txt"}  # fmt: skip
    assert not needed & ignored
    assert {".git", ".venv", ".state", "tests"} <= ignored  # no history, no local state


def test_kustomize_renders_every_container_with_the_chosen_image(tmp_path: Path) -> None:
    """What `kubectl apply -k` would apply (kubectl's built-in kustomize; offline)."""
    import shutil
    import subprocess

    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed: the kustomize rendering is not checked")
    copy = tmp_path / "kubernetes"
    shutil.copytree(MANIFESTS, copy)
    (image,) = _kustomization()["images"]  # as shipped, or as README step 4 set it
    text = (copy / "kustomization.yaml").read_text()
    text = text.replace(f"newName: {image['newName']}", "newName: reg.test/me/pc")
    (copy / "kustomization.yaml").write_text(text.replace(f"newTag: {image['newTag']}", "newTag: abc"))
    rendered = subprocess.run([kubectl, "kustomize", str(copy)], check=True, capture_output=True,
                              text=True, timeout=60).stdout  # fmt: skip
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    images = [c["image"] for d in docs if d["kind"] == "Deployment"
              for c in d["spec"]["template"]["spec"]["containers"]]  # fmt: skip
    assert images and set(images) == {"reg.test/me/pc:abc"}
    assert {d["metadata"]["namespace"] for d in docs} == {"prefect-canary"}


# -- the orchestrator: Prefect server on PostgreSQL (deployments/kubernetes/prefect-server) --
SERVER = MANIFESTS / "prefect-server"


def _server_docs() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((SERVER / "kustomization.yaml").read_text())
    return [d for name in kustomization["resources"]
            for d in yaml.safe_load_all((SERVER / name).read_text()) if d]  # fmt: skip


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def test_the_server_is_where_the_worker_and_relay_look() -> None:
    """worker.yaml and webhook.yaml reach http://<Service>.<namespace>.svc...:<port>/api."""
    docs = _server_docs()
    namespace = yaml.safe_load((SERVER / "kustomization.yaml").read_text())["namespace"]
    service = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "prefect-server")
    port = service["spec"]["ports"][0]["port"]
    wanted = f"http://prefect-server.{namespace}.svc.cluster.local:{port}/api"
    urls = {_env(c)["PREFECT_API_URL"]["value"] for _, _, c in _containers() if "PREFECT_API_URL" in _env(c)}
    assert urls == {wanted}


def test_every_service_selects_the_pods_of_its_workload() -> None:
    docs = _server_docs()
    workloads = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    for d in workloads:
        assert d["spec"]["selector"]["matchLabels"].items() <= d["spec"]["template"]["metadata"]["labels"].items()
    for service in (d for d in docs if d["kind"] == "Service"):
        selector = service["spec"]["selector"].items()
        matched = [w for w in workloads if selector <= w["spec"]["template"]["metadata"]["labels"].items()]
        assert len(matched) == 1, service["metadata"]["name"]
        ports = {p["name"] for c in matched[0]["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports


def test_the_database_url_and_password_come_from_the_secret_only() -> None:
    """The PostgreSQL URL carries the password: it is read from the Secret the README's
    commands create, never written in a manifest."""
    docs = _server_docs()
    server = next(d for d in docs if d["metadata"]["name"] == "prefect-server" and d["kind"] == "Deployment")
    (container,) = server["spec"]["template"]["spec"]["containers"]
    env = _env(container)
    assert env["PREFECT_API_DATABASE_CONNECTION_URL"]["valueFrom"]["secretKeyRef"] == {"name": "prefect-db", "key": "url"}
    postgres = next(d for d in docs if d["kind"] == "StatefulSet")
    (db,) = postgres["spec"]["template"]["spec"]["containers"]
    assert _env(db)["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "prefect-db", "key": "password"}
    text = "".join((SERVER / n).read_text() for n in ("postgres.yaml", "server.yaml"))
    assert "postgresql+asyncpg://" not in text  # only in the kustomization's instructions
    howto = (SERVER / "kustomization.yaml").read_text()
    assert "create secret generic prefect-db" in howto and "--from-literal=url=" in howto
    assert f"prefect-postgres.{yaml.safe_load(howto)['namespace']}.svc" in howto


def test_one_server_replica_with_its_lease_storage_on_a_volume() -> None:
    """In-memory event broker: one replica, replaced (Recreate), never two at once; the
    release locks' leases survive a restart on the volume."""
    docs = _server_docs()
    server = next(d for d in docs if d["metadata"]["name"] == "prefect-server" and d["kind"] == "Deployment")
    spec = server["spec"]
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
    (container,) = spec["template"]["spec"]["containers"]
    env = _env(container)
    assert env["PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE"]["value"].endswith("lease_storage.filesystem")
    home = env["PREFECT_HOME"]["value"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
    mount = next(name for name, path in mounts.items() if home.startswith(path))
    assert "persistentVolumeClaim" in volumes[mount]
    assert container["image"].rsplit(":", 1)[0] == _kustomization()["images"][0]["name"]
