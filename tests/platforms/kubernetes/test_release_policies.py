"""The ReleasePolicy CRD on the real API server (tests/support/kube.py): it refuses what the
strict YAML refuses (both ways, case by case), lists policies with their columns, and the
example Roles hold under the real authorizer: a team edits its own policies only, the
release runner reads them and writes their status, never their spec."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes.client as k8s
import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from canary.config.policy import GROUP, PLURAL, VERSION, read_policy
from canary.errors import ConfigError
from canary.platforms.kubernetes import KubeClient
from canary.platforms.kubernetes.policies import (
    RELEASE_POLICY,
    PolicyStatus,
    release_config,
    write_status,
)
from canary.values.outcome import Outcome
from tests.platforms.kubernetes.policy_cases import ACCEPTED_BY_THE_API, REFUSED, VALID
from tests.support.kube import (
    Cluster,
    Namespace,
    delete_namespace,
    install_release_policies,
    make_namespace,
)

MANIFESTS = Path(__file__).resolve().parents[3] / "deployments" / "kubernetes"
EXAMPLE = MANIFESTS / "examples" / "releasepolicy.yaml"


@pytest.fixture(scope="module")
def policies_crd(control_plane: Cluster) -> Cluster:
    """The shipped CRD installed."""
    return install_release_policies(control_plane)


def example(namespace: str) -> dict[str, Any]:
    doc: dict[str, Any] = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))
    doc["metadata"]["namespace"] = namespace
    return doc


def create(api: k8s.ApiClient, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    """Create as `kubectl apply` does: strict field validation (unknown fields are errors)."""
    found = k8s.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body, field_validation="Strict")
    return dict(found)


def refusal(api: k8s.ApiClient, namespace: str, body: dict[str, Any]) -> str | None:
    """The API server's refusal (None: it accepted the object, which is then deleted)."""
    try:
        create(api, namespace, body)
    except ApiException as error:
        assert error.status in (400, 422), error.body  # refused as invalid, not for any other reason
        return str(error.body)
    k8s.CustomObjectsApi(api).delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                                               body["metadata"]["name"])
    return None


def loader_refusal(body: dict[str, Any]) -> str | None:
    try:
        read_policy(body).canary_config()
    except ConfigError as error:
        return str(error)
    return None


