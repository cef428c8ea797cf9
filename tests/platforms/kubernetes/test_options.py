"""Every adapter option, reached the way a user sets it (a KubernetesCluster block field or the
release spec's `kubernetes:` section), and its effect on the objects the real API server stores
(the block logs in as the release runner, with rbac.yaml's Role)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes.client as k8s
import pytest
import yaml
from pydantic import SecretStr, ValidationError

from blocks.kubernetes import KubernetesCluster
from canary.config.release import ReleaseSpec
from canary.errors import ConfigError, PlatformError
from canary.platforms.kubernetes import TRACK_LABEL
from canary.platforms.kubernetes.istio import destination_rule_kind, virtual_service_kind
from canary.platforms.kubernetes.manifests import canary_replicas, selector_string
from canary.platforms.kubernetes.policies import RELEASE_POLICY
from canary.values.weights import Weights
from tasks.setup import read_policy_spec
from tests.support.kube import Namespace, install_release_policies
from tests.support.kube_builds import BuildController

from .conftest import APP, COMMIT, IMAGE_REPO, MANIFESTS, REPO, user_view

DIGEST = "sha256:" + "c" * 64
IMAGE = f"{IMAGE_REPO}@sha256:{'b' * 64}"


def _spec(folder: Path, *, steps: tuple[int, ...] = (5, 10), **kubernetes: Any) -> Path:
    """deployments/releases/<app>.yaml as a user writes it, with a `kubernetes:` section."""
    body: dict[str, Any] = {"app": APP, "canary_config": "unused.yaml",
                            "analysis": {"lifetime": "1m", "interval": "30s",
                                         "thresholds": {"pass": 95, "marginal": 75}},
                            "traffic": {"steps": list(steps)}}
    if kubernetes:
        body["kubernetes"] = kubernetes
    path = folder / f"{APP}.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def _cluster(namespace: Namespace, folder: Path, **fields: Any) -> KubernetesCluster:
    endpoint = namespace.cluster.endpoint
    return KubernetesCluster(namespace=namespace.name, host=endpoint.url, token=SecretStr(namespace.token),
                             ca_cert_path=str(endpoint.ca), image_repository="registry.example.com/shop",
                             release_specs=str(folder), rollout_timeout_seconds=10,
                             build_timeout_seconds=10, **fields)


def _offline(folder: Path) -> KubernetesCluster:
    """A block for tests that only build adapters (nothing is sent)."""
    return KubernetesCluster(namespace="shop", host="https://127.0.0.1:1", token=SecretStr("unused"),
                             release_specs=str(folder))


def _release(cluster: KubernetesCluster, weights: Weights) -> None:
    """What the flow's tasks call, in the flow's order, through the block's adapters (no
    spec given: the block reads <release_specs>/<app>.yaml)."""
    router, workloads = cluster.router(APP, None), cluster.workloads(APP, None)
    router.set_weights(APP, Weights.all_primary())
    workloads.deploy(APP, "baseline", workloads.production_image(APP))
    workloads.deploy(APP, "canary", IMAGE)
    workloads.wait_ready(APP, "baseline", 15)
    workloads.wait_ready(APP, "canary", 15)
    router.set_weights(APP, weights)
    assert router.read_weights(APP) == weights


def _clean_up(cluster: KubernetesCluster) -> None:
    cluster.reconcile(APP, None)


# -- labels and selectors ---------------------------------------------------------------------
def test_productions_selector_matches_only_production_pods_through_the_api(
        namespace: Namespace, production: dict[str, Any], tmp_path: Path) -> None:
    cluster = _cluster(namespace, tmp_path)
    _release(cluster, Weights(80, 10, 10))
    namespace.settle()
    ns = namespace.name
    core = k8s.CoreV1Api(namespace.kube.api_client)  # the release runner may list pods
    apps = k8s.AppsV1Api(core.api_client)
    prod = apps.read_namespaced_deployment(APP, ns)
    selected = core.list_namespaced_pod(ns, label_selector=selector_string(
        {"matchLabels": prod.spec.selector.match_labels})).items
    assert len(selected) == 3  # what production's HPA (status.selector) and a PDB like it count
    assert {p.metadata.labels[TRACK_LABEL] for p in selected} == {"primary"}
    everything = core.list_namespaced_pod(ns, label_selector=f"app={APP}").items  # the Service's view
    assert {p.metadata.labels[TRACK_LABEL] for p in everything} == {"primary", "baseline", "canary"}
    for track in ("baseline", "canary"):
        copy = apps.read_namespaced_deployment(f"{APP}-{track}", ns)
        pods = core.list_namespaced_pod(ns, label_selector=",".join(
            f"{k}={v}" for k, v in copy.spec.selector.match_labels.items())).items
        assert pods and {p.metadata.labels[TRACK_LABEL] for p in pods} == {track}
        template = copy.spec.template.metadata.labels
        assert not prod.spec.selector.match_labels.items() <= template.items()
        assert copy.metadata.labels["prefect-canary.dev/app"] == APP
    assert not any(k.startswith("canary.prefect.io") for d in namespace.names("Deployment")
                   for k in (namespace.read("Deployment", d) or {})["metadata"].get("labels", {}))
    _clean_up(cluster)
    assert namespace.names("Deployment") == [APP]


# -- replicas ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("production", "share", "wanted"), [
    (40, 10, 4), (3, 10, 1), (3, 50, 2), (1, 1, 1), (0, 10, 1), (7, 25, 2)])
def test_replicas_default_covers_the_canarys_largest_share(production: int, share: int, wanted: int) -> None:
    assert canary_replicas({"spec": {"replicas": production}}, share) == wanted


def test_a_20_replica_app_at_10_percent_gets_2_plus_2_and_the_spec_can_override(
        namespace: Namespace, tmp_path: Path) -> None:
    from .conftest import production_deployment, user_virtual_service

    big = production_deployment()
    big["spec"]["replicas"] = 20
    namespace.seed(big)
    namespace.seed(user_virtual_service())
    namespace.settle(timeout=30)
    _spec(tmp_path, steps=(5, 10))
    cluster = _cluster(namespace, tmp_path)
    _release(cluster, Weights(90, 5, 5))
    for track in ("baseline", "canary"):
        assert (namespace.read("Deployment", f"{APP}-{track}") or {})["spec"]["replicas"] == 2
    _clean_up(cluster)
    _spec(tmp_path, steps=(5, 10), replicas=3)
    _release(cluster, Weights(90, 5, 5))
    assert (namespace.read("Deployment", f"{APP}-canary") or {})["spec"]["replicas"] == 3
    _clean_up(cluster)


# -- routes -----------------------------------------------------------------------------------
def test_virtual_service_name_and_route_names_from_the_release_spec(
        namespace: Namespace, production: dict[str, Any], tmp_path: Path) -> None:
    from .conftest import user_virtual_service

    other = user_virtual_service()
    other["metadata"]["name"] = "storefront"
    namespace.seed(other)
    before = user_view(namespace.read("VirtualService", "storefront"))
    _spec(tmp_path, virtual_service="storefront", routes=["beta"])
    cluster = _cluster(namespace, tmp_path)
    _release(cluster, Weights(80, 10, 10))
    vs = namespace.read("VirtualService", "storefront")
    assert vs is not None
    beta, default = vs["spec"]["http"][1], vs["spec"]["http"][2]
    assert [d["destination"]["subset"] for d in beta["route"]] == ["primary", "baseline", "canary"]
    assert "subset" not in default["route"][0]["destination"]  # not named: left alone
    assert user_view(namespace.read("VirtualService", APP)) == user_view(production["vs"])  # not ours
    _clean_up(cluster)
    assert user_view(namespace.read("VirtualService", "storefront")) == before


def test_a_route_name_the_virtual_service_lacks_is_named_in_the_error(
        namespace: Namespace, production: dict[str, Any], tmp_path: Path) -> None:
    _spec(tmp_path, routes=["checkout"])
    with pytest.raises(ConfigError, match=r"VirtualService 'goldengoose' has no HTTP route named \['checkout'\]"):
        _cluster(namespace, tmp_path).router(APP, None).set_weights(APP, Weights.all_primary())


def test_mirroring_keeps_live_traffic_on_production_and_mirrors_the_shares(
        namespace: Namespace, production: dict[str, Any], tmp_path: Path) -> None:
    _spec(tmp_path, traffic="mirror")
    cluster = _cluster(namespace, tmp_path)
    _release(cluster, Weights(80, 10, 10))  # stored only if the VirtualService CRD accepts it
    route = (namespace.read("VirtualService", APP) or {})["spec"]["http"][2]
    assert route["route"] == [{"destination": {"host": APP, "subset": "primary", "port": {"number": 8080}},
                               "weight": 100}]
    assert [(m["destination"]["subset"], m["percentage"]["value"]) for m in route["mirrors"]] == [
        ("baseline", 10.0), ("canary", 10.0)]
    cluster.router(APP, None).rollback(APP)
    assert "mirrors" not in (namespace.read("VirtualService", APP) or {})["spec"]["http"][2]
    _clean_up(cluster)
    assert user_view(namespace.read("VirtualService", APP)) == user_view(production["vs"])


@pytest.mark.parametrize("version", ["v1beta1", "v1alpha3"])
def test_an_older_istio_api_version_releases_and_restores_the_same_objects(
        namespace: Namespace, production: dict[str, Any], tmp_path: Path, version: str) -> None:
    """Istio's CRDs serve v1, v1beta1 and v1alpha3 of the same objects: a block set to an
    older one (an Istio before 1.22) splits and restores through it."""
    cluster = _cluster(namespace, tmp_path, istio_api_version=version)
    _release(cluster, Weights(80, 10, 10))
    vs = namespace.kube.get(virtual_service_kind(version), APP)
    assert vs is not None and vs["apiVersion"] == f"networking.istio.io/{version}"
    rule = namespace.kube.get(destination_rule_kind(version), f"{APP}-canary")
    assert rule is not None and [s["name"] for s in rule["spec"]["subsets"]] == ["primary", "baseline", "canary"]
    _clean_up(cluster)
    assert user_view(namespace.read("VirtualService", APP)) == user_view(production["vs"])
    assert namespace.names("DestinationRule") == []


# -- extending a user's DestinationRule -------------------------------------------------------
def test_extending_a_users_destination_rule_removes_only_our_subsets(
        namespace: Namespace, production: dict[str, Any], tmp_path: Path) -> None:
    from .conftest import users_destination_rule

    namespace.seed(users_destination_rule())
    _spec(tmp_path, destination_rule="goldengoose-traffic")
    cluster = _cluster(namespace, tmp_path)
    _release(cluster, Weights(80, 10, 10))
    rule = namespace.read("DestinationRule", "goldengoose-traffic")
    assert rule and [s["name"] for s in rule["spec"]["subsets"]] == ["legacy", "primary", "baseline", "canary"]
    assert namespace.names("DestinationRule") == ["goldengoose-traffic"]  # none of our own

    def users_edit(dr: dict[str, Any]) -> dict[str, Any]:  # the owner changes it mid-release
        dr["spec"]["trafficPolicy"]["connectionPool"] = {"tcp": {"maxConnections": 50}}
        dr["spec"]["subsets"].append({"name": "v2", "labels": {"version": "v2"}})
        return dr

    namespace.admin.update(destination_rule_kind(), "goldengoose-traffic", users_edit)
    _clean_up(cluster)
    after = namespace.read("DestinationRule", "goldengoose-traffic")
    assert after is not None
    assert [s["name"] for s in after["spec"]["subsets"]] == ["legacy", "v2"]
    assert after["spec"]["trafficPolicy"] == {"tls": {"mode": "ISTIO_MUTUAL"},
                                              "connectionPool": {"tcp": {"maxConnections": 50}}}
    assert after["metadata"]["annotations"] == {"owner": "shop-team"}
    _clean_up(cluster)  # idempotent
    assert user_view(namespace.read("DestinationRule", "goldengoose-traffic")) == user_view(after)


def test_a_users_subset_with_one_of_our_names_is_refused(
        namespace: Namespace, production: dict[str, Any], tmp_path: Path) -> None:
    from .conftest import users_destination_rule

    rule = users_destination_rule()
    rule["spec"]["subsets"].append({"name": "canary", "labels": {"version": "v9"}})
    namespace.seed(rule)
    _spec(tmp_path, destination_rule="goldengoose-traffic")
    with pytest.raises(ConfigError, match="already has a subset 'canary'.*rename"):
        _cluster(namespace, tmp_path).router(APP, None).set_weights(APP, Weights.all_primary())
    assert (namespace.read("DestinationRule", "goldengoose-traffic") or {})["spec"] == rule["spec"]


def test_a_missing_destination_rule_to_extend_is_named(
        namespace: Namespace, production: dict[str, Any], tmp_path: Path) -> None:
    _spec(tmp_path, destination_rule="absent-rule")
    with pytest.raises(ConfigError, match="DestinationRule 'absent-rule'"):
        _cluster(namespace, tmp_path).router(APP, None).set_weights(APP, Weights.all_primary())


# -- builds -----------------------------------------------------------------------------------
def test_tekton_taskrun_with_service_account_registry_secret_dockerfile_and_context(
        namespace: Namespace, builds: BuildController, tmp_path: Path) -> None:
    _spec(tmp_path, dockerfile="build/Dockerfile.prod", context="services/api")
    cluster = _cluster(namespace, tmp_path, build_service_account="builder",
                       registry_secret="registry-push", kaniko_image="kaniko:9")
    builds.succeed(DIGEST)
    assert cluster.builder_for(APP, None).build(REPO, COMMIT) == f"registry.example.com/shop/{APP}@{DIGEST}"
    run = builds.seen[0]  # as stored: Tekton's CRD accepted it
    spec = run["spec"]
    assert spec["serviceAccountName"] == "builder"
    assert {"name": "dockerconfig", "secret": {"secretName": "registry-push", "items": [
        {"key": ".dockerconfigjson", "path": "config.json"}]}} in spec["workspaces"]
    declared = next(w for w in spec["taskSpec"]["workspaces"] if w["name"] == "dockerconfig")
    assert declared["readOnly"] is True
    kaniko = spec["taskSpec"]["steps"][1]
    assert kaniko["image"] == "kaniko:9"
    assert kaniko["env"] == [{"name": "DOCKER_CONFIG", "value": "$(workspaces.dockerconfig.path)"}]
    params = {p["name"]: p["value"] for p in spec["params"]}
    assert params["dockerfile"] == "build/Dockerfile.prod" and params["context"] == "services/api"


def test_knative_build_gets_the_same_options(namespace: Namespace, builds: BuildController,
                                            tmp_path: Path) -> None:
    _spec(tmp_path, dockerfile="Dockerfile.prod", context="api")
    cluster = _cluster(namespace, tmp_path, build_system="knative", build_service_account="builder",
                       registry_secret="registry-push", registry_secret_key="config.json")
    builds.succeed(DIGEST)
    assert cluster.builder_for(APP, None).build(REPO, COMMIT) == f"registry.example.com/shop/{APP}@{DIGEST}"
    build = builds.seen[0]  # as stored: our Knative Build CRD accepted it
    assert build["kind"] == "Build" and build["spec"]["serviceAccountName"] == "builder"
    assert build["spec"]["volumes"] == [{"name": "docker-config", "secret": {
        "secretName": "registry-push", "items": [{"key": "config.json", "path": "config.json"}]}}]
    step = build["spec"]["steps"][0]
    assert step["volumeMounts"] == [{"name": "docker-config", "mountPath": "/kaniko/.docker", "readOnly": True}]
    assert "--dockerfile=/workspace/api/Dockerfile.prod" in step["args"]
    assert "--context=/workspace/api" in step["args"]


# -- validation -------------------------------------------------------------------------------
@pytest.mark.parametrize(("fields", "words"), [
    ({"registry_secret": "Registry Push"}, "not a Kubernetes object name"),
    ({"build_service_account": "-builder"}, "not a Kubernetes object name"),
    ({"build_system": "kaniko"}, "'tekton' or 'knative'"),
    ({"track_label": "bad label/x"}, "not a label key"),
    ({"registry_secret_key": "a/b"}, "not a Secret key"),
    ({"istio_api_version": "v2"}, "'v1', 'v1beta1' or 'v1alpha3'"),
])
def test_bad_block_fields_are_refused_naming_the_field(fields: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        KubernetesCluster(**fields)
    message = str(caught.value)
    assert next(iter(fields)) in message and words in message


@pytest.mark.parametrize(("section", "words"), [
    ({"virtual_service": "Store_Front"}, "kubernetes.virtual_service: 'Store_Front' is not a Kubernetes object name"),
    ({"destination_rule": "a..b"}, "kubernetes.destination_rule"),
    ({"routes": ["beta", "beta"]}, "kubernetes.routes"),
    ({"traffic": "shadow"}, "kubernetes.traffic"),
    ({"replicas": 0}, "kubernetes.replicas"),
    ({"dockerfile": "/etc/Dockerfile"}, "kubernetes.dockerfile: '/etc/Dockerfile' must be a relative path"),
    ({"context": "../other"}, "kubernetes.context"),
    ({"container": "App"}, "kubernetes.container"),
    ({"mirror_percent": 10}, "unknown key 'mirror_percent'"),
])
def test_bad_release_spec_options_are_refused_naming_the_key(
        tmp_path: Path, section: dict[str, Any], words: str) -> None:
    path = _spec(tmp_path, **section)
    with pytest.raises(ConfigError) as caught:
        ReleaseSpec.load(path)
    assert str(path) in str(caught.value) and words in str(caught.value)


def test_the_spec_given_wins_over_the_release_specs_folder(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    chosen = _spec(tmp_path / "elsewhere", virtual_service="chosen")
    _spec(tmp_path, virtual_service="folder")
    cluster = _offline(tmp_path)
    assert cluster.router(APP, None).virtual_service == "folder"
    assert cluster.router(APP, ReleaseSpec.load(chosen)).virtual_service == "chosen"
    assert cluster.router("other", None).virtual_service is None  # another app: its own spec (none)


def test_a_build_or_reconcile_without_a_spec_reads_the_apps_release_policy(
        namespace: Namespace, production: dict[str, Any], tmp_path: Path) -> None:
    """What a build without `.canary/` and a reconcile without a run pass the block: the
    spec of the app's ReleasePolicy (read_policy_spec), which wins over the folder's file."""
    _spec(tmp_path, virtual_service="folder")
    cluster = _cluster(namespace, tmp_path)
    assert cluster.router(APP, read_policy_spec.fn(cluster, APP)).virtual_service == "folder"  # none yet
    install_release_policies(namespace.cluster)
    policy = yaml.safe_load((MANIFESTS / "examples" / "releasepolicy.yaml").read_text())
    policy["metadata"] = {"name": APP, "namespace": namespace.name}
    policy["spec"]["release"]["app"] = APP
    policy["spec"]["release"]["kubernetes"]["router"]["virtual_service"] = "from-policy"
    namespace.admin.create(RELEASE_POLICY, policy)
    spec = read_policy_spec.fn(cluster, APP)
    assert spec is not None and cluster.router(APP, spec).virtual_service == "from-policy"


def test_without_a_release_spec_every_default_applies(tmp_path: Path) -> None:
    cluster = _offline(tmp_path / "none")
    router, workloads = cluster.router(APP, None), cluster.workloads(APP, None)
    assert (router.virtual_service, router.routes, router.destination_rule, router.mirror) == (
        None, None, None, False)
    assert (workloads.replicas, workloads.max_share, workloads.container) == (None, 10, None)
    builder = cluster.builder("registry.example.com/shop/x")
    assert (builder.dockerfile, builder.context, builder.service_account, builder.docker_config_secret) == (
        "Dockerfile", ".", None, None)


def test_leftovers_of_a_release_before_the_prefix_change_are_still_cleaned_up(
        namespace: Namespace, production: dict[str, Any], tmp_path: Path) -> None:
    """A run that crashed under the old canary.prefect.io labels: reconcile finds its copy
    and its record of the VirtualService, though it writes only prefect-canary.dev now."""
    from canary.platforms.kubernetes.manifests import derived_deployment
    from canary.platforms.kubernetes.routes import record

    from .conftest import production_deployment

    old = derived_deployment(production_deployment(), track="canary", image=IMAGE, replicas=1,
                             container="app")
    old["metadata"]["labels"] = {"app.kubernetes.io/managed-by": "prefect-canary",
                                 "canary.prefect.io/app": APP}
    namespace.seed(old)

    def split_by_an_old_run(vs: dict[str, Any]) -> dict[str, Any]:
        vs["metadata"]["annotations"] = {**vs["metadata"]["annotations"], "canary.prefect.io/original": record(vs)}
        vs["spec"]["http"][2]["timeout"] = "9s"  # stands for the old run's edit
        return vs

    namespace.admin.update(virtual_service_kind(), APP, split_by_an_old_run)
    found = _cluster(namespace, tmp_path).reconcile(APP, None)
    assert found["removed"] == [f"{APP}-canary"]
    namespace.settle()
    assert namespace.names("Deployment") == [APP]
    assert user_view(namespace.read("VirtualService", APP)) == user_view(production["vs"])


def test_reconcile_never_deletes_a_track_the_traffic_could_not_be_moved_off(
        namespace: Namespace, production: dict[str, Any], tmp_path: Path) -> None:
    """The cleanup order of canary.cleanup on the cluster: with the VirtualService refusing
    writes (the real authorizer: the Role lost `update` on virtualservices, as a too-tight
    edit of rbac.yaml would do), reconcile fails naming every step, and baseline and canary
    keep serving the share the route still gives them (deleting them would turn it into 503s)."""
    cluster = _cluster(namespace, tmp_path)
    _release(cluster, Weights(80, 10, 10))
    granted = _role(namespace)
    tighter = copy.deepcopy(granted)
    for rule in tighter["rules"]:
        if rule["resources"] == ["virtualservices"]:
            rule["verbs"].remove("update")
    _set_role(namespace, tighter, allowed=False)
    with pytest.raises(PlatformError, match="403 Forbidden") as caught:
        cluster.reconcile(APP, None)
    notes = " ".join(getattr(caught.value, "__notes__", []))
    assert "FAILED: all traffic to production (read back)" in notes
    assert "SKIPPED: canary removed: the traffic could not be moved off it" in notes
    assert sorted(namespace.names("Deployment")) == sorted([APP, f"{APP}-baseline", f"{APP}-canary"])
    _set_role(namespace, granted, allowed=True)
    found = cluster.reconcile(APP, None)  # the reconcile automation's next attempt
    assert sorted(found["removed"]) == [f"{APP}-baseline", f"{APP}-canary"]
    assert found["steps"][0] == "all traffic to production (read back)"
    assert cluster.router(APP, None).read_weights(APP) == Weights.all_primary()
    namespace.settle()
    assert namespace.names("Deployment") == [APP]


def _role(namespace: Namespace) -> dict[str, Any]:
    rbac = k8s.RbacAuthorizationV1Api(namespace.admin.api_client)
    return dict(rbac.read_namespaced_role("prefect-canary", namespace.name, _preload_content=False).json())


def _set_role(namespace: Namespace, role: dict[str, Any], *, allowed: bool) -> None:
    """Replace the runner's Role and wait until the authorizer answers as it says."""
    rbac = k8s.RbacAuthorizationV1Api(namespace.admin.api_client)
    authz = k8s.AuthorizationV1Api(namespace.admin.api_client)
    current = _role(namespace)
    rbac.replace_namespaced_role("prefect-canary", namespace.name, {
        **role, "metadata": {**role["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]}})
    review = {"spec": {"user": namespace.runner, "groups": [
        "system:serviceaccounts", f"system:serviceaccounts:{namespace.name}", "system:authenticated"],
        "resourceAttributes": {"namespace": namespace.name, "verb": "update", "group": "networking.istio.io",
                               "resource": "virtualservices", "name": APP}}}
    namespace.wait("the authorizer to see the Role", lambda: authz.create_subject_access_review(
        review).status.allowed is allowed, timeout=10)


@pytest.mark.parametrize("name", ["istio-example.yaml", "gateway-example.yaml"])
def test_the_shipped_kubernetes_release_specs_load_with_their_router(name: str) -> None:
    """The examples docs/kubernetes.md tells users to copy: valid, with their canary config,
    and each names the router its file says."""
    path = Path(__file__).resolve().parents[3] / "deployments" / "releases" / name
    spec = ReleaseSpec.load(path)
    spec.load_canary_config()
    assert spec.kubernetes.router is not None
    assert spec.kubernetes.router.kind == name.removesuffix("-example.yaml").replace("gateway", "gateway-api")
