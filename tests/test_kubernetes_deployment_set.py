"""The Kubernetes deployment set agrees with itself and with the local one.

prefect.kubernetes.yaml is a second copy of prefect.yaml's deployments (a prefect file cannot
include another), so this test is what keeps the two from drifting: same deployments, same
entrypoints, triggers and schedules, the same parameters with the cluster's block names. The
image, work pool, namespace and ServiceAccount are named in several files (Dockerfile,
prefect.kubernetes.yaml, deployments/kubernetes/); each name is checked to be one name.

On the real control plane (tests/support/kube.py), docs/kubernetes.md "Run it on your cluster" steps 3
to 7 run as written: the manifests applied with the built kubectl's `apply -k` into a fresh
namespace (every object created, validated by the API server, read back), the worker and
the relay rolled out (kwok makes their pods Ready: no container runs), the blocks saved by
step 6's script, step 7's `prefect deploy`, and a release of the example app through the
saved block as the ServiceAccount the manifests made. The prefect-server set is applied the
way its kustomization says.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
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
    from controlplane.install import installed

    built = installed().tool("kubectl")  # `make setup` builds it; any kubectl renders alike
    kubectl = str(built) if built.exists() else shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("no kubectl (run `make setup`): the kustomize rendering is not checked")
    copy = tmp_path / "kubernetes"
    shutil.copytree(MANIFESTS, copy)
    (image,) = _kustomization()["images"]  # as shipped, or as docs/kubernetes.md step 4 sets it
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
    """The PostgreSQL URL carries the password: it is read from the Secret docs/kubernetes.md
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


# -- on the real API: docs/kubernetes.md "Run it on your cluster", steps 3 to 7 -----------------------
# The project's image is never pulled (kwok runs no containers): its pods only have to be
# scheduled and become Ready, which is what `kubectl rollout status` waits for.
IMAGE = "reg.test/me/prefect-canary:abc123"


def _readme_step_3_and_4(copy: Path, namespace: str, api_url: str) -> None:
    """Step 3's and step 4's `sed -i` on a copy: the namespace, the Prefect API, the image.
    Each pattern must still match (sed would say nothing if a file changed under it)."""
    edits = {
        "kustomization.yaml": [("namespace: prefect-canary", f"namespace: {namespace}"),
                               ("newName: registry.example.com/prefect-canary", f"newName: {IMAGE.rsplit(':', 1)[0]}"),
                               ("newTag: 0.1.0", f"newTag: {IMAGE.rsplit(':', 1)[1]}")],
        "webhook.yaml": [("http://prefect-server.prefect.svc.cluster.local:4200/api", api_url)],
        "worker.yaml": [("http://prefect-server.prefect.svc.cluster.local:4200/api", api_url)],
    }  # fmt: skip
    for name, pairs in edits.items():
        text = (copy / name).read_text()
        for old, new in pairs:
            assert old in text, f"docs/kubernetes.md step 3/4: {old!r} is no longer in {name}"
            text = text.replace(old, new)
        (copy / name).write_text(text)


def _applied(cluster: Any, directory: Path, namespace: str) -> dict[tuple[str, str], dict[str, Any]]:
    """`kubectl apply -k directory`, then every object it renders read back from the API
    server (`kubectl get -k`): (kind, name) -> object. Each was created, none left out."""
    rendered = [d for d in yaml.safe_load_all(cluster.kubectl("kustomize", str(directory))) if d]
    said = cluster.kubectl("apply", "-k", str(directory)).splitlines()
    assert len(said) == len(rendered) and all(line.endswith(" created") for line in said), said
    got = json.loads(cluster.kubectl("get", "-k", str(directory), "-o", "json"))["items"]
    found = {(o["kind"], o["metadata"]["name"]): o for o in got}
    assert set(found) == {(d["kind"], d["metadata"]["name"]) for d in rendered}
    assert {o["metadata"]["namespace"] for o in got} == {namespace}
    return found


@pytest.fixture
def fresh_namespace(control_plane: Any) -> Iterator[str]:
    """An empty namespace, made as docs/kubernetes.md step 5 makes it (no Role in it yet)."""
    name = f"deployment-set-{secrets.token_hex(3)}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture(scope="module")
