"""Build (once) and check the control plane's binaries and upstream files, pinned.

What is pinned, and where:
- ``controlplane/go/go.mod`` + ``go.sum``: ``k8s.io/kubernetes`` and every ``k8s.io/*`` staging
  module at the matching v0.x (its own go.mod replaces them with ``./staging``, so it cannot be
  built with ``go install``); kube-apiserver, kube-controller-manager, kube-scheduler and kubectl
  are its ``tool`` lines.
- ``controlplane/go/kwok/go.mod`` + ``go.sum``: kwok, for nodes without a kubelet.
- ``controlplane/go/etcd/go.mod`` + ``go.sum``: etcd (``go.etcd.io/etcd/server/v3``, its sibling
  modules pinned the same way). Debian's etcd-server 3.4 was tried: kube-apiserver 1.37 starts on
  it, but etcd 3.4 lacks RequestWatchProgress, so the API server refuses the streaming lists
  (WatchList) that current client-go informers open, and kwok never saw a pod.
- ``controlplane/upstream.lock``: the CRDs and kwok stages read from upstream Go modules, each
  file with its sha256; a file whose bytes differ is refused.

Everything lands in a cache outside the work tree (``CANARY_KUBE_CACHE``, default
``~/.cache/prefect-canary/kubernetes``), one folder per Kubernetes version. A stamp records
what was built from what; a second ``build`` with nothing changed only checks.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
GO_KUBE = HERE / "go"
GO_KWOK = HERE / "go" / "kwok"
GO_ETCD = HERE / "go" / "etcd"
LOCK = HERE / "upstream.lock"
LOCAL_FILES = HERE / "files"  # our own: the Knative Build CRD in v1 form, kwok's crash stage
KUBE_TOOLS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")


class InstallError(RuntimeError):
    """The control plane cannot be built or is not built; the message says what to do."""


def _require(go_mod: Path, module: str) -> str:
    found = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", go_mod.read_text(), re.M)
    if not found:
        raise InstallError(f"{go_mod} does not require {module}")
    return found.group(1)


def kubernetes_version() -> str:
    return _require(GO_KUBE / "go.mod", "k8s.io/kubernetes")


def kwok_version() -> str:
    return _require(GO_KWOK / "go.mod", "sigs.k8s.io/kwok")


def etcd_version() -> str:
    return _require(GO_ETCD / "go.mod", "go.etcd.io/etcd/server/v3")


def cache_root() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "prefect-canary" / "kubernetes"
    return Path(os.environ.get("CANARY_KUBE_CACHE") or default)


@dataclass(frozen=True)
class Installed:
    """Where the built binaries and the verified upstream files are."""

    root: Path

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def files(self) -> Path:
        return self.root / "files"

    def tool(self, name: str) -> Path:
        return self.bin / name

    @property
    def stamp(self) -> Path:
        return self.root / "stamp.json"

    def crds(self) -> list[Path]:
        return sorted((self.files / "crds").glob("*.yaml"))

    def stages(self) -> list[Path]:
        return sorted((self.files / "kwok-stages").glob("*.yaml"))


def installed() -> Installed:
    return Installed(cache_root() / kubernetes_version())


# -- what the stamp covers ---------------------------------------------------------------
def _ldflags(version: str) -> str:
    major, minor = version.lstrip("v").split(".")[:2]
    pkg = "k8s.io/component-base/version"
    return " ".join(["-s", "-w", f"-X {pkg}.gitVersion={version}", f"-X {pkg}.gitMajor={major}",
                     f"-X {pkg}.gitMinor={minor}", f"-X {pkg}.gitTreeState=clean"])


def _go_version() -> str:
    go = shutil.which("go")
    if go is None:
        raise InstallError("Go is not installed (the control plane is built from upstream Go modules; "
                           "Go 1.26 or newer is needed)")
    return subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, check=True).stdout.strip()


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for path in (*(d / f for d in (GO_KUBE, GO_KWOK, GO_ETCD) for f in ("go.mod", "go.sum")), LOCK,
                 *sorted(LOCAL_FILES.rglob("*.yaml"))):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    digest.update(_ldflags(kubernetes_version()).encode())
    digest.update(_go_version().encode())
    return digest.hexdigest()


def problems(where: Installed | None = None) -> list[str]:
    """What is missing or stale (empty: ready to start)."""
    where = where or installed()
    found = []
    for tool in (*KUBE_TOOLS, "kwok", "etcd"):
        if not os.access(where.tool(tool), os.X_OK):
            found.append(f"{where.tool(tool)} is not built")
    try:
        stamp = json.loads(where.stamp.read_text())
    except (OSError, ValueError):
        stamp = {}
    if not found and stamp.get("fingerprint") != _fingerprint():
        found.append(f"{where.root} was built from other pins than controlplane/ holds now")
    return found


# -- building ----------------------------------------------------------------------------
def _go(args: list[str], cwd: Path, what: str) -> None:
    env = {**os.environ, "GOFLAGS": f"{os.environ.get('GOFLAGS', '')} -mod=readonly".strip(),
           "CGO_ENABLED": "0"}
    proc = subprocess.run(["go", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode == 0:
        return
    err = proc.stderr.strip()
    proxy = subprocess.run(["go", "env", "GOPROXY"], capture_output=True, text=True).stdout.strip()
    if re.search(r"dial tcp|no such host|connection refused|i/o timeout|TLS handshake|proxyconnect|"
                 r"403 Forbidden|404 Not Found|Get \"https?://|GOPROXY=off|module lookup disabled", err):
        raise InstallError(
            f"could not {what}: the Go module proxy ({proxy}) did not serve a pinned module.\n"
            f"{err[-1500:]}\nThe local Kubernetes control plane is built from upstream Go modules "
            "(k8s.io/kubernetes, sigs.k8s.io/kwok) through the Go module proxy: make it reachable "
            "(GOPROXY), or copy a machine's ~/go/pkg/mod cache. (Debian bookworm's `kubernetes` 1.20 "
            "source package builds an old kube-apiserver with Go 1.19; this project does not use it.)")
    raise InstallError(f"could not {what}:\n{err[-3000:]}")


def _download_dir(module: str) -> Path:
    """The module's directory in the Go module cache (downloaded and checksum-verified by go)."""
    proc = subprocess.run(["go", "mod", "download", "-json", module], cwd=HERE,
                          capture_output=True, text=True, env={**os.environ, "GOFLAGS": "-mod=mod"})
    try:
        info = json.loads(proc.stdout)
    except ValueError:
        info = {}
    if proc.returncode != 0 or "Dir" not in info:
        raise InstallError(f"could not download {module} from the Go module proxy: "
                           f"{info.get('Error') or proc.stderr.strip()}")
    return Path(info["Dir"])


