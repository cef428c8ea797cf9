"""An in-repo Kubernetes API stand-in that the official client talks to over real HTTP.

No real API server can run on this machine (../shared/notes/local-components.md), and the
mocks that exist hide exactly the bugs that matter (patch semantics, selectors, conflicts),
so this one reproduces them. Usage::

    with StandIn(token="t") as api:           # 127.0.0.1, a free port (or port=N)
        client = ...host=api.url...            # the official client, unchanged
        api.seed(production_deployment)        # objects a user already has
        api.controller.deployment("app-canary", "never")
        api.faults.inject(verb="update", plural="virtualservices", status=500)
        api.requests                           # what the client did, in order

Optionally it enforces RBAC rules (a Role's ``rules``), answering 403 like the real server,
so a Role can be shown sufficient by running the adapters under it.

``python -m tests.support.k8s_standin`` serves one from the command line (``--help``), for
trying the README's cluster steps without a cluster.
"""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from .controller import Controller
from .faults import Call, Fault, Faults
from .resources import BUILTINS, default_crd_dir, load_crds
from .server import Handler, Logged
from .store import ApiError, Store

__all__ = ["ApiError", "Call", "Fault", "Logged", "StandIn"]


class StandIn:
    def __init__(self, *, namespace: str = "default", token: str | None = None,
                 crd_dir: Path | None = None, rbac: list[dict[str, Any]] | None = None,
                 port: int = 0) -> None:
        self.namespace = namespace
        self.port = port  # 0: a free one, chosen when started
        self.token = token
        self.rbac = rbac
        self.store = Store([*BUILTINS, *load_crds(crd_dir or default_crd_dir())])
        self.faults = Faults()
        self.controller = Controller(self.store)
        self._log: list[Logged] = []
        self._log_lock = threading.Lock()
        self._seq = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------
    def start(self, port: int | None = None) -> StandIn:
        """Serve on 127.0.0.1:``port`` (default: the one given to the constructor; 0: free)."""
        handler = type("BoundHandler", (Handler,), {"standin": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port if port is None else port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="k8s-standin", daemon=True)
        self._thread.start()
        self.controller.start()
        return self

    def stop(self) -> None:
        self.store.close()
        self.controller.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the stand-in first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- hooks used by the handler --------------------------------------------------------
    def authorize(self, call: Call) -> None:
        if self.rbac is None:
            return
        resource = f"{call.plural}/{call.subresource}" if call.subresource else call.plural
        for rule in self.rbac:
            if (set(rule.get("apiGroups", [])) & {call.group, "*"}
                    and set(rule.get("resources", [])) & {resource, "*"}
                    and set(rule.get("verbs", [])) & {call.verb, "*"}
                    and (not rule.get("resourceNames") or call.name in rule["resourceNames"])):
                return
        raise ApiError(403, "Forbidden", f'{call.plural}{"." + call.group if call.group else ""} '
                       f'"{call.name}" is forbidden: User "system:serviceaccount:{self.namespace}:'
                       f'prefect-canary" cannot {call.verb} resource "{resource}" in API group '
                       f'"{call.group}" in the namespace "{call.namespace}"')

    def next_seq(self) -> int:
        with self._log_lock:
            self._seq += 1
            return self._seq

    def log(self, entry: Logged) -> None:
        with self._log_lock:
            self._log.append(entry)

    @property
    def requests(self) -> list[Logged]:
        with self._log_lock:
            return sorted(self._log, key=lambda entry: entry.seq)

    # -- helpers for tests (no HTTP: the test plays the user) -----------------------------
    def _type(self, kind: str, api_version: str | None = None) -> tuple[Any, str]:
        rt = self.store.by_kind(kind)
        version = api_version.rsplit("/", 1)[-1] if api_version else ""
        if version not in rt.versions:
            version = "v1" if "v1" in rt.versions else rt.versions[0]
        return rt, version

    def seed(self, obj: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        """Create ``obj`` as a user would (validated), bypassing faults and RBAC."""
        rt, version = self._type(obj["kind"], obj.get("apiVersion"))
        return self.store.create(rt, version, namespace or self.namespace, obj, strict=True)

    def read(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        rt, version = self._type(kind)
        try:
            return self.store.get(rt, version, namespace or self.namespace, name)
        except ApiError:
            return None

    def names(self, kind: str, namespace: str | None = None) -> list[str]:
        rt, version = self._type(kind)
        items, _ = self.store.list(rt, version, namespace or self.namespace)
        return [item["metadata"]["name"] for item in items]
