"""The one seam to the Kubernetes API: connection, dict-in/dict-out CRUD, waiting, updates.

Everything goes through the official client (typed APIs for built-in kinds, CustomObjectsApi
for custom resources) but with ``_preload_content=False``: objects stay plain dicts exactly as
the server sent them, so a read-modify-write never drops a field this client version's
models do not know, and a recorded VirtualService can be restored byte for byte. Writes ask
for ``fieldValidation=Strict`` so a typo is an error, not a silently pruned field.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import kubernetes.client
import urllib3
from kubernetes import config as kube_config
from kubernetes import watch
from kubernetes.client import ApiClient as ApiClient

from canary.errors import ConfigError, PlatformError

from .errors import ConflictError, NotFoundError, WaitTimeout, translate
from .objects import JSON, entries, field, text


def new_api_client(*, host: str | None = None, token: str | None = None,
                   kubeconfig: str | None = None, context: str | None = None,
                   in_cluster: bool | None = None, verify_ssl: bool = True,
                   ca_cert: str | None = None) -> ApiClient:
    """An ApiClient from, in this order: explicit host (+ token), a kubeconfig, in-cluster.

    ``in_cluster=None`` means "if nothing else was given and we run in a pod". Each source is
    loaded into its own Configuration, never the process-wide default, so two clusters can be
    used side by side. Connection errors are retried by urllib3 only before a request was
    sent; anything after that surfaces as a transient error for the task to retry.
    """
    configuration = kubernetes.client.Configuration()
    try:
        if host:
            configuration.host = host.rstrip("/")
            if token:  # 36.x reads "BearerToken" and looks the prefix up under that key only
                configuration.api_key = {"BearerToken": f"Bearer {token}"}
            configuration.verify_ssl = verify_ssl
            configuration.ssl_ca_cert = ca_cert
        elif kubeconfig or context or (in_cluster is not True and _default_kubeconfig()):
            kube_config.load_kube_config(config_file=kubeconfig or _default_kubeconfig(), context=context,
                                         client_configuration=configuration, persist_config=False)
        elif in_cluster is not False and os.environ.get("KUBERNETES_SERVICE_HOST"):
            kube_config.load_incluster_config(client_configuration=configuration)
        else:
            raise ConfigError("no Kubernetes cluster configured: give a host (+ token), a kubeconfig "
                              "path (+ context), or run in a pod (in-cluster)")
    except kube_config.ConfigException as error:
        raise ConfigError(f"cannot load the Kubernetes configuration: {error}") from None
    configuration.retries = urllib3.Retry(total=3, connect=3, read=0, status=0, redirect=0, other=0,
                                          backoff_factor=0.2)  # other: e.g. a refused certificate
    return ApiClient(configuration)


def _default_kubeconfig() -> str | None:
    path = os.path.expanduser(os.environ.get("KUBECONFIG", "~/.kube/config").split(os.pathsep)[0])
    return path if os.path.exists(path) else None


@dataclass(frozen=True)
class Kind:
    """A resource kind the adapters use, and how the official client reaches it."""

    kind: str
    group: str
    version: str
    plural: str
    api: str = ""  # typed API class for built-ins, e.g. "AppsV1Api"; "" for custom resources
    singular: str = ""  # typed method suffix, e.g. "deployment"

    @property
    def api_version(self) -> str:
        """``group/version`` (just ``version`` for the core group)."""
        return f"{self.group}/{self.version}" if self.group else self.version


DEPLOYMENT = Kind("Deployment", "apps", "v1", "deployments", "AppsV1Api", "deployment")
POD = Kind("Pod", "", "v1", "pods", "CoreV1Api", "pod")

#: A wait's condition on the object (None: it is gone).
Check = Callable[[JSON | None], bool]
#: A patch: a merge patch (a mapping) or a JSON patch (a list of operations).
Patch = JSON | list[JSON]
#: A method of the official client (it ships no types: the one untyped value here).
_Method = Callable[..., Any]


def _mapping(found: object) -> JSON:
    return found if isinstance(found, dict) else {}


class KubeClient:
    """Namespaced CRUD over plain dicts, conflict-safe updates and watch-based waits."""

    def __init__(self, api_client: ApiClient, namespace: str, *,
                 request_timeout: float = 30.0, conflict_attempts: int = 5) -> None:
        self.api_client = api_client
        self.namespace = namespace
        self.request_timeout = request_timeout
        self.conflict_attempts = conflict_attempts

    # -- the raw call ---------------------------------------------------------------------
    def _method(self, kind: Kind, verb: str) -> tuple[_Method, tuple[str, ...]]:
        if kind.api:
            api = getattr(kubernetes.client, kind.api)(self.api_client)
            return getattr(api, f"{verb}_namespaced_{kind.singular}"), ()
        api = kubernetes.client.CustomObjectsApi(self.api_client)
        verb, status = {"read": "get"}.get(verb, verb).removesuffix("_status"), verb.endswith("_status")
        method = f"{verb}_namespaced_custom_object" + ("_status" if status else "")
        return getattr(api, method), (kind.group, kind.version)

    def _call(self, action: str, kind: Kind, name: str, verb: str, *args: object, **kwargs: object) -> object:
        method, prefix = self._method(kind, verb)
        if kind.api:  # typed: (name, namespace, ...) or (namespace, body)
            args = (*args[:1], self.namespace, *args[1:]) if verb in ("read", "replace", "patch", "delete") \
                else (self.namespace, *args)
        else:  # custom: (group, version, namespace, plural, [name], [body])
            args = (*prefix, self.namespace, kind.plural, *args)
        try:
            response = method(*args, _preload_content=False, _request_timeout=self.request_timeout, **kwargs)
            try:
                found: object = json.loads(response.data or b"null")
                return found
            finally:
                response.release_conn()  # unread-by-the-client responses are not returned by themselves
        except Exception as error:  # translated at the edge, whatever the client raised
            raise translate(error, action=action, kind=kind.kind, name=name) from error

    # -- CRUD -----------------------------------------------------------------------------
    def get(self, kind: Kind, name: str) -> JSON | None:
        """The object, or None when it does not exist."""
        try:
            found = self._call("read", kind, name, "read", name)
        except NotFoundError:
            return None
        return found if isinstance(found, dict) else None

    def list(self, kind: Kind, label_selector: str | None = None) -> list[JSON]:
        """The objects of `kind` in the namespace (those matching `label_selector`)."""
        kwargs = {"label_selector": label_selector} if label_selector else {}
        return entries(self._call("list", kind, "", "list", **kwargs), "items")

    def create(self, kind: Kind, body: JSON) -> JSON:
        """POST `body`; the object as stored (ConflictError if the name is taken)."""
        name = text(body, "metadata", "name")
        return _mapping(self._call("create", kind, name, "create", body, field_validation="Strict"))

    def replace(self, kind: Kind, body: JSON) -> JSON:
        """PUT, guarded by the body's resourceVersion: ConflictError if it changed meanwhile."""
        name = text(body, "metadata", "name")
        replaced = self._call(
            "replace", kind, name, "replace", name, body, field_validation="Strict"
        )
        return _mapping(replaced)

    def patch(self, kind: Kind, name: str, body: Patch) -> JSON:
        """Strategic merge for built-ins (a dict), merge patch for custom resources (a dict),
        JSON patch for a list (the official client needs the content type forced for that)."""
        kwargs: dict[str, object] = {"field_validation": "Strict"}
        if isinstance(body, list) and not kind.api:
            kwargs["_content_type"] = "application/json-patch+json"
        return _mapping(self._call("patch", kind, name, "patch", name, body, **kwargs))

    def patch_status(self, kind: Kind, name: str, body: JSON) -> JSON:
        """Merge-patch a custom resource's status subresource (never its spec)."""
        return _mapping(self._call("patch status", kind, name, "patch_status", name, body,
                                   field_validation="Strict"))

    def delete(self, kind: Kind, name: str, *, uid: str | None = None) -> bool:
        """Delete (dependents in the background); False if it was already gone.

        ``uid`` is a precondition, so an object someone re-created under the same name is
        never deleted by mistake.
        """
        options: JSON = {"propagationPolicy": "Background"}
        if uid:
            options["preconditions"] = {"uid": uid}
        try:
            self._call("delete", kind, name, "delete", name, body=options)
            return True
        except NotFoundError:
            return False

    def update(self, kind: Kind, name: str,
               mutate: Callable[[JSON], JSON | None]) -> JSON:
        """Read, mutate, PUT with the read resourceVersion; on 409 read again and re-apply.

        ``mutate`` gets a copy of the current object and returns the wanted one (or None for
        "nothing to do"), so a concurrent writer's change is never overwritten (no lost update).
        """
        for _ in range(self.conflict_attempts):
            current = self.get(kind, name)
            if current is None:
                raise NotFoundError(f"could not update {kind.kind} {name!r}: it does not exist",
                                    transient=False)
            wanted = mutate(copy.deepcopy(current))
            if wanted is None or wanted == current:
                return current
            try:
                return self.replace(kind, wanted)
            except ConflictError:
                continue
        raise ConflictError(f"{kind.kind} {name!r} kept changing under us "
                            f"({self.conflict_attempts} conflicts in a row); retry", reason="Conflict")

    # -- waiting --------------------------------------------------------------------------
    def wait_for(self, kind: Kind, name: str, check: Check, *, timeout: float,
                 window: float = 30.0, describe: Callable[[], str] | None = None) -> JSON | None:
        """Return the object once ``check(obj)`` is true (obj None: it is gone).

        Reads once, then watches from that resourceVersion in windows of at most ``window``
        seconds (re-reading between windows, which also recovers from dropped watches and
        from a watch the server ends with 410 Gone, which the official client raises).
        ``check`` may raise to stop early. Transient errors are retried until the deadline;
        after it, WaitTimeout says what ``describe()`` says was missing.
        """
        deadline = time.monotonic() + timeout
        backoff = 0.05
        while True:
            try:
                obj = self.get(kind, name)
                if check(obj):
                    return obj
                version = field(obj, "metadata").get("resourceVersion")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                if version is None:  # nothing to watch yet: poll
                    time.sleep(min(backoff, remaining))
                    backoff = min(backoff * 2, 1.0)
                    continue
                found = self._watch(kind, name, str(version), check, min(remaining, window), deadline)
                if found is not None:
                    return found[0]
            except PlatformError as error:
                if not error.transient:
                    raise
                time.sleep(max(0.0, min(backoff, deadline - time.monotonic())))
                backoff = min(backoff * 2, 1.0)
            if time.monotonic() >= deadline:
                break
        detail = describe() if describe else "not ready"
        raise WaitTimeout(f"{kind.kind} {name!r} not ready after {timeout:g}s: {detail}", transient=False)

    def _watch(self, kind: Kind, name: str, version: str, check: Check, window: float,
               deadline: float) -> tuple[JSON | None] | None:
        method, prefix = self._method(kind, "list")
        args = (self.namespace,) if kind.api else (*prefix, self.namespace, kind.plural)
        seconds = max(1, math.ceil(window))
        stream = watch.Watch()
        try:
            for event in stream.stream(method, *args, field_selector=f"metadata.name={name}",
                                       resource_version=version, timeout_seconds=seconds,
                                       _request_timeout=(self.request_timeout, seconds + 10)):
                raw = event["raw_object"]
                obj = raw if event["type"] != "DELETED" and isinstance(raw, dict) else None
                if event["type"] != "BOOKMARK" and check(obj):
                    return (obj,)
                if time.monotonic() >= deadline:
                    return None
        except PlatformError:
            raise
        except kubernetes.client.ApiException as error:
            if error.status == 410:  # Expired: the revision was compacted; read afresh, watch on
                return None
            raise translate(error, action="watch", kind=kind.kind, name=name) from error
        except Exception as error:
            raise translate(error, action="watch", kind=kind.kind, name=name) from error
        finally:
            stream.stop()
        return None
