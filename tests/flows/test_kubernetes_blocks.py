"""scripts/kubernetes_blocks.py: the cluster's blocks, saved to a real Prefect server.

Here rather than in a tests/scripts package because it needs this package's test server.
The saved documents are loaded back the way the flows load them (store.blocks.load_block)
and, for the two sources that name an API server, used against the real control plane
(tests/support/kube.py) over HTTPS: the control plane's kubeconfig, and a host with the
release runner's TokenRequest token and the cluster's CA (`--ca-cert`). No run may print a
secret, and a second run overwrites the first.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest
import yaml

from blocks.kubernetes import KubernetesCluster
from blocks.prometheus import PrometheusSource
from canary.errors import PlatformError
from canary.platforms.kubernetes import DEPLOYMENT
from store.blocks import load_block
from tests.flows.conftest import REPO
from tests.platforms.kubernetes.conftest import APP, PROD_IMAGE, production_deployment
from tests.support.kube import Namespace

_SPEC = importlib.util.spec_from_file_location("kubernetes_blocks", REPO / "scripts" / "kubernetes_blocks.py")
assert _SPEC is not None and _SPEC.loader is not None
script = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(script)

#: for the checks that reach no API server
NS = "shop"
PROM_TOKEN = "prom-secret-0123"
PASSWORD = "basic-secret-4567"


@pytest.fixture
def production(namespace: Namespace) -> Namespace:
    """The namespace with the app's production Deployment in it."""
    namespace.seed(production_deployment())
    return namespace


def _run(capsys: pytest.CaptureFixture[str], *argv: str, secrets: tuple[str, ...] = ()) -> tuple[int, str]:
    """main(argv) -> (exit code, stdout + stderr); asserts no secret in either."""
    try:
        code = script.main(list(argv))
    except SystemExit as exc:  # argparse's error()
        code = int(exc.code or 0)
    out = capsys.readouterr()
    text = out.out + out.err
    for secret in (PROM_TOKEN, PASSWORD, *secrets):
        assert secret not in text
    return code, text


def _secret_file(tmp_path: Path, name: str, value: str) -> str:
    path = tmp_path / name
    path.write_text(value + "\n")
    return str(path)


def _kubeconfig(tmp_path: Path, url: str) -> Path:
    """A kubeconfig naming an API server nobody reaches (for the refusals)."""
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "elsewhere",
        "clusters": [{"name": "elsewhere", "cluster": {"server": url}}],
        "users": [{"name": "canary", "user": {"token": "never-used"}}],
        "contexts": [{"name": "elsewhere", "context": {"cluster": "elsewhere", "user": "canary"}}],
    }))  # fmt: skip
    return path


def _with_runner_context(ns: Namespace, tmp_path: Path) -> Path:
    """The control plane's kubeconfig plus a context `runner` that logs in with the release
    runner's token (what `kubectl config set-credentials --token` would add)."""
    config = yaml.safe_load(ns.cluster.endpoint.kubeconfig.read_text())
    cluster = config["contexts"][0]["context"]["cluster"]
    config["users"].append({"name": "runner", "user": {"token": ns.token}})
    config["contexts"].append({"name": "runner", "context": {"cluster": cluster, "user": "runner",
                                                             "namespace": ns.name}})  # fmt: skip
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def _runner_read_production(ns: Namespace, since: float) -> bool:
    """The audit log has the runner reading production's Deployment since `since`."""
    return any(e["verb"] == "get" and e["objectRef"].get("resource") == "deployments"
               and e["objectRef"].get("name") == APP and e["responseStatus"]["code"] == 200
               for e in ns.cluster.audit(ns.runner, since))  # fmt: skip


