"""The pure parts: manifest builders, rollout and route readers, error translation (cheap to
check exhaustively here; the API server's own patch and selector semantics are exercised on
the real control plane by the sequence tests)."""

from __future__ import annotations

import json
import ssl

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from canary.errors import ConfigError, PlatformError
from canary.platforms.kubernetes.errors import ConflictError, InvalidObjectError, translate
from canary.platforms.kubernetes.manifests import (
    current_pods,
    default_pull_policy,
    deployment_conditions,
    pinned,
    pod_problems,
    rollout_progress,
    selector_string,
    split_image,
    version_label,
)
from canary.platforms.kubernetes.routes import managed_routes, restored, weights_of, with_record
from canary.values.weights import Weights

from .conftest import APP, user_virtual_service


def _deployment(generation: int = 2, **status: int) -> dict:
    return {"metadata": {"name": "gg", "generation": generation}, "spec": {"replicas": 3},
            "status": status}


@pytest.mark.parametrize(("status", "done", "why"), [
    ({"observedGeneration": 1, "updatedReplicas": 3, "availableReplicas": 3}, False, "observe generation 2"),
    ({"observedGeneration": 2, "updatedReplicas": 1, "replicas": 3}, False, "1 of 3 replicas updated"),
    ({"observedGeneration": 2, "updatedReplicas": 3, "replicas": 4}, False, "1 old replicas"),
    ({"observedGeneration": 2, "updatedReplicas": 3, "replicas": 3, "availableReplicas": 2}, False, "2 of 3"),
    ({"observedGeneration": 2, "updatedReplicas": 3, "replicas": 3, "availableReplicas": 3}, True, "3 of 3"),
])
def test_rollout_progress_reads_like_kubectl_rollout_status(status: dict, done: bool, why: str) -> None:
    result = rollout_progress(_deployment(**status))
    assert result[0] is done and why in result[1]


def test_progress_deadline_exceeded_stops_the_wait() -> None:
    deployment = _deployment(observedGeneration=2)
    deployment["status"]["conditions"] = [{"type": "Progressing", "status": "False",
                                           "reason": "ProgressDeadlineExceeded", "message": "timed out"}]
    with pytest.raises(PlatformError, match="progress deadline"):
        rollout_progress(deployment)


