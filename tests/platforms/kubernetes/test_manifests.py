"""deployments/kubernetes validates (kubernetes-validate, strict); on the real control plane,
the Role grants exactly what the adapters use (the real authorizer refuses the rest, the
audit log shows what was used), the real server refuses unknown fields and schema
violations, and every custom resource the adapters write is accepted by the real CRDs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from canary.errors import BuildError, PlatformError
from canary.platforms.kubernetes import (
    DEPLOYMENT,
    InvalidObjectError,
    IstioRouter,
    KnativeBuilder,
    KubeClient,
    KubernetesWorkloads,
    TektonBuilder,
    policies,
)
from canary.platforms.kubernetes.gateway_api import GatewayApiRouter
from canary.platforms.kubernetes.istio import destination_rule_kind, virtual_service_kind
from canary.platforms.kubernetes.knative import BUILD, build_manifest
from canary.platforms.kubernetes.manifests import derived_deployment
from canary.platforms.kubernetes.policies import RELEASE_POLICY
from canary.platforms.kubernetes.routes import apply_weights, destination_rule, subsets
from canary.platforms.kubernetes.tekton import GIT_IMAGE, TASKRUN, taskrun_manifest
from canary.values.outcome import Outcome
from canary.values.weights import Weights
from tests.support.kube import Namespace, install_release_policies
from tests.support.kube_builds import BuildController

from .conftest import (
    APP,
    COMMIT,
    IMAGE_REPO,
    MANIFESTS,
    PROD_IMAGE,
    REPO,
    Request,
    finish,
    production_deployment,
    role_rules,
    runner_requests,
    user_view,
    user_virtual_service,
    users_destination_rule,
)
from .httproutes import seed_gateway

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


# -- the Role, on the real authorizer ---------------------------------------------------------
def _granted() -> set[tuple[str, str, str]]:
    return {(g, r, v) for rule in role_rules() for g in rule["apiGroups"]
            for r in rule["resources"] for v in rule["verbs"]}


def _used(requests: list[Request]) -> set[tuple[str, str, str]]:
    return {(r.group, r.resource, r.verb) for r in requests}


def test_the_role_grants_exactly_what_the_adapters_use(
        namespace: Namespace, production: Any, builds: BuildController, kube: KubeClient) -> None:
    """Least privilege, both ways, read from the API server's audit log: every adapter path
    (promotion, roll back, a crash-looping canary, failed and timed-out builds on Tekton and
    Knative, a user's DestinationRule, the Gateway API router, the app's ReleasePolicy) passes under the Role with no
    403, and every (apiGroup, resource, verb) the Role grants was used by at least one of them."""
    since = time.time()
    tekton = TektonBuilder(kube, image=IMAGE_REPO, timeout=5, window=1)
    knative = KnativeBuilder(kube, image=IMAGE_REPO, timeout=5, window=1)
    workloads = KubernetesWorkloads(kube, container="app", pod_check_interval=0.2, rollout_timeout=30)
    router = IstioRouter(kube)
    builds.succeed("sha256:" + "3" * 64)
    image = tekton.build(REPO, COMMIT)
    knative.build(REPO, COMMIT)
    builds.fail(message="exit 1")
    with pytest.raises(BuildError, match="failed"):
        tekton.build(REPO, "2" * 40)
    builds.never()
    for builder in (TektonBuilder(kube, image=IMAGE_REPO, timeout=1, window=1),
                    KnativeBuilder(kube, image=IMAGE_REPO, timeout=1, window=1)):
        with pytest.raises(BuildError, match="did not finish"):
            builder.build(REPO, "1" * 40)  # cancelled: patch
    router.set_weights(APP, Weights.all_primary())
    workloads.deploy(APP, "baseline", PROD_IMAGE)
    workloads.deploy(APP, "canary", f"{IMAGE_REPO}:2.0-crashloop")
    with pytest.raises(PlatformError, match="CrashLoopBackOff"):
        workloads.wait_ready(APP, "canary", 10)  # pods: list
    workloads.deploy(APP, "canary", image)  # fixed: update
    workloads.wait_ready(APP, "canary", 15)
    router.set_weights(APP, Weights(90, 5, 5))
    workloads.promote(APP, image)
    assert sorted(workloads.leftovers(APP)) == [f"{APP}-baseline", f"{APP}-canary"]
    finish(router, workloads)
    namespace.seed(users_destination_rule())
    theirs = IstioRouter(kube, destination_rule="goldengoose-traffic")
    theirs.set_weights(APP, Weights.all_primary())  # extends the user's rule: update
    theirs.restore(APP)
    seed_gateway(namespace)  # the Gateway API router: the user's HTTPRoute, per-track Services
    by_service = KubernetesWorkloads(kube, container="app", pod_check_interval=0.2,
                                     rollout_timeout=30, service=APP)
    gateway = GatewayApiRouter(kube)
    gateway.set_weights(APP, Weights.all_primary())
    by_service.deploy(APP, "canary", image)
    gateway.set_weights(APP, Weights(90, 0, 10))
    finish(gateway, by_service)  # type: ignore[arg-type]  # the TrafficRouter port
    install_release_policies(namespace.cluster)  # the app's ReleasePolicy: read, status written
    policy = yaml.safe_load((MANIFESTS / "examples" / "releasepolicy.yaml").read_text())
    policy["spec"]["release"]["app"] = APP
    namespace.admin.create(RELEASE_POLICY, {**policy, "metadata": {"name": APP, "namespace": namespace.name}})
    assert policies.release_config(kube, "absent") is None  # get: 404 is "no policy"
    found = policies.release_config(kube, APP)
    assert found is not None and found[0].app == APP
    policies.write_status(kube, APP, policies.PolicyStatus(Outcome.PROMOTED, COMMIT, "every metric Pass"))

    # a watch is logged when it ends (the server notices the closed connection): wait for them
    namespace.wait("every granted verb in the audit log",
                   lambda: _granted() <= _used(runner_requests(namespace, since)), timeout=10)
    requests = runner_requests(namespace, since)
    assert [r for r in requests if r.code == 403] == []
    assert _used(requests) == _granted()


def _forbidden(call: Any) -> str:
    """The real authorizer's answer to ``call``: 'forbidden', or what happened instead."""
    from kubernetes.client.exceptions import ApiException

    try:
        call()
    except ApiException as error:
        return "forbidden" if error.status == 403 else f"{error.status}"
    except PlatformError as error:
        return "forbidden" if "403 Forbidden" in str(error) else str(error)
    return "allowed"