def test_from_the_control_planes_kubeconfig_the_flows_reach_the_cluster(
        production: Namespace, tmp_path: Path, capsys) -> None:  # fmt: skip
    kubeconfig = production.cluster.endpoint.kubeconfig
    code, out = _run(capsys, "--name", "kc", "--namespace", production.name, "--kubeconfig",
                     str(kubeconfig), "--prometheus-url", "http://prometheus.test:9090",
                     "--prometheus-token-file", _secret_file(tmp_path, "prom", PROM_TOKEN))  # fmt: skip
    assert code == 0, out
    assert '"token": "unset"' in out and "bearer token set" in out
    cluster = load_block("canary-kubernetes-cluster/kc")
    assert isinstance(cluster, KubernetesCluster)
    assert (cluster.namespace, cluster.kubeconfig_path, cluster.context) == (production.name, str(kubeconfig), None)
    assert cluster.production_image(APP, None) == PROD_IMAGE  # over HTTPS, the kubeconfig's CA and cert
    prometheus = load_block("prometheus-source/kc")
    assert isinstance(prometheus, PrometheusSource)
    assert prometheus.headers() == {"Authorization": f"Bearer {PROM_TOKEN}"}


def test_a_kubeconfig_context_is_the_identity_used(production: Namespace, tmp_path: Path, capsys) -> None:
    """--context picks the kubeconfig's user: here the release runner, as the audit log shows."""
    kubeconfig = _with_runner_context(production, tmp_path)
    code, out = _run(capsys, "--name", "kc-runner", "--namespace", production.name, "--kubeconfig",
                     str(kubeconfig), "--context", "runner", "--prometheus-url", "http://prom.test:9090",
                     secrets=(production.token,))  # fmt: skip
    assert code == 0, out
    assert "(context runner)" in out
    since = time.time() - 1
    cluster = load_block("canary-kubernetes-cluster/kc-runner")
    assert cluster.production_image(APP, None) == PROD_IMAGE
    production.wait("the runner's read in the audit log", lambda: _runner_read_production(production, since))


def test_host_token_file_and_ca_stored_secret_and_overwritten_on_a_second_run(
        production: Namespace, tmp_path: Path, capsys) -> None:  # fmt: skip
    endpoint = production.cluster.endpoint
    token = production.token
    args = ["--name", "direct", "--host", endpoint.url, "--token-file",
            _secret_file(tmp_path, "token", token), "--ca-cert", str(endpoint.ca),
            "--prometheus-url", "http://prom.test:9090", "--prometheus-user", "canary",
            "--prometheus-password-file", _secret_file(tmp_path, "password", PASSWORD),
            "--image-repository", "registry.test/shop"]  # fmt: skip
    code, out = _run(capsys, *args, "--namespace", "elsewhere", secrets=(token,))
    assert code == 0, out
    assert '"token": "set"' in out and "basic auth set" in out
    code, out = _run(capsys, *args, "--namespace", production.name, "--build-system", "knative",
                     secrets=(token,))  # fmt: skip
    assert code == 0, out  # the same names again: replaced, not refused
    cluster = load_block("canary-kubernetes-cluster/direct")
    assert (cluster.namespace, cluster.build_system) == (production.name, "knative")
    assert cluster.ca_cert_path == str(endpoint.ca.resolve()) and cluster.verify_ssl
    assert cluster.token is not None and cluster.token.get_secret_value() == token
    assert token not in repr(cluster) and token not in str(cluster.model_dump())
    since = time.time() - 1
    assert cluster.get_client().get(DEPLOYMENT, APP) is not None  # as the runner, over HTTPS
    production.wait("the runner's read in the audit log", lambda: _runner_read_production(production, since))
    assert cluster.builder_for(APP, None).repository == "registry.test/shop/" + APP
    prometheus = load_block("prometheus-source/direct")
    assert prometheus.basic_auth_password.get_secret_value() == PASSWORD


