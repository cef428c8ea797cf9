"""Serve the Kubernetes API stand-in from the command line, to try the cluster steps of the
README ("Run it on your cluster") without a cluster::

    python -m tests.support.k8s_standin --token-file /tmp/standin/token \\
        --rbac deployments/kubernetes/rbac.yaml \\
        --seed deployments/kubernetes/examples/myapp.yaml

It listens on 127.0.0.1 only (``--port``, default a free one), prints one line with the API
URL, the namespace and the token file, and serves until SIGINT (Ctrl-C) or SIGTERM, then
exits 0. Everything is in memory: a restart starts from the ``--seed`` files again, with a
new token. Its deployment controller runs, so seeded and created Deployments become
available (their pods are objects only: nothing runs, no traffic flows).
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
from pathlib import Path
from typing import Any

import yaml

from . import Logged, StandIn
from .resources import default_crd_dir, load_crds
from .store import ApiError

_STOP = {signal.SIGINT, signal.SIGTERM}


class Refused(Exception):
    """A usage or input error, in words that name the option to fix."""


class _Served(StandIn):
    """The stand-in as a long-running server: no request log kept (it would only grow);
    with ``verbose``, each request is printed to stderr instead."""

    verbose = False

    def log(self, entry: Logged) -> None:
        if self.verbose:
            call = entry.call
            what = f"{call.plural}.{call.group}" if call.group else call.plural or "-"
            where = "/".join(p for p in (call.namespace, call.name, call.subresource) if p)
            print(f"k8s stand-in: {entry.status or 'dropped'} {call.verb or call.method} {what} {where}",
                  file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.k8s_standin",
        description="Serve the in-repo Kubernetes API stand-in on 127.0.0.1.",
        epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--port", type=int, default=0,
                        help="port on 127.0.0.1 (default: a free one, printed)")
    parser.add_argument("--namespace", default="shop",
                        help="namespace of seeded objects that name none (default: shop)")
    parser.add_argument("--token-file", type=Path, metavar="PATH",
                        help="write a random bearer token to this file (mode 0600) and require it "
                             "on every request (default: no authentication)")
    parser.add_argument("--rbac", type=Path, metavar="FILE",
                        help="enforce the rules of the Role in this multi-document YAML "
                             "(e.g. deployments/kubernetes/rbac.yaml), answering 403 as the real "
                             "server does; seeding is not subject to it")
    parser.add_argument("--rbac-role", metavar="NAME", help="which Role of --rbac (default: its only one)")
    parser.add_argument("--seed", type=Path, action="append", default=[], metavar="FILE",
                        help="create the objects of this multi-document YAML as a user would "
                             "(validated); repeatable")
    parser.add_argument("--crd-dir", type=Path, metavar="DIR",
                        help="directory of the real Istio, Tekton and Knative CRD manifests "
                             f"(default: {default_crd_dir()}: $K8S_STANDIN_CRDS, else "
                             "../shared/crds beside the repository)")
    parser.add_argument("--verbose", action="store_true", help="print each request to stderr")
    return parser


def _yaml_docs(path: Path, option: str) -> list[dict[str, Any]]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise Refused(f"{option} {path}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise Refused(f"{option} {path}: not YAML ({str(exc).splitlines()[0]})") from None
    if not all(d is None or isinstance(d, dict) for d in docs):
        raise Refused(f"{option} {path}: every document must be a mapping (a Kubernetes object)")
    return [d for d in docs if d]


def _crd_dir(path: Path | None) -> Path:
    directory = path or default_crd_dir()
    where = f"--crd-dir {directory}" if path else f"--crd-dir (default {directory})"
    if not directory.is_dir():
        raise Refused(f"{where}: no such directory. It must hold the real Istio, Tekton and "
                      "Knative CRD manifests the stand-in validates custom resources with; this "
                      "repository does not ship them: pass --crd-dir or set K8S_STANDIN_CRDS")
    if not load_crds(directory):
        raise Refused(f"{where}: no CustomResourceDefinition in its *.yaml files")
    return directory


def _rules(path: Path, name: str | None) -> list[dict[str, Any]]:
    roles = [d for d in _yaml_docs(path, "--rbac") if d.get("kind") == "Role"]
    names = [str((r.get("metadata") or {}).get("name")) for r in roles]
    if name is not None:
        roles = [r for r, n in zip(roles, names, strict=True) if n == name]
    if len(roles) != 1:
        wanted = f"no Role {name!r}" if name is not None else f"{len(roles)} Roles, not one"
        raise Refused(f"--rbac {path}: {wanted} (it has: {', '.join(names) or 'none'}); "
                      "pick one with --rbac-role")
    return list(roles[0].get("rules") or [])


def _write_token(path: Path) -> str:
    token = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise Refused(f"--token-file {path}: cannot be written ({exc.strerror})") from None
    with os.fdopen(fd, "w") as file:
        os.fchmod(file.fileno(), 0o600)  # an existing file keeps its mode otherwise
        file.write(token + "\n")
    return token


def _seed(api: StandIn, path: Path) -> None:
    for doc in _yaml_docs(path, "--seed"):
        kind, meta = doc.get("kind"), doc.get("metadata") or {}
        label = f"{kind} {meta.get('name', '<no name>')}"
        if kind == "Namespace" and doc.get("apiVersion") == "v1":  # every namespace exists here
            print(f"k8s stand-in: skipped {label} (namespaces need no creating)", file=sys.stderr)
            continue
        rt = next((t for t in api.store.types if t.kind == kind), None)
        if rt is None:
            served = ", ".join(sorted(t.kind for t in api.store.types))
            raise Refused(f"--seed {path}: {label}: the stand-in does not serve this kind "
                          f"(it serves {served})")
        if doc.get("apiVersion") not in [rt.api_version(v) for v in rt.versions]:
            raise Refused(f"--seed {path}: {label}: apiVersion {doc.get('apiVersion')!r} is not "
                          f"served (use one of {', '.join(rt.api_version(v) for v in rt.versions)})")
        namespace = meta.get("namespace") or api.namespace
        try:
            api.seed(doc, namespace=namespace)
        except ApiError as error:
            causes = "".join(f"; {c.field}: {c.message}" for c in error.causes)
            raise Refused(f"--seed {path}: {label} refused ({error.code} {error.reason}): "
                          f"{error.message}{causes}") from None
        print(f"k8s stand-in: seeded {kind} {namespace}/{meta['name']}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    # Blocked before any thread starts, so every thread inherits the mask and only the
    # main thread's sigwait below takes SIGINT/SIGTERM.
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP)
    try:
        if args.rbac_role and not args.rbac:
            raise Refused("--rbac-role goes with --rbac")
        if not 0 <= args.port <= 65535:
            raise Refused(f"--port {args.port}: not a port number")
        crd_dir = _crd_dir(args.crd_dir)
        rbac = _rules(args.rbac, args.rbac_role) if args.rbac else None
        token = _write_token(args.token_file) if args.token_file is not None else None
        api = _Served(namespace=args.namespace, token=token, crd_dir=crd_dir, rbac=rbac, port=args.port)
        api.verbose = args.verbose
        try:
            api.start()
        except OSError as exc:
            raise Refused(f"--port {args.port}: cannot listen on 127.0.0.1:{args.port} "
                          f"({exc.strerror})") from None
    except Refused as exc:
        parser.error(str(exc))  # exits 2 with the usage line
    try:
        for path in args.seed:
            _seed(api, path)
        api.controller.settle(timeout=30)
    except Refused as exc:
        api.stop()
        parser.error(str(exc))
    auth = f"token-file={args.token_file.resolve()}" if args.token_file else "token-file=- (no token required)"
    rbac_note = f" rbac={args.rbac}" if args.rbac else ""
    print(f"k8s stand-in: url={api.url} namespace={args.namespace} {auth}{rbac_note}", flush=True)
    received = signal.sigwait(_STOP)
    api.stop()
    print(f"k8s stand-in: stopped ({signal.Signals(received).name})", file=sys.stderr)
    if api.controller.errors:
        for error in api.controller.errors:
            print(f"k8s stand-in: controller error: {error!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
