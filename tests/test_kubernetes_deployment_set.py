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