def test_a_host_without_its_ca_is_refused_by_tls_saying_what_to_set(
        production: Namespace, tmp_path: Path, capsys) -> None:  # fmt: skip
    """The API server's certificate is signed by the cluster's own CA: without --ca-cert the
    saved block cannot verify it, and its first call says so (and that retrying cannot help)."""
    token = production.token
    code, out = _run(capsys, "--name", "no-ca", "--namespace", production.name, "--host",
                     production.cluster.endpoint.url, "--token-file",
                     _secret_file(tmp_path, "token", token), "--prometheus-url", "http://prom.test:9090",
                     secrets=(token,))  # fmt: skip
    assert code == 0, out
    cluster = load_block("canary-kubernetes-cluster/no-ca")
    with pytest.raises(PlatformError, match="ca_cert_path") as caught:
        cluster.get_client().get(DEPLOYMENT, APP)
    assert not caught.value.transient and token not in str(caught.value)


def test_in_cluster_stores_no_secret(capsys) -> None:
    code, out = _run(capsys, "--name", "pod", "--namespace", NS, "--in-cluster",
                     "--prometheus-url", "http://prometheus.istio-system.svc:9090")  # fmt: skip
    assert code == 0, out
    cluster = load_block("canary-kubernetes-cluster/pod")
    assert cluster.in_cluster and cluster.token is None and cluster.host is None
    assert cluster.traffic_router == "istio"  # the default
    assert load_block("prometheus-source/pod").headers() == {}


def test_the_gateway_api_router_is_chosen_with_traffic_router(capsys) -> None:
    code, out = _run(capsys, "--name", "gw", "--namespace", NS, "--in-cluster", "--traffic-router", "gateway-api",
                     "--prometheus-url", "http://prometheus.istio-system.svc:9090")  # fmt: skip
    assert code == 0, out
    assert '"traffic_router": "gateway-api"' in out
    assert load_block("canary-kubernetes-cluster/gw").traffic_router == "gateway-api"
    code, out = _run(capsys, "--name", "gw2", "--namespace", NS, "--in-cluster", "--traffic-router", "linkerd",
                     "--prometheus-url", "http://prometheus.istio-system.svc:9090")  # fmt: skip
    assert code == 2 and "invalid choice: 'linkerd'" in out, out


@pytest.mark.parametrize(("argv", "says"), [
    (["--kubeconfig", "{tmp}/absent"], "--kubeconfig {tmp}/absent: cannot be read"),
    (["--kubeconfig", "{kubeconfig}", "--context", "prod"], "has no context 'prod' (it has: elsewhere)"),
    (["--host", "https://10.0.0.1:6443"], "--host needs --token-file"),
    (["--host", "https://10.0.0.1:6443", "--token-file", "{tmp}/absent"], "--token-file {tmp}/absent: cannot be read"),
    (["--kubeconfig", "{kubeconfig}", "--ca-cert", "{token}"], "--ca-cert and --insecure-skip-tls-verify go with --host"),
    (["--in-cluster", "--context", "x"], "--context goes with --kubeconfig"),
    (["--in-cluster", "--kubeconfig", "{kubeconfig}"], "not allowed with argument"),
    (["--in-cluster", "--prometheus-user", "u"], "--prometheus-user needs --prometheus-password-file"),
    (["--in-cluster", "--prometheus-token-file", "{token}", "--prometheus-user", "u",
      "--prometheus-password-file", "{token}"], "set either bearer_token or basic auth"),
    ([], "one of the arguments --in-cluster --kubeconfig --host is required"),
])  # fmt: skip
def test_clear_errors_and_nothing_saved(argv: list[str], says: str, tmp_path: Path, capsys) -> None:
    kubeconfig = _kubeconfig(tmp_path, "https://10.0.0.1:6443")
    token = _secret_file(tmp_path, "token", PROM_TOKEN)
    fill = {"{tmp}": str(tmp_path.resolve()), "{kubeconfig}": str(kubeconfig), "{token}": token}

    def filled(text: str) -> str:
        for key, value in fill.items():
            text = text.replace(key, value)
        return text

    code, out = _run(capsys, "--name", "refused", "--namespace", NS,
                     "--prometheus-url", "http://prom.test:9090", *map(filled, argv))  # fmt: skip
    assert code == 2
    assert filled(says) in out
    with pytest.raises(Exception, match="could not be loaded"):
        load_block("canary-kubernetes-cluster/refused")
