"""The object store behind the stand-in, with the API server's write semantics.

What matters to the adapters is reproduced: resourceVersion as an optimistic lock (409 on a
stale one), ``generation`` bumped only by spec changes, the status subresource split (writes
to the object ignore ``status``; writes to /status touch nothing else), no-op writes that
change nothing (no new resourceVersion, no watch event), defaulting of Deployments, garbage
collection of dependents, delete preconditions, and an event history for watches.
"""

from __future__ import annotations

import copy
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import resources
from .resources import ResourceType
from .selectors import Requirement, fields_match, labels_match


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    """An error answer; ``status()`` is the Status object the server sends."""

    def __init__(self, code: int, reason: str, message: str, *, rt: ResourceType | None = None,
                 name: str = "", causes: list[resources.Cause] | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.rt, self.name, self.causes = rt, name, causes or []

    def status(self) -> dict[str, Any]:
        details: dict[str, Any] = {}
        if self.name:
            details["name"] = self.name
        if self.rt is not None:
            details["group"] = self.rt.group
            details["kind"] = self.rt.kind if self.causes else self.rt.plural
        if self.causes:
            details["causes"] = [{"reason": c.reason, "message": c.message, "field": c.field}
                                 for c in self.causes]
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "details": details, "code": self.code}


@dataclass(frozen=True)
class Event:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    rt: ResourceType
    namespace: str
    obj: dict[str, Any]
    old: dict[str, Any] | None


