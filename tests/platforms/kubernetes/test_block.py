"""The KubernetesCluster block and the client's three sources (explicit, kubeconfig, in-cluster),
against the real API server: TLS with its own CA, the release runner's TokenRequest token."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from kubernetes.config import incluster_config
from pydantic import SecretStr, ValidationError

from blocks.kubernetes import KubernetesCluster
from canary.errors import ConfigError, PlatformError
from canary.platforms.kubernetes import (
    DEPLOYMENT,
    IstioRouter,
    KnativeBuilder,
    KubernetesWorkloads,
    new_api_client,
)
from tests.support.kube import Namespace

from .conftest import APP


def test_explicit_host_and_secret_token(namespace: Namespace, production: object) -> None:
    endpoint = namespace.cluster.endpoint
    cluster = KubernetesCluster(namespace=namespace.name, host=endpoint.url, token=SecretStr(namespace.token),
                                ca_cert_path=str(endpoint.ca))
    assert cluster.get_client().get(DEPLOYMENT, APP) is not None
    assert namespace.token not in repr(cluster) and namespace.token not in str(cluster.model_dump())
    assert isinstance(cluster.workloads(APP, None), KubernetesWorkloads)
    assert isinstance(cluster.router(APP, None), IstioRouter)
    assert isinstance(cluster.builder("registry.example.com/app", system="knative"), KnativeBuilder)


def test_kubeconfig_path_and_context(namespace: Namespace, production: object, tmp_path: Path) -> None:
    endpoint = namespace.cluster.endpoint
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "wrong",
        "clusters": [{"name": "local", "cluster": {"server": endpoint.url,
                                                   "certificate-authority": str(endpoint.ca)}}],
        "users": [{"name": "ok", "user": {"token": namespace.token}}, {"name": "bad", "user": {"token": "nope"}}],
        "contexts": [{"name": "right", "context": {"cluster": "local", "user": "ok"}},
                     {"name": "wrong", "context": {"cluster": "local", "user": "bad"}}],
    }))
    right = KubernetesCluster(namespace=namespace.name, kubeconfig_path=str(kubeconfig), context="right")
    assert right.get_client().get(DEPLOYMENT, APP) is not None
    wrong = KubernetesCluster(namespace=namespace.name, kubeconfig_path=str(kubeconfig))  # its current context
    with pytest.raises(PlatformError, match="401") as caught:
        wrong.get_client().get(DEPLOYMENT, APP)
    assert not caught.value.transient
    with pytest.raises(ConfigError):
        KubernetesCluster(kubeconfig_path=str(kubeconfig), context="absent").get_client()


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_a_server_certificate_from_an_unknown_ca_is_a_configuration_error_not_retried(
        namespace: Namespace) -> None:
    """The real server speaks TLS with its own CA: without ca_cert_path the certificate is
    refused, which is a mistake to fix, not a transient fault to retry for minutes."""
    endpoint = namespace.cluster.endpoint
    started = time.monotonic()
    cluster = KubernetesCluster(namespace=namespace.name, host=endpoint.url, token=SecretStr(namespace.token))
    with pytest.raises(PlatformError) as caught:
        cluster.get_client().get(DEPLOYMENT, APP)
    assert not caught.value.transient and time.monotonic() - started < 1.0  # not retried by urllib3
    assert "TLS certificate was not accepted" in str(caught.value) and "ca_cert_path" in str(caught.value)
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    insecure = KubernetesCluster(namespace=namespace.name, host=endpoint.url,
                                 token=SecretStr(namespace.token), verify_ssl=False)
    assert insecure.get_client().get(DEPLOYMENT, APP) is None  # reached (no production seeded)


def test_in_cluster_uses_the_pods_service_account(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "token").write_text("pod-token")
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(tmp_path / "token"))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(tmp_path / "ca.crt"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    configuration = KubernetesCluster(in_cluster=True).get_api_client().configuration
    assert configuration.host == "https://10.0.0.1:443"
    assert configuration.get_api_key_with_prefix("BearerToken").lower() == "bearer pod-token"
    assert new_api_client().configuration.host == "https://10.0.0.1:443"  # detected


def test_no_source_at_all_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ConfigError, match="no Kubernetes cluster configured"):
        new_api_client()


@pytest.mark.parametrize("fields", [
    {"token": SecretStr("t")},
    {"host": "https://x", "kubeconfig_path": "/k"},
    {"in_cluster": True, "context": "c"},
])
def test_ambiguous_sources_are_refused(fields: dict) -> None:
    with pytest.raises(ValidationError):
        KubernetesCluster(**fields)