def prefect_api() -> Iterator[str]:
    """A Prefect test server for steps 6 and 7 (the scripts refuse to save to a temporary one)."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        with prefect_test_harness(server_startup_timeout=240):  # a loaded 2-core machine took > 120 s once
            yield str(PREFECT_API_URL.value())


def test_the_deployment_set_is_applied_rolled_out_and_releases(
        control_plane: Any, fresh_namespace: str, prefect_api: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """Steps 3 to 7 on the real control plane, as written: the manifests applied with
    `kubectl apply -k` into the namespace (every object created and validated by the API
    server), the worker and the relay rolled out, the blocks saved with step 6's script
    (--host, the release runner's token, --ca-cert), step 7's deploy, then a release of the
    example app through the saved block, as the runner the manifests made."""
    ns, kubectl = fresh_namespace, control_plane.kubectl
    copy = tmp_path / "kubernetes"
    shutil.copytree(MANIFESTS, copy)
    _readme_step_3_and_4(copy, ns, prefect_api)
    # step 5: the relay's secret first, then the manifests, then both rollouts
    kubectl("-n", ns, "create", "secret", "generic", "canary-webhook",
            f"--from-literal=github-webhook-secret={secrets.token_hex(32)}")  # fmt: skip
    objects = _applied(control_plane, copy, ns)
    assert {kind for kind, _ in objects} == {"ServiceAccount", "Role", "RoleBinding", "Deployment", "Service"}
    for deployment in ("prefect-worker", "canary-webhook"):
        assert "successfully rolled out" in kubectl("-n", ns, "rollout", "status",
                                                    f"deployment/{deployment}", "--timeout=60s")  # fmt: skip
        image = objects["Deployment", deployment]["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image == IMAGE
    # the example app, in this namespace ("Try it without a cluster")
    app = (ROOT / "deployments" / "kubernetes" / "examples" / "myapp.yaml").read_text()
    kubectl("apply", "-f", "-", input=app.replace("namespace: shop", f"namespace: {ns}"))
    kubectl("-n", ns, "rollout", "status", "deployment/myapp", "--timeout=60s")
    vs_before = json.loads(kubectl("-n", ns, "get", "virtualservice", "myapp", "-o", "json"))

    # step 6: the blocks, with a token of the ServiceAccount the manifests made
    token_file = tmp_path / "token"
    token_file.write_text(kubectl("-n", ns, "create", "token", "prefect-canary", "--duration=1h"))
    script = _blocks_script()
    code = script.main(["--namespace", ns, "--host", control_plane.endpoint.url,
                        "--token-file", str(token_file), "--ca-cert", str(control_plane.endpoint.ca),
                        "--prometheus-url", "http://prometheus.istio-system.svc:9090",
                        "--image-repository", "registry.example.com/shop"])  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    assert token_file.read_text().strip() not in out.out + out.err

    # step 7: the flows deployed to the pool, with the image the Jobs run
    _readme_step_7(copy, ns, prefect_api, tmp_path)

    # a release through the saved block: pin, both tracks up, a split read back, promote,
    # and the cleanup order (100 % primary, tracks removed, routes restored)
    from blocks.kubernetes import KubernetesCluster
    from canary.values.weights import Weights
    from store.blocks import load_block

    block = load_block("canary-kubernetes-cluster/cluster")
    assert isinstance(block, KubernetesCluster)
    router, workloads = block.router("myapp", None), block.workloads("myapp", None)
    new = "registry.example.com/shop/myapp:1.1.0"
    router.set_weights("myapp", Weights.all_primary())
    workloads.deploy("myapp", "baseline", "registry.example.com/shop/myapp:1.0.0")
    workloads.deploy("myapp", "canary", new)
    for track in ("baseline", "canary"):
        workloads.wait_ready("myapp", track, 60)
    router.set_weights("myapp", Weights(90, 5, 5))
    assert router.read_weights("myapp") == Weights(90, 5, 5)
    workloads.promote("myapp", new)
    report = block.reconcile("myapp", None)
    assert sorted(report["removed"]) == ["myapp-baseline", "myapp-canary"] and report["primary"] == new

    production = json.loads(kubectl("-n", ns, "get", "deployment", "myapp", "-o", "json"))
    assert production["spec"]["template"]["spec"]["containers"][0]["image"] == new
    vs_after = json.loads(kubectl("-n", ns, "get", "virtualservice", "myapp", "-o", "json"))
    assert vs_after["spec"] == vs_before["spec"]
    assert vs_after["metadata"].get("annotations") == vs_before["metadata"].get("annotations")
    names = kubectl("-n", ns, "get", "deployments,destinationrules", "-o", "name").split()
    assert sorted(names) == ["deployment.apps/canary-webhook", "deployment.apps/myapp",
                             "deployment.apps/prefect-worker"]  # fmt: skip


def _blocks_script() -> Any:
    spec = importlib.util.spec_from_file_location("kubernetes_blocks", ROOT / "scripts" / "kubernetes_blocks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _readme_step_7(copy: Path, namespace: str, api_url: str, tmp_path: Path) -> None:
    """`prefect deploy --all --prefect-file prefect.kubernetes.yaml` (namespace as step 3
    set it, CANARY_IMAGE as step 7 says) after creating the pool as docs/kubernetes.md's fallback
    does; every deployment lands in the pool, its Jobs in the namespace, from the image."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    text = (ROOT / "prefect.kubernetes.yaml").read_text()
    assert "namespace: prefect-canary" in text
    prefect_file = tmp_path / "prefect.kubernetes.yaml"
    prefect_file.write_text(text.replace("namespace: prefect-canary", f"namespace: {namespace}"))
    with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
        client.create_work_pool(WorkPoolCreate(name="canary-kubernetes", type="kubernetes"))
    env = {**os.environ, "PREFECT_API_URL": api_url, "CANARY_IMAGE": IMAGE,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all",
                           "--prefect-file", str(prefect_file)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with get_client(sync_client=True) as client:
        deployments = client.read_deployments()
    wanted = {d["name"] for d in _prefect_file("prefect.kubernetes.yaml")["deployments"]}
    ours = [d for d in deployments if d.name in wanted]
    assert {d.name for d in ours} == wanted
    for deployment in ours:
        assert deployment.work_pool_name == "canary-kubernetes"
        assert deployment.job_variables["image"] == IMAGE
        assert deployment.job_variables["namespace"] == namespace


def test_the_prefect_server_set_is_applied_and_rolls_out(control_plane: Any, fresh_namespace: str,
                                                        tmp_path: Path) -> None:  # fmt: skip
    """deployments/kubernetes/prefect-server as its kustomization says to apply it (its
    namespace, the `prefect-db` secret first): every object created and validated by the API
    server, PostgreSQL's StatefulSet and the server's Deployment rolled out by their
    controllers, each on its claim. The volumes stand for a cluster's storage class
    (hostPath ones, bound to the claims in advance: no provisioner runs here, and kwok's
    pods mount nothing)."""
    ns, kubectl = fresh_namespace, control_plane.kubectl
    copy = tmp_path / "prefect-server"
    shutil.copytree(SERVER, copy)
    text = (copy / "kustomization.yaml").read_text()
    assert "\nnamespace: prefect\n" in text
    (copy / "kustomization.yaml").write_text(text.replace("\nnamespace: prefect\n", f"\nnamespace: {ns}\n"))
    password = secrets.token_hex(24)
    kubectl("-n", ns, "create", "secret", "generic", "prefect-db", f"--from-literal=password={password}",
            f"--from-literal=url=postgresql+asyncpg://prefect:{password}@prefect-postgres.{ns}.svc.cluster.local:5432/prefect")  # fmt: skip
    volumes = [f"{ns}-{claim}" for claim in ("data-prefect-postgres-0", "prefect-server-home")]
    for name, (claim, size) in zip(volumes, (("data-prefect-postgres-0", "10Gi"),
                                             ("prefect-server-home", "1Gi")), strict=True):
        kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
            "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                     "hostPath": {"path": f"/tmp/{name}"},
                     "claimRef": {"namespace": ns, "name": claim}}}))
    try:
        objects = _applied(control_plane, copy, ns)
        assert {kind for kind, _ in objects} == {"Service", "StatefulSet", "PersistentVolumeClaim", "Deployment"}
        kubectl("-n", ns, "rollout", "status", "statefulset/prefect-postgres", "--timeout=60s")
        kubectl("-n", ns, "rollout", "status", "deployment/prefect-server", "--timeout=60s")
        claims = json.loads(kubectl("-n", ns, "get", "persistentvolumeclaims", "-o", "json"))["items"]
        assert {(c["metadata"]["name"], c["status"]["phase"], c["spec"]["volumeName"]) for c in claims} == {
            ("data-prefect-postgres-0", "Bound", volumes[0]), ("prefect-server-home", "Bound", volumes[1])}
    finally:  # the namespace goes with the fixture; the volumes are cluster-wide
        kubectl("delete", "persistentvolume", *volumes, "--wait=false")


def _poll(read: Any, deadline: float) -> Any:
    end = time.monotonic() + deadline
    while True:
        found = read()
        if found or time.monotonic() > end:
            return found
        time.sleep(0.2)
