"""deployments/kubernetes validates (kubernetes-validate, strict), the Role grants exactly what
the adapters use, and every custom resource the adapters write fits the real CRD schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from canary.platforms.kubernetes import (
    IstioRouter,
    KnativeBuilder,
    KubernetesWorkloads,
    TektonBuilder,
)
from canary.platforms.kubernetes.knative import build_manifest
from canary.platforms.kubernetes.manifests import derived_deployment
from canary.platforms.kubernetes.routes import apply_weights, destination_rule, subsets
from canary.platforms.kubernetes.tekton import GIT_IMAGE, taskrun_manifest
from canary.values.weights import Weights
from tests.support.k8s_standin import StandIn
from tests.support.k8s_standin.resources import BUILTINS, default_crd_dir, load_crds, validate

from .conftest import (
    APP,
    COMMIT,
    IMAGE_REPO,
    MANIFESTS,
    NS,
    PROD_IMAGE,
    REPO,
    finish,
    production_deployment,
    role_rules,
    user_view,
    user_virtual_service,
    users_destination_rule,
)

FILES = sorted(p for p in MANIFESTS.glob("*.yaml") if p.name != "kustomization.yaml")


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_manifest_validates_strictly(path: Path) -> None:
    docs = _docs(path)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, "1.37", strict=True)
        assert doc["metadata"]["namespace"] == "prefect-canary"


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == [p.name for p in FILES]


def test_relay_and_worker_are_wired_as_documented() -> None:
    relay = next(d for d in _docs(MANIFESTS / "webhook.yaml") if d["kind"] == "Deployment")
    pod = relay["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"] == ["python", "-m", "webhook", "--host", "0.0.0.0", "--port", "8080"]
    env = {e["name"]: e for e in container["env"]}
    assert env["GITHUB_WEBHOOK_SECRET"]["valueFrom"]["secretKeyRef"]["name"] == "canary-webhook"
    assert "value" not in env["GITHUB_WEBHOOK_SECRET"]  # never a literal secret
    assert env["PREFECT_API_URL"]["value"].endswith("/api")
    assert pod["automountServiceAccountToken"] is False  # the relay needs no API access
    service = next(d for d in _docs(MANIFESTS / "webhook.yaml") if d["kind"] == "Service")
    assert service["spec"]["selector"] == relay["spec"]["selector"]["matchLabels"]
    worker = next(d for d in _docs(MANIFESTS / "worker.yaml") if d["kind"] == "Deployment")
    command = worker["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[:3] == ["prefect", "worker", "start"] and "kubernetes" in command
    assert worker["spec"]["template"]["spec"]["serviceAccountName"] == "prefect-worker"
    binding = next(d for d in _docs(MANIFESTS / "rbac.yaml") if d["kind"] == "RoleBinding")
    assert binding["roleRef"]["name"] == "prefect-canary"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "prefect-canary",
                                    "namespace": "prefect-canary"}]


def _granted() -> set[tuple[str, str, str]]:
    return {(g, r, v) for rule in role_rules() for g in rule["apiGroups"]
            for r in rule["resources"] for v in rule["verbs"]}


def test_the_role_grants_exactly_what_the_adapters_use(standin: StandIn, production: Any,
                                                       kube: Any) -> None:
    """Least privilege, both ways: every adapter path passes under the Role (the fixture
    enforces it: a missing grant is a 403), and nothing granted goes unused."""
    from .conftest import finish

    tekton = TektonBuilder(kube, image=IMAGE_REPO, timeout=5, window=1)
    knative = KnativeBuilder(kube, image=IMAGE_REPO, timeout=5, window=1)
    workloads = KubernetesWorkloads(kube, pod_check_interval=0.2)
    router = IstioRouter(kube)
    image = tekton.build(REPO, COMMIT)
    knative.build(REPO, COMMIT)
    standin.controller.build("*", "never")
    for builder in (TektonBuilder(kube, image=IMAGE_REPO, timeout=1, window=1),
                    KnativeBuilder(kube, image=IMAGE_REPO, timeout=1, window=1)):
        with pytest.raises(Exception, match="did not finish"):
            builder.build(REPO, "1" * 40)  # cancelled: patch
    standin.controller.deployment(f"{APP}-canary", "crash")
    router.set_weights(APP, Weights.all_primary())
    workloads.deploy(APP, "baseline", PROD_IMAGE)
    workloads.deploy(APP, "canary", image)
    with pytest.raises(Exception, match="CrashLoopBackOff"):
        workloads.wait_ready(APP, "canary", 10)  # pods: list
    standin.controller.deployment(f"{APP}-canary", "ready")
    workloads.deploy(APP, "canary", f"{IMAGE_REPO}@sha256:{'9' * 64}")  # update
    router.set_weights(APP, Weights(90, 5, 5))
    workloads.promote(APP, image)
    assert sorted(workloads.leftovers(APP)) == [f"{APP}-baseline", f"{APP}-canary"]
    finish(router, workloads)
    standin.seed(users_destination_rule())
    theirs = IstioRouter(kube, destination_rule="goldengoose-traffic")
    theirs.set_weights(APP, Weights.all_primary())  # extends the user's rule: update
    theirs.restore(APP)

    requests = standin.requests
    assert all(r.status != 403 for r in requests)
    used = {(r.call.group, r.call.plural + (f"/{r.call.subresource}" if r.call.subresource else ""),
             r.call.verb) for r in requests}
    assert used == _granted()


def _crd(kind: str) -> Any:
    return next(t for t in (*BUILTINS, *load_crds(default_crd_dir())) if t.kind == kind)


@pytest.mark.needs("crds")
def test_generated_custom_resources_fit_the_crd_schemas() -> None:
    run = taskrun_manifest("gg-0123", repo=REPO, commit=COMMIT, destination=f"{IMAGE_REPO}:{COMMIT}",
                           labels={"a": "b"}, timeout=600, kaniko_image="kaniko:1", git_image=GIT_IMAGE,
                           dockerfile="Dockerfile", context=".", service_account="builder",
                           docker_config_secret="registry-push")
    validate(_crd("TaskRun"), "v1", run, None)
    assert run["spec"]["workspaces"][1]["secret"]["secretName"] == "registry-push"
    build = build_manifest("gg-0123", repo=REPO, commit=COMMIT, destination=f"{IMAGE_REPO}:{COMMIT}",
                           labels={}, timeout=600, kaniko_image="kaniko:1", dockerfile="Dockerfile",
                           context="app", service_account="builder", docker_config_secret="registry-push")
    validate(_crd("Build"), "v1alpha1", build, None)  # the CRD has no schema: ours, hand-written
    rule = destination_rule(APP, f"{APP}-canary", APP, "networking.istio.io/v1",
                            subsets("track", "primary"))
    validate(_crd("DestinationRule"), "v1", rule, None)
    vs = user_virtual_service()
    vs["spec"] = apply_weights(vs["spec"], [1, 2], APP, Weights(80, 10, 10), mirror=True)
    validate(_crd("VirtualService"), "v1", vs, None)
    assert vs["spec"]["http"][2]["mirrors"][1] == {
        "destination": {"host": APP, "subset": "canary", "port": {"number": 8080}}, "percentage": {"value": 10.0}}


def test_derived_deployments_are_valid_deployments() -> None:
    production = production_deployment()
    for track in ("baseline", "canary"):
        manifest = derived_deployment(production, track=track, image=PROD_IMAGE, replicas=1,
                                      container="app")
        kubernetes_validate.validate(manifest, "1.37", strict=True)
        labels = manifest["spec"]["template"]["metadata"]["labels"]
        assert manifest["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert "app.kubernetes.io/instance" not in manifest["metadata"]["labels"]  # not adopted by GitOps


def test_the_example_app_is_ready_for_a_first_release(standin: StandIn, workloads: KubernetesWorkloads,
                                                     router: IstioRouter) -> None:
    """examples/myapp.yaml (what the README's "Try it without a cluster" seeds) has what a
    release needs: the track label in production's selector, a route to split. A release
    runs on it under the adapters' Role and leaves it as it was."""
    docs = _docs(MANIFESTS / "examples" / "myapp.yaml")
    assert [d["kind"] for d in docs] == ["Deployment", "Service", "VirtualService"]
    assert {d["metadata"]["namespace"] for d in docs} == {NS}
    for doc in docs:
        standin.seed(doc)
    standin.controller.settle()
    before = {kind: standin.read(kind, "myapp") for kind in ("Deployment", "VirtualService")}
    image = workloads.production_image("myapp")
    workloads.deploy("myapp", "baseline", image)
    workloads.deploy("myapp", "canary", "registry.example.com/shop/myapp:1.1.0")
    workloads.wait_ready("myapp", "baseline", timeout=5)
    workloads.wait_ready("myapp", "canary", timeout=5)
    router.set_weights("myapp", Weights(primary=90, baseline=5, canary=5))
    assert router.read_weights("myapp") == Weights(primary=90, baseline=5, canary=5)
    finish(router, workloads, "myapp")
    assert workloads.leftovers("myapp") == []
    for kind, was in before.items():
        assert user_view(standin.read(kind, "myapp")) == user_view(was), kind