def _body(obj: dict[str, Any]) -> dict[str, Any]:
    """Everything that counts as "spec" for ``generation``: not metadata, status or type."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


class Store:
    def __init__(self, types: Iterable[ResourceType], history: int = 20000) -> None:
        self.types = list(types)
        self.cond = threading.Condition(threading.RLock())
        self.closed = False
        self.events: deque[Event] = deque(maxlen=history)
        self.listeners: list[Callable[[Event], None]] = []
        self._objects: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self._rv = 0

    # -- lookup ---------------------------------------------------------------------------
    def lookup(self, group: str, version: str, plural: str) -> ResourceType:
        for rt in self.types:
            if rt.group == group and rt.plural == plural and version in rt.versions:
                return rt
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    def by_kind(self, kind: str) -> ResourceType:
        return next(rt for rt in self.types if rt.kind == kind)

    @property
    def resource_version(self) -> int:
        with self.cond:
            return self._rv

    def _key(self, rt: ResourceType, ns: str, name: str) -> tuple[str, str, str, str]:
        return (rt.group, rt.plural, ns if rt.namespaced else "", name)

    def _out(self, rt: ResourceType, version: str, obj: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(obj)
        out["apiVersion"] = rt.api_version(version)  # all served versions share one schema here
        return out

    def _existing(self, rt: ResourceType, ns: str, name: str) -> dict[str, Any]:
        obj = self._objects.get(self._key(rt, ns, name))
        if obj is None:
            raise ApiError(404, "NotFound", f'{rt.qualified} "{name}" not found', rt=rt, name=name)
        return obj

    # -- reads ----------------------------------------------------------------------------
    def get(self, rt: ResourceType, version: str, ns: str, name: str) -> dict[str, Any]:
        with self.cond:
            return self._out(rt, version, self._existing(rt, ns, name))

    def list(self, rt: ResourceType, version: str, ns: str | None,
             labels: list[Requirement] | None = None,
             fields: list[tuple[str, str, str]] | None = None) -> tuple[list[dict[str, Any]], str]:
        with self.cond:
            items = [self._out(rt, version, obj) for key, obj in sorted(self._objects.items())
                     if key[:2] == (rt.group, rt.plural) and (ns is None or key[2] == ns)
                     and labels_match(labels or [], obj) and fields_match(fields or [], obj)]
            return items, str(self._rv)

    def wait_events(self, after: int, deadline: float) -> list[Event]:
        """Events newer than ``after``; blocks until there are some, the deadline, or close."""
        with self.cond:
            while True:
                found = [e for e in self.events if e.rv > after]
                remaining = deadline - time.monotonic()
                if found or self.closed or remaining <= 0:
                    return found
                self.cond.wait(min(remaining, 0.5))

    def oldest_event_rv(self) -> int:
        with self.cond:
            return self.events[0].rv if self.events else self._rv

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    # -- writes ---------------------------------------------------------------------------
    def _commit(self, rt: ResourceType, version: str, ns: str, new: dict[str, Any],
                old: dict[str, Any] | None, *, dry_run: bool, validate: bool,
                strict: bool) -> dict[str, Any]:
        new["apiVersion"], new["kind"] = rt.api_version(version), rt.kind
        meta = new["metadata"]
        if rt.kind == "Deployment":
            resources.default_deployment(new)
        if old is not None:
            meta["generation"] = old["metadata"].get("generation", 1) + (_body(new) != _body(old))
            unchanged = {**new, "apiVersion": old["apiVersion"]} == old
            if unchanged:
                return self._out(rt, version, old)
        if validate:
            try:
                resources.validate(rt, version, new, old)
            except resources.Invalid as invalid:
                name = meta.get("name", "")
                if invalid.unknown_field and strict:
                    fields = ", ".join(f'unknown field "{c.field}"' for c in invalid.causes)
                    raise ApiError(400, "BadRequest", f"strict decoding error: {fields}",
                                   rt=rt, name=name) from None
                raise ApiError(422, "Invalid", f'{rt.kind}.{rt.group or "core"} "{name}" is '
                               f"invalid: {invalid}", rt=rt, name=name,
                               causes=invalid.causes) from None
        if dry_run:
            return self._out(rt, version, new)
        self._rv += 1
        meta["resourceVersion"] = str(self._rv)
        self._objects[self._key(rt, ns, meta["name"])] = new
        self._emit(Event(self._rv, "ADDED" if old is None else "MODIFIED", rt, ns,
                         copy.deepcopy(new), copy.deepcopy(old)))
        return self._out(rt, version, new)

    def _emit(self, event: Event) -> None:
        self.events.append(event)
        self.cond.notify_all()
        for listener in list(self.listeners):
            listener(event)

    def create(self, rt: ResourceType, version: str, ns: str, body: dict[str, Any], *,
               dry_run: bool = False, validate: bool = True, strict: bool = False) -> dict[str, Any]:
        new = copy.deepcopy(body)
        meta = new.setdefault("metadata", {})
        if rt.namespaced and meta.get("namespace", ns) != ns:
            raise ApiError(400, "BadRequest", "the namespace of the provided object does not "
                           "match the namespace sent on the request", rt=rt)
        if not meta.get("name") and meta.get("generateName"):
            alphabet = "bcdfghjklmnpqrstvwxz2456789"
            meta["name"] = meta["generateName"] + "".join(secrets.choice(alphabet) for _ in range(5))
        with self.cond:
            name = meta.get("name", "")
            if name and self._key(rt, ns, name) in self._objects:
                raise ApiError(409, "AlreadyExists", f'{rt.qualified} "{name}" already exists',
                               rt=rt, name=name)
            if rt.namespaced:
                meta["namespace"] = ns
            if meta.get("resourceVersion"):
                raise ApiError(400, "BadRequest", "resourceVersion should not be set on objects "
                               "to be created", rt=rt, name=name)
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1)
            if rt.status:  # status is the controller's: ignored on create
                new.pop("status", None)
                if not rt.custom:
                    new["status"] = {}
            return self._commit(rt, version, ns, new, None, dry_run=dry_run,
                                validate=validate, strict=strict)

    def _prepare_update(self, rt: ResourceType, old: dict[str, Any], body: dict[str, Any],
                        name: str, subresource: str | None) -> dict[str, Any]:
        if (body.get("metadata") or {}).get("name", name) != name:
            raise ApiError(400, "BadRequest", f"the name of the object ({body['metadata']['name']}) "
                           f"does not match the name on the URL ({name})", rt=rt, name=name)
        if subresource == "status":
            new = copy.deepcopy(old)
            if "status" in body:
                new["status"] = copy.deepcopy(body["status"])
            else:
                new.pop("status", None)
            return new
        new = copy.deepcopy(body)
        if rt.status:
            new.pop("status", None)
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
        meta = new.setdefault("metadata", {})
        for key in ("uid", "creationTimestamp", "namespace", "name", "resourceVersion"):
            if key in old["metadata"]:
                meta[key] = old["metadata"][key]
        return new

    def replace(self, rt: ResourceType, version: str, ns: str, name: str, body: dict[str, Any], *,
                subresource: str | None = None, dry_run: bool = False, validate: bool = True,
                strict: bool = False) -> dict[str, Any]:
        with self.cond:
            old = self._existing(rt, ns, name)
            rv = (body.get("metadata") or {}).get("resourceVersion")
            if not rv and rt.custom:
                raise ApiError(422, "Invalid", f'{rt.kind}.{rt.group} "{name}" is invalid: '
                               "metadata.resourceVersion: Invalid value: 0x0: must be specified "
                               "for an update", rt=rt, name=name)
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise self.conflict(rt, name)
            new = self._prepare_update(rt, old, body, name, subresource)
            return self._commit(rt, version, ns, new, old, dry_run=dry_run, validate=validate,
                                strict=strict)

    def patch(self, rt: ResourceType, version: str, ns: str, name: str,
              apply: Callable[[dict[str, Any]], Any], *, subresource: str | None = None,
              dry_run: bool = False, strict: bool = False) -> dict[str, Any]:
        """Apply ``apply`` to the current object; a resourceVersion in the result is a precondition."""
        with self.cond:
            old = self._existing(rt, ns, name)
            patched = apply(self._out(rt, version, old))
            if not isinstance(patched, dict):
                raise ApiError(400, "BadRequest", "the patched object is not a JSON object", rt=rt)
            rv = (patched.get("metadata") or {}).get("resourceVersion")
            if rv != old["metadata"]["resourceVersion"]:
                raise self.conflict(rt, name)
            new = self._prepare_update(rt, old, patched, name, subresource)
            return self._commit(rt, version, ns, new, old, dry_run=dry_run, validate=True,
                                strict=strict)

    def conflict(self, rt: ResourceType, name: str) -> ApiError:
        return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {rt.qualified} "{name}": '
                        "the object has been modified; please apply your changes to the latest "
                        "version and try again", rt=rt, name=name)

    def delete(self, rt: ResourceType, ns: str, name: str, *, uid: str | None = None,
               resource_version: str | None = None, propagation: str | None = None) -> dict[str, Any]:
        with self.cond:
            old = self._existing(rt, ns, name)
            meta = old["metadata"]
            if uid and uid != meta["uid"]:
                raise ApiError(409, "Conflict", f"Precondition failed: UID in precondition: {uid}, "
                               f"UID in object meta: {meta['uid']}", rt=rt, name=name)
            if resource_version and resource_version != meta["resourceVersion"]:
                raise self.conflict(rt, name)
            del self._objects[self._key(rt, ns, name)]
            self._rv += 1
            gone = copy.deepcopy(old)
            gone["metadata"]["resourceVersion"] = str(self._rv)
            self._emit(Event(self._rv, "DELETED", rt, ns, gone, copy.deepcopy(old)))
            if propagation != "Orphan":  # the garbage collector, without the delay
                for key, obj in list(self._objects.items()):
                    owners = (obj.get("metadata") or {}).get("ownerReferences") or []
                    if any(o.get("uid") == meta["uid"] for o in owners) and key in self._objects:
                        dependent = next(t for t in self.types if (t.group, t.plural) == key[:2])
                        self.delete(dependent, key[2], key[3], propagation=propagation)
            return gone
