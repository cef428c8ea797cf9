"""`python -m tests.support.k8s_standin`: the stand-in as a server of its own, the way the
README's "Try it without a cluster" starts it (a subprocess, the example app seeded, a token
file, the adapters' Role), reached by the official client and stopped by SIGTERM."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import kubernetes.client as k8s
import pytest

from canary.platforms.kubernetes import TRACK_LABEL, new_api_client
from tests.support.shared import location

from .conftest import MANIFESTS, NS

ROOT = MANIFESTS.parents[1]
EXAMPLE = MANIFESTS / "examples" / "myapp.yaml"
STARTUP = 60.0  # seconds: loading the CRD schemas on a busy 2-core machine


@dataclass
class Served:
    proc: subprocess.Popen[str]
    url: str
    token_file: Path
    line: str  # what it printed once ready


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "tests.support.k8s_standin", "--crd-dir", str(location("crds")), *args]


def _popen(args: list[str]) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(args, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/version", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _wait_ready(proc: subprocess.Popen[str], url: str) -> str:
    """Poll until the server answers and has printed its line; fail as soon as it exits."""
    assert proc.stdout is not None and proc.stderr is not None
    deadline = time.monotonic() + STARTUP
    while not _answers(url):
        if proc.poll() is not None:
            pytest.fail(f"the stand-in exited {proc.returncode} before answering: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            pytest.fail(f"the stand-in did not answer at {url} within {STARTUP:.0f} s")
        time.sleep(0.05)
    # it answers /version before seeding; the line comes once the seeds are in and settled
    ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
    if not ready:
        pytest.fail(f"the stand-in answered but printed no line within {STARTUP:.0f} s")
    return proc.stdout.readline().strip()


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    token_file = tmp_path / "token"
    proc = _popen(_command("--port", str(port), "--token-file", str(token_file),
                           "--rbac", str(MANIFESTS / "rbac.yaml"), "--seed", str(EXAMPLE)))  # fmt: skip
    try:
        yield Served(proc, url, token_file, _wait_ready(proc, url))
    finally:  # killed if a test failed before its SIGTERM
        _stop(proc)


def test_serves_the_seeded_app_to_the_official_client_with_the_token(served: Served) -> None:
    assert served.line == (f"k8s stand-in: url={served.url} namespace={NS} "
                           f"token-file={served.token_file.resolve()} "
                           f"rbac={MANIFESTS / 'rbac.yaml'}")  # fmt: skip
    assert stat.S_IMODE(served.token_file.stat().st_mode) == 0o600
    token = served.token_file.read_text().strip()
    assert len(token) >= 32

    apps = k8s.AppsV1Api(new_api_client(host=served.url, token=token))
    deployment = apps.read_namespaced_deployment("myapp", NS)
    assert deployment.spec.selector.match_labels == {"app": "myapp", TRACK_LABEL: "primary"}
    assert deployment.spec.template.spec.containers[0].image == "registry.example.com/shop/myapp:1.0.0"
    assert deployment.status.available_replicas == 3  # the controller ran before the line
    vs = k8s.CustomObjectsApi(new_api_client(host=served.url, token=token)).get_namespaced_custom_object(
        "networking.istio.io", "v1", NS, "virtualservices", "myapp")  # fmt: skip
    assert vs["spec"]["hosts"] == ["myapp"]

    with pytest.raises(k8s.ApiException) as unauthenticated:
        k8s.AppsV1Api(new_api_client(host=served.url)).read_namespaced_deployment("myapp", NS)
    assert unauthenticated.value.status == 401
    with pytest.raises(k8s.ApiException) as wrong:
        k8s.AppsV1Api(new_api_client(host=served.url, token=token + "x")).read_namespaced_deployment("myapp", NS)
    assert wrong.value.status == 401
    with pytest.raises(k8s.ApiException) as forbidden:  # the Role grants no Secrets
        k8s.CoreV1Api(new_api_client(host=served.url, token=token)).list_namespaced_secret(NS)
    assert forbidden.value.status == 403 and json.loads(forbidden.value.body)["reason"] == "Forbidden"

    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(timeout=15) == 0
    assert served.proc.stderr is not None and "stopped (SIGTERM)" in served.proc.stderr.read()
    with pytest.raises(ProcessLookupError):  # reaped: no such process any more
        os.kill(served.proc.pid, 0)
    assert not _answers(served.url)


def _refused(*args: str) -> str:
    """Run the CLI expecting it to refuse (exit 2) before serving; returns its stderr."""
    proc = _popen(_command(*args))
    try:
        _, err = proc.communicate(timeout=STARTUP)
    finally:
        _stop(proc)
    assert proc.returncode == 2, err
    return err


def test_a_missing_crd_directory_names_the_option(tmp_path: Path) -> None:
    err = _refused("--crd-dir", str(tmp_path / "nope"))
    assert f"--crd-dir {tmp_path / 'nope'}: no such directory" in err and "K8S_STANDIN_CRDS" in err


def test_an_invalid_seed_is_refused_naming_the_file_and_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXAMPLE.read_text().replace("number: 8080", "numbr: 8080"))
    err = _refused("--port", str(_free_port()), "--seed", str(bad))
    assert f"--seed {bad}: VirtualService myapp refused" in err and "numbr" in err
