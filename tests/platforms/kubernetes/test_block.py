"""The KubernetesCluster block and the client's three sources (explicit, kubeconfig, in-cluster)."""

from __future__ import annotations

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
from tests.support.k8s_standin import StandIn

from .conftest import APP, NS, TOKEN


def test_explicit_host_and_secret_token(standin: StandIn, production: object) -> None:
    cluster = KubernetesCluster(namespace=NS, host=standin.url, token=SecretStr(TOKEN))
    assert cluster.get_client().get(DEPLOYMENT, APP) is not None
    assert TOKEN not in repr(cluster) and TOKEN not in str(cluster.model_dump())
    assert isinstance(cluster.workloads(APP, None), KubernetesWorkloads)
    assert isinstance(cluster.router(APP, None), IstioRouter)
    assert isinstance(cluster.builder("registry.example.com/app", system="knative"), KnativeBuilder)


def test_kubeconfig_path_and_context(standin: StandIn, production: object, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "wrong",
        "clusters": [{"name": "standin", "cluster": {"server": standin.url}}],
        "users": [{"name": "ok", "user": {"token": TOKEN}}, {"name": "bad", "user": {"token": "nope"}}],
        "contexts": [{"name": "right", "context": {"cluster": "standin", "user": "ok"}},
                     {"name": "wrong", "context": {"cluster": "standin", "user": "bad"}}],
    }))
    right = KubernetesCluster(namespace=NS, kubeconfig_path=str(kubeconfig), context="right")
    assert right.get_client().get(DEPLOYMENT, APP) is not None
    wrong = KubernetesCluster(namespace=NS, kubeconfig_path=str(kubeconfig))  # its current context
    with pytest.raises(PlatformError, match="401") as caught:
        wrong.get_client().get(DEPLOYMENT, APP)
    assert not caught.value.transient
    with pytest.raises(ConfigError):
        KubernetesCluster(kubeconfig_path=str(kubeconfig), context="absent").get_client()


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
