"""Start, check and stop a local Kubernetes control plane: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok, on 127.0.0.1 only, in one state directory.

The API server runs as a cluster's would: TLS, client certificates and ServiceAccount tokens
(TokenRequest) for authentication, ``Node,RBAC`` authorization, the default admission
plugins plus NodeRestriction, and an audit log of what ServiceAccounts did (tests read it to
prove which verbs a release used). The controller manager runs the controllers a release
meets (deployment, replicaset, namespace, garbage collector, service accounts); the
scheduler places pods on kwok's nodes, and kwok plays their kubelet: pods become Running and
Ready without containers (a container image naming ``crashloop`` waits in CrashLoopBackOff).

Every process is recorded with its start time and argv (canary.platforms.local.procs), so
``down`` ends exactly what ``up`` started, and a second ``up`` finds a running plane and reuses it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from canary.platforms.local import procs

from .install import Installed, InstallError, installed, problems
from .pki import SERVICE_IP, Pki

MARKER = "CANARY_KUBE_STATE"
NODE = "kwok-node-0"
STATE_FILE = "controlplane.json"
#: The ServiceAccounts' requests go to the audit log (metadata only: who, verb, what, code).
AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
    userGroups: ["system:serviceaccounts"]
  - level: None
"""


class ControlPlaneError(RuntimeError):
    """The control plane could not start or answer; the message names the log to read."""


@dataclass(frozen=True)
class Endpoint:
    """How to reach a running control plane (all files live in its state directory)."""

    url: str
    kubeconfig: Path
    ca: Path
    client_cert: Path
    client_key: Path
    audit_log: Path
    state: Path


def _kubeconfig(path: Path, url: str, pki: Pki, user: str) -> None:
    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": "local",
        "clusters": [{"name": "local", "cluster": {"server": url, "certificate-authority": str(pki.ca)}}],
        "users": [{"name": user, "user": {"client-certificate": str(pki.cert(user)),
                                          "client-key": str(pki.key(user))}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": user,
                                                   "namespace": "default"}}],
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    path.chmod(0o600)