def test_the_runners_token_is_refused_everything_the_role_does_not_grant(
        namespace: Namespace, production: Any) -> None:
    """A ServiceAccount token from the TokenRequest API, bound to rbac.yaml's Role only: the
    real authorizer answers 403 to every request outside the Role (checked by real calls,
    then in the audit log), and allows the ones inside it."""
    import kubernetes.client as k8s

    ns, kube = namespace.name, namespace.kube
    api = namespace.cluster.api_client(namespace.token)
    core, apps, rbac = k8s.CoreV1Api(api), k8s.AppsV1Api(api), k8s.RbacAuthorizationV1Api(api)
    custom = k8s.CustomObjectsApi(api)
    vs, dr = virtual_service_kind(), destination_rule_kind()
    elsewhere = KubeClient(api, "default")
    other_vs = {**user_virtual_service(), "metadata": {"name": "other"}}
    pod = namespace.names("Pod")[0]
    refused = {
        "delete the user's VirtualService": lambda: kube.delete(vs, APP),
        "create a VirtualService": lambda: kube.create(vs, other_vs),
        "patch the user's VirtualService": lambda: kube.patch(vs, APP, {"metadata": {"labels": {"x": "y"}}}),
        "list VirtualServices": lambda: kube.list(vs),
        "list DestinationRules": lambda: kube.list(dr),
        "patch a DestinationRule": lambda: kube.patch(dr, "any", {"spec": {"host": "x"}}),
        "read a Secret": lambda: core.read_namespaced_secret("any", ns),
        "list Secrets": lambda: core.list_namespaced_secret(ns),
        "create a Secret": lambda: core.create_namespaced_secret(ns, {"metadata": {"name": "s"}}),
        "read a Pod": lambda: core.read_namespaced_pod(pod, ns),
        "patch a Pod": lambda: core.patch_namespaced_pod(pod, ns, {"metadata": {"labels": {"x": "y"}}}),
        "delete a Pod": lambda: core.delete_namespaced_pod(pod, ns),
        "create a Pod": lambda: core.create_namespaced_pod(ns, {"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "c", "image": "busybox"}]}}),
        "read a Pod's logs": lambda: core.read_namespaced_pod_log(pod, ns),
        "delete every Deployment": lambda: apps.delete_collection_namespaced_deployment(ns),
        "scale production": lambda: apps.patch_namespaced_deployment_scale(APP, ns, {"spec": {"replicas": 0}}),
        "write a Deployment's status": lambda: apps.patch_namespaced_deployment_status(
            APP, ns, {"status": {"replicas": 0}}),
        "list TaskRuns": lambda: kube.list(TASKRUN),
        "update a TaskRun": lambda: custom.replace_namespaced_custom_object(
            "tekton.dev", "v1", ns, "taskruns", "any", {"metadata": {"name": "any"}}),
        "create a PipelineRun": lambda: custom.create_namespaced_custom_object(
            "tekton.dev", "v1", ns, "pipelineruns", {"metadata": {"name": "p"}}),
        "list Builds": lambda: kube.list(BUILD),
        "list HTTPRoutes": lambda: custom.list_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", ns, "httproutes"),
        "edit its own Role": lambda: rbac.patch_namespaced_role(
            "prefect-canary", ns, {"rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}),
        "bind itself another Role": lambda: rbac.create_namespaced_role_binding(ns, {
            "metadata": {"name": "more"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                                      "kind": "ClusterRole", "name": "admin"},
            "subjects": [{"kind": "ServiceAccount", "name": "prefect-canary", "namespace": ns}]}),
        "mint itself a token": lambda: core.create_namespaced_service_account_token(
            "prefect-canary", ns, {"spec": {}}),
        "read Deployments in another namespace": lambda: elsewhere.list(DEPLOYMENT),
        "create a Deployment in another namespace": lambda: elsewhere.create(
            DEPLOYMENT, production_deployment()),
        "read a VirtualService in another namespace": lambda: elsewhere.get(vs, APP),
        "list Deployments in every namespace": lambda: apps.list_deployment_for_all_namespaces(),
        "list namespaces": lambda: core.list_namespace(),
    }
    since = time.time()
    answers = {what: _forbidden(call) for what, call in refused.items()}
    assert answers == dict.fromkeys(refused, "forbidden")
    assert [r.code for r in runner_requests(namespace, since)] == [403] * len(refused)
    # and inside the Role, the same token works
    assert kube.get(vs, APP) is not None and kube.get(DEPLOYMENT, APP) is not None
    assert len(kube.list(DEPLOYMENT)) == 1 and len(core.list_namespaced_pod(ns).items) == 3


# -- what the real server refuses -------------------------------------------------------------
def test_unknown_fields_are_refused_naming_them_not_pruned(
        namespace: Namespace, production: dict[str, Any]) -> None:
    """KubeClient asks for fieldValidation=Strict on every write: a misspelled field is an
    error naming it (the default would drop it with a warning and carry on)."""
    vs = virtual_service_kind()
    kube, admin = namespace.kube, namespace.admin
    typo = user_virtual_service()
    typo["metadata"]["name"] = "typo"
    typo["spec"]["http"][2]["route"][0]["wieght"] = 100
    refusals = []
    with pytest.raises(InvalidObjectError) as caught:
        admin.create(vs, typo)
    refusals.append(caught.value)
    current = kube.get(vs, APP)
    assert current is not None
    current["spec"]["http"][2]["route"][0]["wieght"] = 5
    with pytest.raises(InvalidObjectError) as caught:
        kube.replace(vs, current)  # what KubeClient.update sends
    refusals.append(caught.value)
    with pytest.raises(InvalidObjectError) as caught:
        admin.patch(vs, APP, {"spec": {"http": [{"name": "default", "route": [
            {"destination": {"host": APP}, "wieght": 100}]}]}})  # merge patch of a custom resource
    refusals.append(caught.value)
    for error in refusals:
        assert 'unknown field "spec.http[' in str(error) and '].route[0].wieght"' in str(error)
        assert "VirtualService" in str(error) and not error.transient

    deployment = production_deployment()
    deployment["metadata"]["name"] = "typo"
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(InvalidObjectError, match=r'unknown field "spec\.template\.spec\.containers\[0\]'
                                                 r'\.imagePullPolcy"'):
        kube.create(DEPLOYMENT, deployment)
    with pytest.raises(InvalidObjectError, match=r'unknown field "spec\.template\.spec\.containers\[0\]'
                                                 r'\.imagePullPolcy"'):  # strategic merge patch
        kube.patch(DEPLOYMENT, APP, {"spec": {"template": {"spec": {"containers": [
            {"name": "app", "imagePullPolcy": "Always"}]}}}})
    assert namespace.names("Deployment") == [APP] and namespace.names("VirtualService") == [APP]
    assert user_view(namespace.read("VirtualService", APP)) == user_view(production["vs"])
    assert (namespace.read("Deployment", APP) or {})["metadata"]["generation"] == 1


def test_a_route_weight_of_the_wrong_type_is_refused_by_istios_schema(
        namespace: Namespace, production: dict[str, Any]) -> None:
    vs = virtual_service_kind()

    def ten(current: dict[str, Any]) -> dict[str, Any]:
        current["spec"]["http"][2]["route"][0]["weight"] = "ten"
        return current

    with pytest.raises(InvalidObjectError) as caught:
        namespace.kube.update(vs, APP, ten)
    assert "422 Invalid" in str(caught.value) and "must be of type integer" in str(caught.value)
    assert caught.value.causes[0]["field"] == "spec.http[2].route[0].weight"
    assert user_view(namespace.read("VirtualService", APP)) == user_view(production["vs"])


def test_generated_custom_resources_are_accepted_by_the_real_crds(namespace: Namespace) -> None:
    """Every option on: created with fieldValidation=Strict, so a field the CRD does not
    know (or a wrong type) would be refused; and the CRDs do refuse a misspelling."""
    admin = namespace.admin
    run = taskrun_manifest("gg-0123", repo=REPO, commit=COMMIT, destination=f"{IMAGE_REPO}:{COMMIT}",
                           labels={"a": "b"}, timeout=600, kaniko_image="kaniko:1", git_image=GIT_IMAGE,
                           dockerfile="Dockerfile", context=".", service_account="builder",
                           docker_config_secret="registry-push")
    stored = admin.create(TASKRUN, run)
    assert stored["spec"]["workspaces"][1]["secret"]["secretName"] == "registry-push"
    assert stored["spec"]["taskSpec"] == run["spec"]["taskSpec"]
    build = build_manifest("gg-0123", repo=REPO, commit=COMMIT, destination=f"{IMAGE_REPO}:{COMMIT}",
                           labels={}, timeout=600, kaniko_image="kaniko:1", dockerfile="Dockerfile",
                           context="app", service_account="builder", docker_config_secret="registry-push")
    assert admin.create(BUILD, build)["spec"] == build["spec"]
    rule = destination_rule(APP, f"{APP}-canary", APP, "networking.istio.io/v1",
                            subsets("track", "primary"))
    assert admin.create(destination_rule_kind(), rule)["spec"] == rule["spec"]
    vs = user_virtual_service()
    vs["spec"] = apply_weights(vs["spec"], [1, 2], APP, Weights(80, 10, 10), mirror=True)
    stored = admin.create(virtual_service_kind(), vs)
    assert stored["spec"]["http"][2]["mirrors"][1] == {
        "destination": {"host": APP, "subset": "canary", "port": {"number": 8080}}, "percentage": {"value": 10}}

    # Tekton's schema leaves taskSpec open (its webhook checks that; none runs here), but the
    # TaskRun's own fields are checked: v1beta1's serviceAccount is not v1's serviceAccountName
    run["metadata"]["name"] = "typo"
    run["spec"]["serviceAccount"] = run["spec"].pop("serviceAccountName")
    with pytest.raises(InvalidObjectError, match=r'unknown field "spec\.serviceAccount"'):
        admin.create(TASKRUN, run)
    build["metadata"]["name"] = "typo"
    build["spec"]["source"]["git"]["revison"] = build["spec"]["source"]["git"].pop("revision")
    with pytest.raises(InvalidObjectError, match="revison"):
        admin.create(BUILD, build)


def test_derived_deployments_are_valid_deployments() -> None:
    production = production_deployment()
    for track in ("baseline", "canary"):
        manifest = derived_deployment(production, track=track, image=PROD_IMAGE, replicas=1,
                                      container="app")
        kubernetes_validate.validate(manifest, "1.37", strict=True)
        labels = manifest["spec"]["template"]["metadata"]["labels"]
        assert manifest["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert "app.kubernetes.io/instance" not in manifest["metadata"]["labels"]  # not adopted by GitOps


def test_the_example_app_is_ready_for_a_first_release(
        namespace: Namespace, workloads: KubernetesWorkloads, router: IstioRouter) -> None:
    """examples/myapp.yaml (what docs/kubernetes.md "Try it without a cluster" applies) has what a
    release needs: the track label in production's selector, a route to split. Applied with
    kubectl as docs/kubernetes.md says, a release runs on it under the adapters' Role and leaves it
    as it was."""
    docs = _docs(MANIFESTS / "examples" / "myapp.yaml")
    assert [d["kind"] for d in docs] == ["Deployment", "Service", "VirtualService"]
    assert {d["metadata"]["namespace"] for d in docs} == {"shop"}
    for doc in docs:
        doc["metadata"]["namespace"] = namespace.name
    namespace.cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))
    namespace.settle()
    before = {kind: namespace.read(kind, "myapp") for kind in ("Deployment", "VirtualService")}
    image = workloads.production_image("myapp")
    workloads.deploy("myapp", "baseline", image)
    workloads.deploy("myapp", "canary", "registry.example.com/shop/myapp:1.1.0")
    workloads.wait_ready("myapp", "baseline", timeout=15)
    workloads.wait_ready("myapp", "canary", timeout=15)
    router.set_weights("myapp", Weights(primary=90, baseline=5, canary=5))
    assert router.read_weights("myapp") == Weights(primary=90, baseline=5, canary=5)
    finish(router, workloads, "myapp")
    assert workloads.leftovers("myapp") == []
    for kind, was in before.items():
        assert user_view(namespace.read(kind, "myapp")) == user_view(was), kind
