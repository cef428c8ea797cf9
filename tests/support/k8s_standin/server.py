"""The HTTP face of the stand-in: Kubernetes REST paths, verbs, content types and watches.

The official client talks to it unchanged (only ``host`` differs), so everything it does on
the wire is exercised: typed APIs and CustomObjectsApi paths, the patch content type it picks,
Status bodies on errors, chunked watch streams that end at ``timeoutSeconds``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from .faults import Call, Fault
from .patching import PatchError, json_patch, merge_patch, strategic_merge
from .selectors import (
    SelectorError,
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)
from .store import ApiError

if TYPE_CHECKING:
    from . import StandIn

_PATCHERS = {
    "application/strategic-merge-patch+json": strategic_merge,
    "application/merge-patch+json": merge_patch,
    "application/json-patch+json": json_patch,
}
_FAULT_REASONS = {429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable",
                  504: "Timeout"}


@dataclass(frozen=True)
class Logged:
    """A request as the test sees it afterwards (the request log)."""

    seq: int  # arrival order (a watch is logged when it ends, but sorts by when it began)
    call: Call
    status: int  # 0: the connection was dropped
    body: Any


def _route(path: str, method: str, query: dict[str, str], ctype: str) -> tuple[Call, str]:
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    namespace = ""
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not 1 <= len(rest) <= 3:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    plural, name, sub = rest[0], rest[1] if len(rest) > 1 else "", rest[2] if len(rest) > 2 else ""
    if method == "GET":
        verb = "get" if name else ("watch" if query.get("watch", "").lower() in ("true", "1") else "list")
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, "delete")
        verb = "deletecollection" if verb == "delete" and not name else verb
    return Call(method, verb, group, plural, namespace, name, sub, ctype), version


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else keep-alive answers stall ~40 ms each
    standin: StandIn
    _pending: tuple[int, Call, Any] | None = None

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # -- plumbing -------------------------------------------------------------------------
    def _record(self, code: int) -> None:
        """Log the request before answering it, so a client never sees an unlogged answer."""
        if self._pending is not None:
            seq, call, body = self._pending
            self._pending = None
            self.standin.log(Logged(seq, call, code, body))

    def _send(self, code: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._record(code)
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _drop(self) -> None:
        self._record(0)
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _fail(self, fault: Fault) -> int:
        if fault.drop:
            self._drop()
            return 0
        code = fault.status or 500
        status = ApiError(code, _FAULT_REASONS.get(code, "InternalError"),
                          f"injected fault: HTTP {code}").status()
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
        self._send(code, status, headers)
        return code

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        standin = self.standin
        call, code, body = Call(method, "", "", "", "", "", "", ctype), 0, None
        self._pending = (standin.next_seq(), call, None)
        try:
            body = json.loads(raw) if raw else None
            self._pending = (self._pending[0], call, body)
            if url.path == "/version":
                code = 200
                self._send(200, {"major": "1", "minor": "37", "gitVersion": "v1.37.0-standin"})
                return
            scheme, _, credential = (self.headers.get("Authorization") or "").partition(" ")
            if standin.token is not None and (scheme.lower() != "bearer" or credential != standin.token):
                raise ApiError(401, "Unauthorized", "Unauthorized")
            call, version = _route(url.path, method, query, ctype)
            self._pending = (self._pending[0], call, body)
            standin.authorize(call)
            fault = standin.faults.take(call)
            if fault is not None and fault.action is not None:
                fault.action()
            if fault is not None and fault.status is not None and not fault.after:
                code = self._fail(fault)
                return
            if call.verb == "watch":
                code = 200
                self._watch(call, version, query)
                return
            code, payload = self._dispatch(call, version, query, body)
            if fault is not None and fault.status is not None:
                code = self._fail(fault)
                return
            self._send(code, payload)
        except json.JSONDecodeError as error:
            code = 400
            self._send(400, ApiError(400, "BadRequest", f"invalid JSON body: {error}").status())
        except ApiError as error:
            code = error.code
            self._send(code, error.status())
        except (PatchError, SelectorError) as error:
            code = getattr(error, "code", 400)
            reason = "Invalid" if code == 422 else "BadRequest"
            self._send(code, ApiError(code, reason, str(error)).status())
        except (BrokenPipeError, ConnectionResetError):
            code = 0
        finally:
            self._record(code)  # watches and broken connections: logged when they end

    # -- verbs ----------------------------------------------------------------------------
    def _dispatch(self, call: Call, version: str, query: dict[str, str],
                  body: Any) -> tuple[int, Any]:
        store = self.standin.store
        rt = store.lookup(call.group, version, call.plural)
        ns = call.namespace
        if call.subresource and (call.subresource != "status" or not rt.status):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        dry_run = query.get("dryRun") == "All"
        strict = query.get("fieldValidation") == "Strict"
        if call.verb == "get":
            return 200, store.get(rt, version, ns, call.name)
        if call.verb == "list":
            items, rv = store.list(rt, version, ns or None, parse_label_selector(query.get("labelSelector")),
                                   parse_field_selector(query.get("fieldSelector")))
            return 200, {"kind": f"{rt.kind}List", "apiVersion": rt.api_version(version),
                         "metadata": {"resourceVersion": rv}, "items": items}
        if call.verb in ("create", "update") and not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the request body must be a JSON object", rt=rt)
        if call.verb == "create":
            if call.subresource:
                raise ApiError(405, "MethodNotAllowed", "create is not allowed on a subresource")
            return 201, store.create(rt, version, ns, body, dry_run=dry_run, strict=strict)
        if call.verb == "update":
            return 200, store.replace(rt, version, ns, call.name, body, subresource=call.subresource or None,
                                      dry_run=dry_run, strict=strict)
        if call.verb == "patch":
            patcher = _PATCHERS.get(call.content_type)
            if patcher is None or (rt.custom and patcher is strategic_merge):
                raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an "
                               "unknown format - accepted media types include: "
                               "application/json-patch+json, application/merge-patch+json"
                               + ("" if rt.custom else ", application/strategic-merge-patch+json"))
            return 200, store.patch(rt, version, ns, call.name, lambda cur: patcher(cur, body),
                                    subresource=call.subresource or None, dry_run=dry_run, strict=strict)
        if call.verb == "delete":
            options = body if isinstance(body, dict) else {}
            pre = options.get("preconditions") or {}
            gone = store.delete(rt, ns, call.name, uid=pre.get("uid"),
                                resource_version=pre.get("resourceVersion"),
                                propagation=options.get("propagationPolicy") or query.get("propagationPolicy"))
            if rt.custom:  # custom resources answer with the deleted object
                return 200, store._out(rt, version, gone)
            return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                         "details": {"name": call.name, "group": rt.group, "kind": rt.plural,
                                     "uid": gone["metadata"]["uid"]}}
        raise ApiError(405, "MethodNotAllowed", f"{call.verb} is not supported by the stand-in")

    def _watch(self, call: Call, version: str, query: dict[str, str]) -> None:
        store = self.standin.store
        rt = store.lookup(call.group, version, call.plural)
        labels = parse_label_selector(query.get("labelSelector"))
        fields = parse_field_selector(query.get("fieldSelector"))
        deadline = time.monotonic() + float(query.get("timeoutSeconds") or 1800)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def send(kind: str, obj: dict[str, Any]) -> None:
            data = json.dumps({"type": kind, "object": obj}).encode() + b"\n"
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def match(obj: dict[str, Any] | None) -> bool:
            return obj is not None and labels_match(labels, obj) and fields_match(fields, obj)

        rv = query.get("resourceVersion") or "0"
        if rv == "0":
            items, current = store.list(rt, version, call.namespace or None, labels, fields)
            for item in items:
                send("ADDED", item)
            after = int(current)
        else:
            after = int(rv)
            if after < store.oldest_event_rv() - 1:
                send("ERROR", ApiError(410, "Expired", f"too old resource version: {after}").status())
                after = -1
        while after >= 0 and time.monotonic() < deadline and not store.closed:
            for event in store.wait_events(after, deadline):
                after = event.rv
                if event.rt != rt or (call.namespace and event.namespace != call.namespace):
                    continue
                now, was = match(event.obj), match(event.old)
                if event.type == "DELETED":
                    kind = "DELETED" if was else ""
                else:
                    kind = ("MODIFIED" if was else "ADDED") if now else ("DELETED" if was else "")
                if kind:
                    send(kind, store._out(rt, version, event.obj))
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
