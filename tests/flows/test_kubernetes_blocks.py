"""scripts/kubernetes_blocks.py: the cluster's blocks, saved to a real Prefect server.

Here rather than in a tests/scripts package because it needs this package's test server.
The saved documents are loaded back the way the flows load them (tasks.setup.load_block)
and, for the two sources that name an API server, used against the API stand-in. No run may
print a secret, and a second run overwrites the first.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml

from blocks.kubernetes import KubernetesCluster
from blocks.prometheus import PrometheusSource
from canary.platforms.kubernetes import DEPLOYMENT
from tasks.setup import load_block
from tests.flows.conftest import REPO
from tests.platforms.kubernetes.conftest import APP, NS, TOKEN, production_deployment
from tests.support.k8s_standin import StandIn

_SPEC = importlib.util.spec_from_file_location("kubernetes_blocks", REPO / "scripts" / "kubernetes_blocks.py")
assert _SPEC is not None and _SPEC.loader is not None
script = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(script)

PROM_TOKEN = "prom-secret-0123"
PASSWORD = "basic-secret-4567"


@pytest.fixture
def standin() -> Any:
    with StandIn(namespace=NS, token=TOKEN) as server:
        server.seed(production_deployment())
        yield server


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """main(argv) -> (exit code, stdout + stderr); asserts no secret in either."""
    try:
        code = script.main(list(argv))
    except SystemExit as exc:  # argparse's error()
        code = int(exc.code or 0)
    out = capsys.readouterr()
    text = out.out + out.err
    for secret in (TOKEN, PROM_TOKEN, PASSWORD):
        assert secret not in text
    return code, text


def _secret_file(tmp_path: Path, name: str, value: str) -> str:
    path = tmp_path / name
    path.write_text(value + "\n")
    return str(path)


def _kubeconfig(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "standin",
        "clusters": [{"name": "standin", "cluster": {"server": url}}],
        "users": [{"name": "canary", "user": {"token": TOKEN}}],
        "contexts": [{"name": "standin", "context": {"cluster": "standin", "user": "canary"}}],
    }))  # fmt: skip
    return path


def test_from_a_kubeconfig_the_flows_reach_the_cluster(standin: StandIn, tmp_path: Path, capsys) -> None:
    kubeconfig = _kubeconfig(tmp_path, standin.url)
    code, out = _run(capsys, "--name", "kc", "--namespace", NS, "--kubeconfig", str(kubeconfig),
                     "--context", "standin", "--prometheus-url", "http://prometheus.test:9090",
                     "--prometheus-token-file", _secret_file(tmp_path, "prom", PROM_TOKEN))  # fmt: skip
    assert code == 0, out
    assert '"token": "unset"' in out and "bearer token set" in out
    cluster = load_block("canary-kubernetes-cluster/kc")
    assert isinstance(cluster, KubernetesCluster)
    assert (cluster.namespace, cluster.kubeconfig_path, cluster.context) == (NS, str(kubeconfig), "standin")
    assert cluster.production_image(APP, None) is not None  # over HTTP, with the kubeconfig's token
    prometheus = load_block("prometheus-source/kc")
    assert isinstance(prometheus, PrometheusSource)
    assert prometheus.headers() == {"Authorization": f"Bearer {PROM_TOKEN}"}


def test_host_and_token_file_stored_secret_and_overwritten_on_a_second_run(
        standin: StandIn, tmp_path: Path, capsys) -> None:  # fmt: skip
    args = ["--name", "direct", "--host", standin.url, "--token-file",
            _secret_file(tmp_path, "token", TOKEN), "--prometheus-url", "http://prom.test:9090",
            "--prometheus-user", "canary", "--prometheus-password-file",
            _secret_file(tmp_path, "password", PASSWORD), "--image-repository", "registry.test/shop"]  # fmt: skip
    code, out = _run(capsys, *args, "--namespace", "elsewhere")
    assert code == 0, out
    assert '"token": "set"' in out and "basic auth set" in out
    code, out = _run(capsys, *args, "--namespace", NS, "--build-system", "knative")
    assert code == 0, out  # the same names again: replaced, not refused
    cluster = load_block("canary-kubernetes-cluster/direct")
    assert (cluster.namespace, cluster.build_system) == (NS, "knative")
    assert cluster.token is not None and cluster.token.get_secret_value() == TOKEN
    assert TOKEN not in repr(cluster) and TOKEN not in str(cluster.model_dump())
    assert cluster.get_client().get(DEPLOYMENT, APP) is not None
    assert cluster.builder_for(APP, None).repository == "registry.test/shop/" + APP
    prometheus = load_block("prometheus-source/direct")
    assert prometheus.basic_auth_password.get_secret_value() == PASSWORD


def test_in_cluster_stores_no_secret(capsys) -> None:
    code, out = _run(capsys, "--name", "pod", "--namespace", NS, "--in-cluster",
                     "--prometheus-url", "http://prometheus.istio-system.svc:9090")  # fmt: skip
    assert code == 0, out
    cluster = load_block("canary-kubernetes-cluster/pod")
    assert cluster.in_cluster and cluster.token is None and cluster.host is None
    assert load_block("prometheus-source/pod").headers() == {}


@pytest.mark.parametrize(("argv", "says"), [
    (["--kubeconfig", "{tmp}/absent"], "--kubeconfig {tmp}/absent: cannot be read"),
    (["--kubeconfig", "{kubeconfig}", "--context", "prod"], "has no context 'prod' (it has: standin)"),
    (["--host", "https://10.0.0.1:6443"], "--host needs --token-file"),
    (["--host", "https://10.0.0.1:6443", "--token-file", "{tmp}/absent"], "--token-file {tmp}/absent: cannot be read"),
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