def test_pod_problems_explain_and_flag_crash_loops() -> None:
    pending = {"metadata": {"name": "a"}, "status": {"conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "no cpu"}]}}
    crashing = {"metadata": {"name": "b"}, "status": {"containerStatuses": [{
        "name": "app", "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 1}}}]}}
    assert pod_problems([pending, pending]) == (["Unschedulable: no cpu"], False)
    problems, fatal = pod_problems([crashing])
    assert fatal and problems == ["container app CrashLoopBackOff (4 restarts, last exit code 1)"]


def test_deployment_conditions_say_what_the_controller_says_and_why_when_wrong() -> None:
    deployment = {"status": {"conditions": [
        {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
         "message": "Deployment does not have minimum availability."},
        {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated", "message": "ok"},
        {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": "quota"}]}}
    assert deployment_conditions(deployment) == (
        "conditions Available=False MinimumReplicasUnavailable (Deployment does not have minimum "
        "availability.), Progressing=True ReplicaSetUpdated, ReplicaFailure=True FailedCreate (quota)")
    assert deployment_conditions({"status": {}}) == "no conditions reported yet"


@pytest.mark.parametrize(("image", "policy"), [
    ("reg/a", "Always"), ("reg/a:latest", "Always"), ("reg:5000/a:latest@sha256:x", "Always"),
    ("reg/a:1.2", "IfNotPresent"), ("reg/a@sha256:x", "IfNotPresent"), ("reg:5000/a", "Always"),
])
def test_the_pull_policy_the_api_server_defaults_to(image: str, policy: str) -> None:
    assert default_pull_policy(image) == policy


def test_current_pods_leave_out_the_ones_a_rolling_update_replaces() -> None:
    deployment = {"spec": {"template": {"metadata": {"labels": {"app": "a", "version": "2"}},
                                        "spec": {"containers": [{"name": "app", "image": "r/a:2"}]}}}}

    def pod(name: str, version: str, image: str, **meta: object) -> dict:
        return {"metadata": {"name": name, "labels": {"app": "a", "version": version,
                                                      "pod-template-hash": "x"}, **meta},
                "spec": {"containers": [{"name": "app", "image": image},
                                        {"name": "istio-proxy", "image": "istio/proxyv2"}]}}

    pods = [pod("new", "2", "r/a:2"), pod("old", "1", "r/a:1"), pod("relabelled", "2", "r/a:1"),
            pod("going", "2", "r/a:2", deletionTimestamp="2026-01-01T00:00:00Z")]
    assert [p["metadata"]["name"] for p in current_pods(deployment, pods)] == ["new"]


def test_images_and_versions() -> None:
    assert split_image("reg:5000/a/b:1.2@sha256:x") == ("reg:5000/a/b", "1.2", "sha256:x")
    assert split_image("reg:5000/a/b") == ("reg:5000/a/b", None, None)
    assert pinned("reg/a:latest", "sha256:" + "0" * 64) == "reg/a@sha256:" + "0" * 64
    with pytest.raises(PlatformError):
        pinned("reg/a", "latest")
    assert version_label("reg/a@sha256:" + "ab" * 32) == "sha256-" + "ab" * 8
    assert version_label("reg/a:v1.2+build") == "v1.2-build"
    assert selector_string({"matchLabels": {"app": "a"}, "matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["x", "y"]}, {"key": "old", "operator": "DoesNotExist"}]},
        {"track": "primary"}) == "app=a,track=primary,tier in (x,y),!old"


def test_routes_record_restore_and_weights() -> None:
    vs = user_virtual_service()
    original = json.dumps(vs)
    indexes, host = managed_routes(vs["spec"], None, None, APP, APP)
    assert (indexes, host) == ([1, 2], APP)
    assert weights_of(vs["spec"], indexes, APP) == Weights.all_primary()
    recorded = with_record(json.loads(original))
    recorded["spec"]["http"] = []
    again = with_record(recorded)  # a second record never replaces the first
    assert json.dumps(restored(again)) == original
    with pytest.raises(ConfigError, match="no HTTP route named"):
        managed_routes(vs["spec"], ("missing",), None, APP)
    with pytest.raises(ConfigError, match="several hosts"):
        managed_routes(vs["spec"], None, None, APP)  # no app hint: admin-console vs goldengoose
    vs["spec"]["http"][1]["route"] = [{"destination": {"host": APP, "subset": "canary"}, "weight": 100}]
    with pytest.raises(PlatformError, match="disagree"):
        weights_of(vs["spec"], indexes, APP)


def _api_error(status: int, body: dict | None = None, headers: dict | None = None) -> ApiException:
    error = ApiException(status=status, reason="x")
    error.body = json.dumps(body or {}).encode()
    error.headers = headers or {}
    return error


def test_translation_marks_exactly_429_5xx_and_connection_errors_transient() -> None:
    assert translate(_api_error(429, headers={"Retry-After": "2"}), action="get", kind="K").transient
    assert translate(_api_error(429, headers={"Retry-After": "2"}), action="get", kind="K").retry_after == 2.0  # type: ignore[attr-defined]
    assert translate(_api_error(503), action="get", kind="K").transient
    assert translate(urllib3.exceptions.ProtocolError("reset"), action="get", kind="K").transient
    assert isinstance(translate(_api_error(409, {"reason": "Conflict"}), action="u", kind="K"), ConflictError)
    invalid = translate(_api_error(422, {"message": "spec.x: Invalid value", "reason": "Invalid",
                                         "details": {"causes": [{"field": "spec.x"}]}}),
                        action="create", kind="Deployment", name="gg-canary")
    assert isinstance(invalid, InvalidObjectError) and not invalid.transient
    assert "Deployment 'gg-canary'" in str(invalid) and "spec.x: Invalid value" in str(invalid)
    forbidden = translate(_api_error(403, {"message": "nope"}), action="delete", kind="Deployment")
    assert not forbidden.transient and "rbac.yaml" in str(forbidden)
    refused = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    untrusted = translate(urllib3.exceptions.MaxRetryError(None, "/api", urllib3.exceptions.SSLError(refused)),
                          action="get", kind="K")  # type: ignore[arg-type]
    assert not untrusted.transient and "ca_cert_path" in str(untrusted)
    cut = urllib3.exceptions.MaxRetryError(None, "/api", urllib3.exceptions.SSLError(  # type: ignore[arg-type]
        ssl.SSLEOFError(8, "EOF occurred in violation of protocol")))
    assert translate(cut, action="get", kind="K").transient  # a handshake cut short: may pass next time
