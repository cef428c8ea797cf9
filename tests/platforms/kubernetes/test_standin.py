"""The stand-in keeps the API server's promises that the adapters rely on (so its passes mean
something): checked through the official client, over HTTP, with no adapter in between."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import kubernetes.client as k8s
import pytest
from kubernetes import watch

from canary.platforms.kubernetes import TRACK_LABEL, new_api_client
from tests.support.k8s_standin import StandIn

from .conftest import TOKEN, production_deployment, user_virtual_service

NS = "shop"
VS = ("networking.istio.io", "v1", NS, "virtualservices")


@pytest.fixture
def api() -> Iterator[StandIn]:
    with StandIn(namespace=NS, token=TOKEN) as standin:
        yield standin


@pytest.fixture
def client(api: StandIn) -> k8s.ApiClient:
    return new_api_client(host=api.url, token=TOKEN)


def _status(error: k8s.ApiException) -> dict[str, Any]:
    return json.loads(error.body)


def test_create_answers_201_with_server_fields_and_duplicates_409_as_status(client: k8s.ApiClient) -> None:
    apps = k8s.AppsV1Api(client)
    response = apps.create_namespaced_deployment(NS, production_deployment(), _preload_content=False)
    created = json.loads(response.data)
    assert response.status == 201
    assert {"uid", "resourceVersion", "creationTimestamp", "generation"} <= set(created["metadata"])
    assert created["spec"]["strategy"]["type"] == "RollingUpdate"  # server-side defaulting
    with pytest.raises(k8s.ApiException) as caught:
        apps.create_namespaced_deployment(NS, production_deployment())
    assert caught.value.status == 409 and _status(caught.value)["reason"] == "AlreadyExists"
    with pytest.raises(k8s.ApiException) as missing:
        apps.read_namespaced_deployment("nope", NS)
    assert missing.value.status == 404 and _status(missing.value)["kind"] == "Status"


def test_stale_resource_version_is_a_409_conflict(client: k8s.ApiClient) -> None:
    co = k8s.CustomObjectsApi(client)
    first = co.create_namespaced_custom_object(*VS, user_virtual_service())
    same = co.replace_namespaced_custom_object(*VS, "goldengoose", first)  # a no-op write
    assert same["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    changed = {**first, "metadata": {**first["metadata"], "labels": {"team": "other"}}}
    co.replace_namespaced_custom_object(*VS, "goldengoose", changed)  # bumps resourceVersion
    with pytest.raises(k8s.ApiException) as caught:
        co.replace_namespaced_custom_object(*VS, "goldengoose", first)
    assert caught.value.status == 409 and _status(caught.value)["reason"] == "Conflict"
    del first["metadata"]["resourceVersion"]
    with pytest.raises(k8s.ApiException) as unguarded:  # custom resources need one on PUT
        co.replace_namespaced_custom_object(*VS, "goldengoose", first)
    assert unguarded.value.status == 422


def test_strategic_merge_merges_containers_by_name_but_merge_patch_replaces_the_list(
        client: k8s.ApiClient) -> None:
    apps = k8s.AppsV1Api(client)
    apps.create_namespaced_deployment(NS, production_deployment())
    patched = apps.patch_namespaced_deployment("goldengoose", NS, {"spec": {"template": {"spec": {
        "containers": [{"name": "app", "image": "registry.example.com/new:2"}]}}}})
    assert [c.name for c in patched.spec.template.spec.containers] == ["app", "sidecar"]
    assert patched.metadata.generation == 2
    replaced = apps.patch_namespaced_deployment(
        "goldengoose", NS, {"spec": {"template": {"spec": {"containers": [
            {"name": "only", "image": "registry.example.com/only:1"}]}}}},
        _content_type="application/merge-patch+json")
    assert [c.name for c in replaced.spec.template.spec.containers] == ["only"]


def test_custom_resources_take_merge_and_json_patch_but_not_strategic_merge(
        api: StandIn, client: k8s.ApiClient) -> None:
    co = k8s.CustomObjectsApi(client)
    co.create_namespaced_custom_object(*VS, user_virtual_service())
    merged = co.patch_namespaced_custom_object(*VS, "goldengoose", {"metadata": {"labels": {"x": "1"}}})
    assert merged["metadata"]["labels"] == {"team": "shop", "x": "1"}
    patched = co.patch_namespaced_custom_object(
        *VS, "goldengoose", [{"op": "test", "path": "/spec/http/0/name", "value": "admin"},
                             {"op": "add", "path": "/spec/http/0/timeout", "value": "3s"}],
        _content_type="application/json-patch+json")
    assert patched["spec"]["http"][0]["timeout"] == "3s"
    with pytest.raises(k8s.ApiException) as failed_test:
        co.patch_namespaced_custom_object(*VS, "goldengoose", [
            {"op": "test", "path": "/spec/http/0/name", "value": "other"}],
            _content_type="application/json-patch+json")
    assert failed_test.value.status == 422
    with pytest.raises(k8s.ApiException) as smp:
        co.patch_namespaced_custom_object(*VS, "goldengoose", {"spec": {}},
                                          _content_type="application/strategic-merge-patch+json")
    assert smp.value.status == 415
    # the client sends a list body as merge patch unless told otherwise: a whole-object replace
    with pytest.raises(k8s.ApiException) as listed:
        co.patch_namespaced_custom_object(*VS, "goldengoose", [{"op": "remove", "path": "/spec"}])
    assert listed.value.status == 400


def test_invalid_custom_resources_are_422_with_the_field(client: k8s.ApiClient) -> None:
    co = k8s.CustomObjectsApi(client)
    bad = user_virtual_service()
    bad["spec"]["http"][2]["route"][0]["weight"] = "ten"
    with pytest.raises(k8s.ApiException) as caught:
        co.create_namespaced_custom_object(*VS, bad)
    status = _status(caught.value)
    assert caught.value.status == 422 and status["reason"] == "Invalid"
    assert status["details"]["causes"][0]["field"] == "spec.http[2].route[0].weight"
    typo = user_virtual_service()
    typo["spec"]["http"][2]["route"][0]["wieght"] = 10
    with pytest.raises(k8s.ApiException) as strict:
        co.create_namespaced_custom_object(*VS, typo, field_validation="Strict")
    assert strict.value.status == 400 and "wieght" in _status(strict.value)["message"]


def test_status_subresource_is_separate_from_the_object(api: StandIn, client: k8s.ApiClient) -> None:
    apps = k8s.AppsV1Api(client)
    apps.create_namespaced_deployment(NS, production_deployment())
    api.controller.settle()
    current = json.loads(apps.read_namespaced_deployment("goldengoose", NS, _preload_content=False).data)
    forged = {**current, "status": {"observedGeneration": 99}}
    written = json.loads(apps.replace_namespaced_deployment("goldengoose", NS, forged,
                                                            _preload_content=False).data)
    assert written["status"] == current["status"]  # status ignored on the main resource
    assert written["metadata"]["resourceVersion"] == current["metadata"]["resourceVersion"]  # no-op


def test_label_selectors_and_watch_with_timeout(api: StandIn, client: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(client)
    apps = k8s.AppsV1Api(client)
    apps.create_namespaced_deployment(NS, production_deployment())
    api.controller.settle()
    pods = core.list_namespaced_pod(NS, label_selector=f"app=goldengoose,{TRACK_LABEL} in (primary,canary),!gone")
    assert len(pods.items) == 3
    assert core.list_namespaced_pod(NS, label_selector=f"{TRACK_LABEL} notin (primary)").items == []
    with pytest.raises(k8s.ApiException) as bad:
        core.list_namespaced_pod(NS, label_selector="track in primary")
    assert bad.value.status == 400
    start = apps.read_namespaced_deployment("goldengoose", NS).metadata.resource_version
    apps.patch_namespaced_deployment("goldengoose", NS, {"spec": {"replicas": 2}})
    events = [(e["type"], e["raw_object"]["spec"]["replicas"]) for e in watch.Watch().stream(
        apps.list_namespaced_deployment, NS, field_selector="metadata.name=goldengoose",
        resource_version=start, timeout_seconds=1)]
    assert events[0] == ("MODIFIED", 2) and len(events) >= 2  # then the controller's status write


def test_rbac_rules_answer_403(client: k8s.ApiClient) -> None:
    with StandIn(namespace=NS, token=TOKEN, rbac=[
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}]) as limited:
        api = k8s.AppsV1Api(new_api_client(host=limited.url, token=TOKEN))
        with pytest.raises(k8s.ApiException) as caught:
            api.create_namespaced_deployment(NS, production_deployment())
        assert caught.value.status == 403
        with pytest.raises(k8s.ApiException) as unauthenticated:
            k8s.AppsV1Api(new_api_client(host=limited.url)).read_namespaced_deployment("x", NS)
        assert unauthenticated.value.status == 401