def read_lock(path: Path | None = None) -> list[tuple[str, str, str, str]]:
    """(module@version, path in the module, sha256, kind) per line of upstream.lock."""
    path = path or LOCK
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) != 4 or words[3] not in ("crd", "stage") or "@" not in words[0]:
            raise InstallError(f"{path}:{number}: want `module@version path sha256 crd|stage`, got {line!r}")
        entries.append((words[0], words[1], words[2], words[3]))
    return entries


def fetch_upstream(where: Installed, say: Callable[[str], None] = print) -> None:
    """Copy the locked files out of their modules, refusing any whose sha256 differs."""
    staging = where.root / "files.new"
    shutil.rmtree(staging, ignore_errors=True)
    for sub in ("crds", "kwok-stages"):
        (staging / sub).mkdir(parents=True)
    dirs: dict[str, Path] = {}
    for module, inner, sha, kind in read_lock():
        if module not in dirs:
            say(f"  module {module}")
            dirs[module] = _download_dir(module)
        data = (dirs[module] / inner).read_bytes()
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha:
            raise InstallError(f"{module} {inner}: sha256 {actual}, but upstream.lock pins {sha}; "
                               "refusing it (update the lock only after reading the new file)")
        name = f"{module.split('@')[0].replace('/', '_')}_{Path(inner).name}"
        (staging / ("crds" if kind == "crd" else "kwok-stages") / name).write_bytes(data)
    for local in sorted(LOCAL_FILES.glob("*.yaml")):
        sub = "kwok-stages" if local.name.startswith("kwok-stage") else "crds"
        shutil.copyfile(local, staging / sub / f"local_{local.name}")
    shutil.rmtree(where.files, ignore_errors=True)
    staging.rename(where.files)


def build(force: bool = False, say: Callable[[str], None] = print) -> Installed:
    """Build what is missing or stale; a second call with nothing changed only checks."""
    where = installed()
    missing = problems(where)
    if not missing and not force:
        say(f"control plane {kubernetes_version()} (kwok {kwok_version()}, etcd {etcd_version()}): "
            f"up to date in {where.root}")
        return where
    where.bin.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    say(f"building the Kubernetes control plane {kubernetes_version()} into {where.bin} "
        "(a cold build takes about 8 minutes on 2 cores; later runs only check)")
    pkgs = [f"k8s.io/kubernetes/cmd/{tool}" for tool in KUBE_TOOLS]
    _go(["build", "-trimpath", "-ldflags", _ldflags(kubernetes_version()), "-o", f"{where.bin}/", *pkgs],
        GO_KUBE, f"build {', '.join(KUBE_TOOLS)}")
    say(f"  kubernetes binaries: {time.monotonic() - started:.0f} s")
    _go(["build", "-trimpath", "-ldflags", "-s -w", "-o", f"{where.bin}/", "sigs.k8s.io/kwok/cmd/kwok"],
        GO_KWOK, "build kwok")
    say(f"  kwok {kwok_version()}: {time.monotonic() - started:.0f} s")
    _go(["build", "-trimpath", "-ldflags", "-s -w", "-o", str(where.tool("etcd")), "go.etcd.io/etcd/server/v3"],
        GO_ETCD, "build etcd")
    say(f"  etcd {etcd_version()}: {time.monotonic() - started:.0f} s")
    fetch_upstream(where, say)
    where.stamp.write_text(json.dumps({"fingerprint": _fingerprint(), "kubernetes": kubernetes_version(),
                                       "kwok": kwok_version(), "etcd": etcd_version(),
                                       "built_seconds": round(time.monotonic() - started)}) + "\n")
    left = problems(where)
    if left:
        raise InstallError("; ".join(left))
    say(f"control plane built in {time.monotonic() - started:.0f} s")
    return where

