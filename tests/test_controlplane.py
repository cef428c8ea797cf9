"""The local Kubernetes control plane's installer and launcher (controlplane/): pins are
checked, a tampered upstream file is refused, an unreachable Go module proxy is named, a
second build only checks, and a second `up` finds the running plane instead of starting one."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from controlplane import install
from controlplane.cluster import ControlPlane
from tests.support.kube import Cluster, not_built


def test_every_locked_upstream_file_names_its_module_version_path_and_sha256() -> None:
    entries = install.read_lock()
    assert {kind for *_, kind in entries} == {"crd", "stage"}
    for module, path, sha, _ in entries:
        assert re.fullmatch(r"[\w./-]+@v\d+\.\d+\.\d+", module), module
        assert re.fullmatch(r"[0-9a-f]{64}", sha), (module, path)
        assert not path.startswith("/") and ".." not in path
    modules = {m.split("@")[0] for m, *_ in entries}
    assert {"istio.io/api", "github.com/tektoncd/pipeline", "sigs.k8s.io/gateway-api",
            "sigs.k8s.io/kwok"} <= modules


def test_a_malformed_lock_line_is_refused_naming_the_line(tmp_path: Path) -> None:
    lock = tmp_path / "upstream.lock"
    lock.write_text("# comment\nistio.io/api@v1.32.0 some/file.yaml\n")
    with pytest.raises(install.InstallError, match=r"upstream.lock:2: want `module@version path sha256"):
        install.read_lock(lock)


@pytest.mark.skipif(not_built() is not None, reason="the control plane is not built")
def test_a_file_whose_bytes_differ_from_the_lock_is_refused(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    module, path, sha, kind = install.read_lock()[0]
    lock = tmp_path / "upstream.lock"
    lock.write_text(f"{module} {path} {'0' * 64} {kind}\n")
    monkeypatch.setattr(install, "LOCK", lock)
    where = install.Installed(tmp_path / "cache")
    where.root.mkdir()
    with pytest.raises(install.InstallError, match=f"{re.escape(path)}: sha256 {sha}, but upstream.lock "
                                                   f"pins {'0' * 64}; refusing it"):
        install.fetch_upstream(where, say=lambda _: None)
    assert not where.files.exists()  # nothing half-copied is left for a start to load


@pytest.mark.slow
def test_an_unreachable_go_module_proxy_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # an empty module cache and a proxy address where nothing listens
    monkeypatch.setenv("GOMODCACHE", str(tmp_path / "mod"))
    monkeypatch.setenv("GOPROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("GOFLAGS", "-mod=mod")
    started = time.monotonic()
    with pytest.raises(install.InstallError) as caught:
        install._go(["mod", "download", "sigs.k8s.io/kwok"], install.GO_KWOK, "download kwok")
    message = str(caught.value)
    assert "could not download kwok: the Go module proxy (http://127.0.0.1:9) did not serve" in message
    assert "make it reachable (GOPROXY)" in message and "1.20" in message
    assert time.monotonic() - started < 60


@pytest.mark.skipif(not_built() is not None, reason="the control plane is not built")
def test_a_second_build_only_checks() -> None:
    where = install.installed()
    before = {p.name: p.stat().st_mtime_ns for p in where.bin.iterdir()}
    said: list[str] = []
    started = time.monotonic()
    install.build(say=said.append)
    assert said == [f"control plane {install.kubernetes_version()} (kwok {install.kwok_version()}, "
                    f"etcd {install.etcd_version()}): up to date in {where.root}"]
    assert {p.name: p.stat().st_mtime_ns for p in where.bin.iterdir()} == before
    assert time.monotonic() - started < 30
    assert set(before) >= {"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl",
                           "kwok", "etcd"}


def test_the_pins_build_the_newest_served_minor_with_matching_staging_modules() -> None:
    text = (install.GO_KUBE / "go.mod").read_text()
    version = install.kubernetes_version()
    minor = version.split(".")[1]
    replaced = re.findall(r"^\s*(k8s\.io/[\w-]+) => \1 (v\S+)$", text, re.M)
    assert len(replaced) > 20
    assert {v for _, v in replaced} == {f"v0.{minor}.{version.split('.')[2]}"}
    assert re.search(r"^tool \(\n(\s+k8s.io/kubernetes/cmd/[\w-]+\n){4}\)", text, re.M)


def test_a_second_up_finds_the_running_plane(control_plane: Cluster) -> None:
    plane = ControlPlane(control_plane.endpoint.state, say=lambda _: None)
    pids = {name: rec["pid"] for name, rec in plane._record()["processes"].items()}
    started = time.monotonic()
    again = plane.up()
    assert again.url == control_plane.endpoint.url
    assert {name: rec["pid"] for name, rec in plane._record()["processes"].items()} == pids
    assert time.monotonic() - started < 5
    assert set(pids) == {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}
    for name, pid in pids.items():  # every process listens, and on loopback only
        listening = _listening(pid)
        assert listening, name
        assert all(address in ("0100007F", "00000000000000000000000001000000",
                               "0000000000000000FFFF00000100007F") for address in listening), (name, listening)


def _listening(pid: int) -> list[str]:
    """The local addresses (hex, as /proc/net/tcp* spell them) of the sockets `pid` listens on."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd) if fd.is_symlink() else ""
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            words = line.split()
            if words[3] == "0A" and words[9] in inodes:  # LISTEN, one of the process's sockets
                found.append(words[1].split(":")[0])
    return found


def test_the_api_server_enforces_what_a_cluster_does(control_plane: Cluster) -> None:
    """The version built, RBAC + Node authorization on loopback, kwok's node Ready and
    untainted (pods are scheduled on it)."""
    version = control_plane.kubectl("get", "--raw", "/version")
    assert '"gitVersion": "v1.37.2"' in version.replace('":"', '": "')
    nodes = control_plane.kubectl("get", "nodes", "-o", "jsonpath={.items[*].metadata.name} "
                                  "{.items[*].status.conditions[?(@.type=='Ready')].status} "
                                  "{.items[*].spec.taints}")
    assert nodes.strip() == "kwok-node-0 True"
    cmdline = Path(f"/proc/{ControlPlane(control_plane.endpoint.state)._record()['processes']['kube-apiserver']['pid']}"
                   "/cmdline").read_bytes().split(b"\0")
    assert b"--authorization-mode=Node,RBAC" in cmdline and b"--bind-address=127.0.0.1" in cmdline