def mutated(namespace: str, change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    body = example(namespace)
    change(body)
    return body


def test_a_valid_policy_is_accepted_and_reads_back_as_the_same_models(
        policies_crd: Cluster, namespace: Namespace) -> None:
    body = example(namespace.name)
    stored = create(namespace.admin.api_client, namespace.name, body)
    assert read_policy(stored).spec == read_policy(body).spec
    assert read_policy(stored).canary_config() == read_policy(body).canary_config()


def test_valid_variants_pass_both_the_api_server_and_the_loader(policies_crd: Cluster, namespace: Namespace) -> None:
    for name, change in VALID:
        body = mutated(namespace.name, change)
        assert loader_refusal(body) is None, name
        assert refusal(namespace.admin.api_client, namespace.name, body) is None, name


def test_every_spec_the_yaml_refuses_the_api_server_refuses(policies_crd: Cluster, namespace: Namespace) -> None:
    wrong = []
    for name, change, words in REFUSED:
        body = mutated(namespace.name, change)
        by_loader = loader_refusal(body)
        by_api = refusal(namespace.admin.api_client, namespace.name, body)
        if by_loader is None or words not in by_loader or by_api is None:
            wrong.append(f"{name}: loader {by_loader!r}, API {by_api!r}")
    assert not wrong, "\n".join(wrong)


def test_what_the_schema_cannot_say_passes_the_api_and_the_loader_refuses(
        policies_crd: Cluster, namespace: Namespace) -> None:
    for name, change, words in ACCEPTED_BY_THE_API:
        body = mutated(namespace.name, change)
        assert refusal(namespace.admin.api_client, namespace.name, body) is None, name
        assert words in (loader_refusal(body) or ""), name


# -- RBAC ---------------------------------------------------------------------------------------
def _docs(path: Path, namespace: str, subject: dict[str, str]) -> Iterator[dict[str, Any]]:
    for doc in yaml.safe_load_all(path.read_text()):
        if doc:
            doc["metadata"]["namespace"] = namespace
            if doc["kind"] == "RoleBinding":
                doc["subjects"] = [subject]
            yield doc


def bind(admin: k8s.ApiClient, path: Path, namespace: str, account: str) -> None:
    """The Role and RoleBinding of `path` in `namespace`, bound to ServiceAccount `account`."""
    rbac = k8s.RbacAuthorizationV1Api(admin)
    subject = {"kind": "ServiceAccount", "name": account, "namespace": namespace}
    for doc in _docs(path, namespace, subject):
        create_rbac = rbac.create_namespaced_role if doc["kind"] == "Role" else rbac.create_namespaced_role_binding
        create_rbac(namespace, doc)


def team_token(admin: k8s.ApiClient, namespace: str, account: str) -> str:
    core = k8s.CoreV1Api(admin)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": account}})
    bind(admin, MANIFESTS / "examples" / "releasepolicy-team.yaml", namespace, account)
    return str(core.create_namespaced_service_account_token(
        account, namespace, {"spec": {"expirationSeconds": 3600}}).status.token)


def status_code(call: Callable[[], object]) -> int:
    try:
        call()
    except ApiException as error:
        return int(error.status)
    return 200


@pytest.fixture
def other_team(policies_crd: Cluster) -> Iterator[Namespace]:
    namespace = make_namespace(policies_crd, "other-team")
    yield namespace
    delete_namespace(namespace)


def test_a_team_edits_its_own_policy_and_gets_403_in_another_teams_namespace(
        namespace: Namespace, other_team: Namespace) -> None:
    admin = namespace.admin.api_client
    token = team_token(admin, namespace.name, "shop-team")
    team_token(admin, other_team.name, "other-team")
    team = namespace.cluster.api_client(token)
    objects = k8s.CustomObjectsApi(team)
    mine = create(team, namespace.name, example(namespace.name))
    patched = objects.patch_namespaced_custom_object(GROUP, VERSION, namespace.name, PLURAL, "myapp",
                                                     {"spec": {"release": {"traffic": {"steps": [5, 20]}}}})
    assert patched["spec"]["release"]["traffic"]["steps"] == [5, 20] and mine["metadata"]["name"] == "myapp"
    codes = {
        "create in another team's namespace": status_code(lambda: create(team, other_team.name, example(other_team.name))),
        "list in another team's namespace": status_code(lambda: objects.list_namespaced_custom_object(
            GROUP, VERSION, other_team.name, PLURAL)),
        "its own policy's status": status_code(lambda: objects.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace.name, PLURAL, "myapp", {"status": {"outcome": "promoted"}})),
        "its app's Deployments": status_code(lambda: k8s.AppsV1Api(team).list_namespaced_deployment(namespace.name)),
    }
    assert codes == dict.fromkeys(codes, 403)


def test_the_runner_reads_policies_and_writes_their_status_but_never_their_spec(
        policies_crd: Cluster, namespace: Namespace) -> None:
    create(namespace.admin.api_client, namespace.name, example(namespace.name))
    runner: KubeClient = namespace.kube
    found = release_config(runner, "myapp")
    assert found is not None and found[0].app == "myapp" and found[1].sequential
    assert release_config(runner, "absent") is None
    stored = write_status(runner, "myapp", PolicyStatus(Outcome.PROMOTED, "0123456789ab", "every metric Pass",
                                                        "https://prefect.example/artifacts/1"))
    assert stored["status"]["outcome"] == "promoted" and stored["spec"]["release"]["app"] == "myapp"
    objects = k8s.CustomObjectsApi(runner.api_client)
    spec_change = {"spec": {"release": {"traffic": {"steps": [50]}}}}
    assert status_code(lambda: objects.patch_namespaced_custom_object(
        GROUP, VERSION, namespace.name, PLURAL, "myapp", spec_change)) == 403
    assert status_code(lambda: objects.delete_namespaced_custom_object(
        GROUP, VERSION, namespace.name, PLURAL, "myapp")) == 403
    assert status_code(lambda: create(runner.api_client, namespace.name, {**example(namespace.name),
                                      "metadata": {"name": "sneaky"}})) == 403  # fmt: skip
    # a status write through the status subresource cannot change the spec either
    write_status(runner, "myapp", PolicyStatus(Outcome.ROLLED_BACK, "fedcba987654", "latency High",
                                               judge="sequential-v1"))
    after = namespace.admin.get(RELEASE_POLICY, "myapp")
    assert after is not None and after["spec"]["release"]["traffic"]["steps"] == [10, 25, 50]
    listing = namespace.cluster.kubectl("get", "releasepolicies", "-n", namespace.name)
    header, row = listing.splitlines()[:2]
    assert header.split() == ["NAME", "APP", "JUDGE", "LIFETIME", "OUTCOME", "AGE"]
    assert row.split()[:5] == ["myapp", "myapp", "sequential-v1", "30m", "rolled-back"]