class ControlPlane:
    """One control plane in ``state`` (created on first ``up``, reused while it runs)."""

    def __init__(self, state: Path, *, where: Installed | None = None,
                 say: Callable[[str], None] = print) -> None:
        self.state = state.resolve()
        self.where = where or installed()
        self.say = say
        self.pki = Pki(self.state / "pki")

    # -- files --------------------------------------------------------------------------
    @property
    def _record_file(self) -> Path:
        return self.state / STATE_FILE

    def _log(self, name: str) -> Path:
        return self.state / "logs" / f"{name}.log"

    def _record(self) -> dict[str, Any]:
        data: dict[str, Any] = procs.read_json(self._record_file, {}) or {}
        return data

    def endpoint(self, record: dict[str, Any] | None = None) -> Endpoint:
        record = record if record is not None else self._record()
        if "url" not in record:
            raise ControlPlaneError(f"no control plane recorded in {self.state}; start one "
                                    "(`make kube` or `python -m controlplane up`)")
        return Endpoint(url=record["url"], kubeconfig=self.state / "kubeconfig", ca=self.pki.ca,
                        client_cert=self.pki.cert("admin"), client_key=self.pki.key("admin"),
                        audit_log=self._log("audit"), state=self.state)

    # -- health -------------------------------------------------------------------------
    def _ssl(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.ca))
        context.load_cert_chain(str(self.pki.cert("admin")), str(self.pki.key("admin")))
        return context

    def _ready(self, url: str) -> bool:
        try:
            with urllib.request.urlopen(f"{url}/readyz", context=self._ssl(), timeout=2) as answer:
                return bool(answer.status == 200)
        except (OSError, urllib.error.URLError, ssl.SSLError):
            return False

    def running(self) -> Endpoint | None:
        """The endpoint if every recorded process is ours and alive and the API is ready."""
        record = self._record()
        recs = [procs.ProcessRecord.from_json(r) for r in record.get("processes", {}).values()]
        if not recs or not all(procs.is_ours(r) for r in recs) or not self._ready(record["url"]):
            return None
        return self.endpoint(record)

    # -- up -----------------------------------------------------------------------------
    def up(self, timeout: float = 120.0) -> Endpoint:
        """Start (or find running) the control plane; returns once a pod can become Ready."""
        missing = problems(self.where)
        if missing:
            raise InstallError("the control plane is not built: " + "; ".join(missing)
                               + ". Run `make setup` (or `python -m controlplane build`)")
        self.state.mkdir(parents=True, exist_ok=True)
        with procs.locked(self.state / "lock"):
            found = self.running()
            if found is not None:
                return found
            self._stop_recorded()
            started = time.monotonic()
            self.pki.ensure()
            record = self._start(timeout)
            self.say(f"control plane up in {time.monotonic() - started:.1f} s: {record['url']} "
                     f"(KUBECONFIG={self.state / 'kubeconfig'})")
            return self.endpoint(record)

    def _spawn(self, name: str, argv: list[str], record: dict[str, Any]) -> procs.ProcessRecord:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.state),
               MARKER: str(self.state)}
        _, rec = procs.spawn(argv, cwd=self.state, env=env, log=self._log(name))
        record["processes"][name] = rec.to_json()
        procs.write_json(self._record_file, record)
        if rec.start_ticks < 0:
            raise ControlPlaneError(f"{name} exited at once:\n{procs.tail(self._log(name))}")
        return rec

    def _wait(self, name: str, check: Callable[[], bool], rec: procs.ProcessRecord, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if not procs.is_ours(rec):
                raise ControlPlaneError(f"{name} exited while starting; its log "
                                        f"({self._log(name)}) ends:\n{procs.tail(self._log(name), 30)}")
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"{name} not ready after {timeout:g} s; its log "
                                        f"({self._log(name)}) ends:\n{procs.tail(self._log(name), 30)}")
            time.sleep(0.2)

    def _start(self, timeout: float) -> dict[str, Any]:
        bin_ = self.where.tool
        etcd_client, etcd_peer, api, cm, sched, kwok = procs.free_ports(6)
        url = f"https://127.0.0.1:{api}"
        record: dict[str, Any] = {"url": url, "processes": {}, "ports": {
            "etcd": etcd_client, "etcd_peer": etcd_peer, "apiserver": api,
            "controller_manager": cm, "scheduler": sched, "kwok": kwok}}
        for user in ("admin", "controller-manager", "scheduler", "kwok"):
            _kubeconfig(self.state / (f"{user}.kubeconfig" if user != "admin" else "kubeconfig"),
                        url, self.pki, user)
        (self.state / "audit-policy.yaml").write_text(AUDIT_POLICY)

        etcd_url = f"http://127.0.0.1:{etcd_client}"
        rec = self._spawn("etcd", [
            str(bin_("etcd")), "--name", "local", "--data-dir", str(self.state / "etcd"),
            "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
            "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{etcd_peer}",
            "--initial-cluster", f"local=http://127.0.0.1:{etcd_peer}",
            "--logger", "zap", "--log-level", "warn"], record)
        self._wait("etcd", lambda: _http_ok(f"{etcd_url}/health"), rec, 30)

        pki = self.pki
        rec = self._spawn("kube-apiserver", [
            str(bin_("kube-apiserver")), f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={api}",
            f"--tls-cert-file={pki.cert('apiserver')}", f"--tls-private-key-file={pki.key('apiserver')}",
            f"--client-ca-file={pki.ca}", "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki.sa_pub}", f"--service-account-signing-key-file={pki.sa_key}",
            f"--service-cluster-ip-range={SERVICE_IP.rsplit('.', 1)[0]}.0/24",
            "--endpoint-reconciler-type=none", "--profiling=false",
            f"--audit-policy-file={self.state / 'audit-policy.yaml'}",
            f"--audit-log-path={self._log('audit')}", "--audit-log-format=json",
            "--audit-log-maxsize=50", "--audit-log-maxbackup=1"], record)
        self._wait("kube-apiserver", lambda: self._ready(url), rec, timeout)

        self._spawn("kube-controller-manager", [
            str(bin_("kube-controller-manager")), f"--kubeconfig={self.state / 'controller-manager.kubeconfig'}",
            "--controllers=deployment,replicaset,statefulset,namespace,garbagecollector,serviceaccount,"
            "serviceaccount-token,root-ca-certificate-publisher-controller,podgc,"
            "persistentvolume-binder,pvc-protection,pv-protection",
            "--leader-elect=false", "--bind-address=127.0.0.1", f"--secure-port={cm}",
            f"--service-account-private-key-file={pki.sa_key}", f"--root-ca-file={pki.ca}",
            "--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10"], record)
        self._spawn("kube-scheduler", [
            str(bin_("kube-scheduler")), f"--kubeconfig={self.state / 'scheduler.kubeconfig'}",
            "--leader-elect=false", "--bind-address=127.0.0.1", f"--secure-port={sched}"], record)
        stages = self.state / "kwok.yaml"
        stages.write_text("\n---\n".join(p.read_text() for p in self.where.stages()))
        self._spawn("kwok", [
            str(bin_("kwok")), f"--kubeconfig={self.state / 'kwok.kubeconfig'}", f"--config={stages}",
            "--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--node-ip=10.0.1.1", "--cidr=10.0.2.0/24", f"--server-address=127.0.0.1:{kwok}"], record)
        self._bootstrap(timeout)
        return record

    def kubectl(self, *args: str, input: str | None = None, timeout: float = 120.0) -> str:
        """Run the built kubectl as the admin of this control plane; raises with its stderr."""
        proc = subprocess.run([str(self.where.tool("kubectl")), f"--kubeconfig={self.state / 'kubeconfig'}",
                               *args], input=input, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise ControlPlaneError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def _bootstrap(self, timeout: float) -> None:
        """CRDs established, the kwok node Ready, the default ServiceAccount made."""
        docs = []
        for path in self.where.crds():
            for doc in yaml.safe_load_all(path.read_text()):
                # Istio's one file holds every Istio CRD: only its networking ones are used
                if doc and ("istio" not in path.name or doc["spec"]["group"] == "networking.istio.io"):
                    docs.append(doc)
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
                     input=yaml.safe_dump_all(docs))
        self.kubectl("wait", "--for=condition=Established", "crd", "--all", f"--timeout={timeout:.0f}s")
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump(_node()))
        self.kubectl("wait", "--for=condition=Ready", f"node/{NODE}", f"--timeout={timeout:.0f}s")
        # Admission taints a new node not-ready; the node lifecycle controller would lift it, but
        # it is not run: on a busy machine it taints kwok's nodes whenever a heartbeat is late.
        with contextlib.suppress(ControlPlaneError):
            self.kubectl("taint", "node", NODE, "node.kubernetes.io/not-ready:NoSchedule-")
        deadline = time.monotonic() + timeout
        while True:  # the serviceaccount controller makes `default`; pods need it
            with contextlib.suppress(ControlPlaneError):
                self.kubectl("get", "serviceaccount", "default", "-n", "default", "-o", "name")
                return
            if time.monotonic() > deadline:
                raise ControlPlaneError("the default ServiceAccount did not appear: read "
                                        f"{self._log('kube-controller-manager')}")
            time.sleep(0.2)

    # -- down ---------------------------------------------------------------------------
    def _stop_recorded(self) -> list[str]:
        stopped = []
        record = self._record()
        for name in reversed(list(record.get("processes", {}))):
            if procs.stop(procs.ProcessRecord.from_json(record["processes"][name])):
                stopped.append(name)
        for rec in procs.find_marked({MARKER: str(self.state)}):  # started, never recorded
            if procs.stop(rec):
                stopped.append(rec.argv[0].rsplit("/", 1)[-1])
        if record:
            procs.write_json(self._record_file, {})
        return stopped

    def down(self, *, wipe: bool = False) -> list[str]:
        """Stop what this state directory's ``up`` started; ``wipe`` deletes its data too."""
        if not self.state.exists():
            return []
        with procs.locked(self.state / "lock"):
            stopped = self._stop_recorded()
        if wipe:
            shutil.rmtree(self.state, ignore_errors=True)
        return stopped


def _node() -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": NODE, "annotations": {"kwok.x-k8s.io/node": "fake",
                                                   "node.alpha.kubernetes.io/ttl": "0"},
                     "labels": {"type": "kwok", "kubernetes.io/hostname": NODE,
                                "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}},
        "spec": {},
        "status": {"allocatable": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
                   "capacity": {"cpu": "64", "memory": "256Gi", "pods": "1000"}},
    }


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return bool(answer.status == 200) and b'"true"' in answer.read()
    except (OSError, urllib.error.URLError):
        return False


def default_state() -> Path:
    return Path(os.environ.get("CANARY_KUBE_STATE") or Path.cwd() / ".state" / "kube")

