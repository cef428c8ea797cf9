"""A user's Gateway API objects for the tests: the app's Service and its HTTPRoute, with a
header-matched rule carrying a RequestHeaderModifier filter, a default rule, and a rule to
another Service that must never be touched; and how to compare them minus the weights."""

from __future__ import annotations

import copy
import json
from typing import Any

from canary.platforms.kubernetes.gateway_api import http_route_kind
from canary.platforms.kubernetes.manifests import ORIGINAL_ANNOTATION
from tests.support.kube import Namespace

from .conftest import APP

HTTP_ROUTE = http_route_kind()
#: the rules the router splits (by default: every rule whose one backendRef is the app's)
SPLIT_RULES = ("beta", "default")


def user_service(name: str = APP) -> dict[str, Any]:
    """The app's Service, selecting production's pods without the track label."""
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "labels": {"team": "shop"}},
            "spec": {"selector": {"app": name},
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}


def user_http_route() -> dict[str, Any]:
    """The user's HTTPRoute: parent refs, hostnames, a header-matched rule with a filter of
    theirs, the default rule, and a rule to another Service."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": APP, "labels": {"team": "shop"},
                     "annotations": {"owner": "shop-team", "note": "kept as is"}},
        "spec": {
            "parentRefs": [{"name": "shop-gateway", "sectionName": "https"}],
            "hostnames": ["goldengoose.example.com"],
            "rules": [
                {"name": "admin", "matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}],
                 "backendRefs": [{"name": "admin-console", "port": 80}]},
                {"name": "beta",
                 "matches": [{"headers": [{"name": "x-beta", "value": "1"}]}],
                 "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {
                     "add": [{"name": "x-served-by", "value": "beta"}], "remove": ["x-debug"]}}],
                 "backendRefs": [{"name": APP, "port": 80}],
                 "timeouts": {"request": "5s"}},
                {"name": "default", "backendRefs": [{"name": APP, "port": 80}]},
            ],
        },
    }


def seed_gateway(namespace: Namespace) -> dict[str, Any]:
    """The user's Service and HTTPRoute, created; the HTTPRoute as the server holds it."""
    namespace.seed(user_service())
    namespace.admin.create(HTTP_ROUTE, user_http_route())
    route = namespace.admin.get(HTTP_ROUTE, APP)
    assert route is not None
    return route


def read_route(namespace: Namespace) -> dict[str, Any]:
    """The HTTPRoute as the server holds it now (the admin's read)."""
    route = namespace.admin.get(HTTP_ROUTE, APP)
    assert route is not None
    return route


def minus_weights(route: dict[str, Any]) -> str:
    """Canonical JSON of what must never change: labels, the user's annotations (ours, the
    record, aside) and the spec without the split rules' backendRefs and our mirror filters."""
    view = copy.deepcopy(route)
    meta = view["metadata"]
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != ORIGINAL_ANNOTATION}
    for rule in view["spec"]["rules"]:
        if rule.get("name") in SPLIT_RULES:
            rule.pop("backendRefs", None)
            theirs = [f for f in rule.get("filters", []) if f["type"] != "RequestMirror"]
            rule.pop("filters", None)
            if theirs:
                rule["filters"] = theirs
    kept = {"name": meta["name"], "uid": meta["uid"], "labels": meta.get("labels"),
            "annotations": annotations, "spec": view["spec"]}
    return json.dumps(kept, sort_keys=True, separators=(",", ":"))


def backends(route: dict[str, Any]) -> set[tuple[tuple[str, int], ...]]:
    """The split rules' (Service, weight) lists, as a set (one entry when they agree)."""
    return {tuple((r["name"], r.get("weight", 1)) for r in rule["backendRefs"])
            for rule in route["spec"]["rules"] if rule.get("name") in SPLIT_RULES}
