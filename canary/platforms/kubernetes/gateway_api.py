"""``GatewayApiRouter``: traffic split by track through an HTTPRoute's ``backendRefs``.

The user's HTTPRoute keeps everything but the ``backendRefs`` of the rules we split (and, for
``traffic: mirror``, our own ``RequestMirror`` filters appended to those rules' filters): its
parent refs, hostnames, matches, filters and other rules are never written. The split names
per-track Services (``<app>-primary``, ``<app>-baseline``, ``<app>-canary``, copies of the
app's Service selecting one track each; ``workloads.TrackServices``), and a Service exists
before any rule names it. As with Istio (istio.py), every step is read back; a roll back is
100 % primary, verified; ``restore`` puts the user's HTTPRoute back byte for byte from the
record taken in the first write (routes.with_record), verifies it, and only then removes the
per-track Services.
"""

from __future__ import annotations

import json

from canary.errors import ConfigError, PlatformError
from canary.values.weights import Weights

from . import recorded, routes
from .client import DEPLOYMENT, Kind, KubeClient
from .manifests import TRACK_LABEL, production_track
from .objects import JSON, entries, field, number, text, value
from .workloads import TrackServices

#: The tracks a split rule names, in the order its backendRefs list them.
TRACKS = ("primary", "baseline", "canary")
MIRROR = "RequestMirror"


def http_route_kind(version: str = "v1") -> Kind:
    """The Gateway API's HTTPRoute at API ``version``."""
    return Kind("HTTPRoute", "gateway.networking.k8s.io", version, "httproutes")


# -- pure: which rules, what they carry -----------------------------------------------------
def original_spec(route: JSON) -> JSON:
    """The spec the user wrote: the record's, once we changed the route; else the route's."""
    saved = routes.recorded(route)
    if saved is None:
        return field(route, "spec")
    original: object = json.loads(saved)
    return field(original, "spec")


def _is_service(ref: JSON, service: str) -> bool:
    return (text(ref, "name") == service and text(ref, "group") == ""
            and text(ref, "kind", default="Service") == "Service" and "namespace" not in ref)


def managed_rules(spec: JSON, rule: str | int | None, service: str, route: str) -> list[int]:
    """Indexes of the rules to split: the named or indexed one, else every rule whose one
    backendRef is the Service ``service``.

    Raises:
        ConfigError: no such rule, or it does not send all its traffic to ``service``.
    """
    rules = entries(spec, "rules")
    if rule is None:
        indexes = [i for i, r in enumerate(rules) if _sends_to(r, service)]
    elif isinstance(rule, int):
        indexes = [rule] if rule < len(rules) else []
    else:
        indexes = [i for i, r in enumerate(rules) if r.get("name") == rule]
    if not indexes:
        which = f"rule {rule!r}" if rule is not None else "rule"
        raise ConfigError(f"HTTPRoute {route!r} has no {which} sending its traffic to Service "
                          f"{service!r}; name the rule (router.rule) and the Service (router.service)")
    for i in indexes:
        if not _sends_to(rules[i], service):
            raise ConfigError(f"HTTPRoute {route!r} rule {i} does not send all its traffic to the "
                              f"one Service {service!r} (one backendRef, in this namespace)")
    return indexes


def _sends_to(rule: JSON, service: str) -> bool:
    refs = entries(rule, "backendRefs")
    return len(refs) == 1 and _is_service(refs[0], service)


def _is_ours(ref: object, app: str, tracks: tuple[str, ...] = TRACKS) -> str | None:
    """The track a backendRef or mirror target of ours names, else None."""
    name = text(ref, "name")
    return next((t for t in tracks if name == f"{app}-{t}"), None)


def split_rule(rule: JSON, original: JSON, app: str, weights: Weights, mirror: bool) -> JSON:
    """The rule with its backendRefs over our per-track Services (zero shares left out).

    ``original`` is the user's one backendRef (its port, group, kind and filters are kept on
    ours). Mirrored: every live request goes to primary, and baseline and canary each get a
    ``RequestMirror`` filter with their share as ``percent`` (appended after the user's
    filters, which stay as they are, in their order).
    """
    base = {k: v for k, v in original.items() if k not in ("name", "namespace", "weight")}
    target: JSON = {k: original[k] for k in ("group", "kind", "port") if k in original}
    filters = [f for f in entries(rule, "filters")
               if not (f.get("type") == MIRROR and _is_ours(value(f, "requestMirror", "backendRef"), app))]
    shares = dict(zip(TRACKS, (weights.primary, weights.baseline, weights.canary), strict=True))
    if mirror:
        for t in ("baseline", "canary"):
            mirror_ref: JSON = {**target, "name": f"{app}-{t}"}
            if shares[t]:
                filters.append({"type": MIRROR,
                                "requestMirror": {"backendRef": mirror_ref, "percent": shares[t]}})
        shares = {"primary": 100}
    new = {**rule, "backendRefs": [{**base, "name": f"{app}-{t}", "weight": w}
                                   for t, w in shares.items() if w]}
    if filters:
        new["filters"] = filters
    else:
        new.pop("filters", None)
    return new


def apply_weights(spec: JSON, indexes: list[int], original: JSON, app: str, weights: Weights,
                  mirror: bool = False) -> JSON:
    """The HTTPRoute spec with the rules at ``indexes`` split (see split_rule)."""
    rules = entries(spec, "rules")
    for i in indexes:
        rules[i] = split_rule(rules[i], original, app, weights, mirror)
    return {**spec, "rules": rules}


def _percent(mirror: JSON) -> int:
    if "percent" in mirror:
        return number(mirror, "percent")
    fraction = field(mirror, "fraction")
    if fraction:
        return round(100 * number(fraction, "numerator") / (number(fraction, "denominator") or 100))
    return 100


def weights_of(spec: JSON, indexes: list[int], app: str, route: str) -> Weights:
    """The split the managed rules carry: each backendRef's share of the weights (the user's
    own Service counts as primary), a mirrored copy to baseline or canary as that track's.

    Raises:
        PlatformError: the rules disagree, or carry no valid split.
    """
    found = set()
    rules = entries(spec, "rules")
    for i in indexes:
        shares = dict.fromkeys(TRACKS, 0)
        refs = entries(rules[i], "backendRefs")
        total = sum(number(r, "weight", default=1) for r in refs)
        for ref in refs:
            track = _is_ours(ref, app) or "primary"
            shares[track] += round(100 * number(ref, "weight", default=1) / total) if total else 0
        for f in entries(rules[i], "filters"):
            copied = _is_ours(value(f, "requestMirror", "backendRef"), app, ("baseline", "canary"))
            if f.get("type") == MIRROR and copied:
                share = _percent(field(f, "requestMirror"))
                shares[copied] += share
                shares["primary"] -= share
        found.add((shares["primary"], shares["baseline"], shares["canary"]))
    return routes.agreed_split(found, f"HTTPRoute {route!r}", "rules")


# -- the adapter ------------------------------------------------------------------------------
class GatewayApiRouter:
    """TrafficRouter port over an existing HTTPRoute (default name: the app's).

    ``rule``: the rule to split, by name or index (default: every rule whose one backendRef
    is ``service``); ``service``: the Service those rules send to (default: the app's), which
    the per-track Services copy; ``mirror``: live traffic stays 100 % on primary, baseline
    and canary get mirrored copies of their shares; ``track_label``: the pod label the
    per-track Services select on.
    """

    def __init__(self, client: KubeClient, *, http_route: str | None = None,
                 rule: str | int | None = None, service: str | None = None,
                 mirror: bool = False, track_label: str = TRACK_LABEL,
                 api_version: str = "v1") -> None:
        """Bind the client and the app's options (see the class docstring)."""
        self.client = client
        self.http_route = http_route
        self.rule = rule
        self.service = service
        self.mirror = mirror
        self.track_label = track_label
        self.kind = http_route_kind(api_version)
        self.services = TrackServices(client, track_label)

    # -- the port -------------------------------------------------------------------------
    def set_weights(self, app: str, weights: Weights) -> None:
        """Make sure the Services named exist, write the weights, verify them by reading back.

        Raises:
            ConfigError: no HTTPRoute, rule, Service or production Deployment to work with.
            PlatformError: the route does not hold what was written.
        """
        name, service = self._name(app), self._service(app)
        indexes, original = self._managed(app, self._read(app))
        self._ensure_services(app, service, weights)

        def mutate(current: JSON) -> JSON:
            current = routes.with_record(current)
            current["spec"] = apply_weights(field(current, "spec"), indexes, original, app,
                                            weights, self.mirror)
            return current

        self.client.update(self.kind, name, mutate)
        back = field(self._read(app), "spec")
        wanted = apply_weights(back, indexes, original, app, weights, self.mirror)
        if back != wanted or weights_of(back, indexes, app, name) != weights:
            raise PlatformError(f"HTTPRoute {name!r} does not hold the weights just written "
                                f"({weights}); is another controller (Argo CD, Flux) reverting it?",
                                transient=False)

    def read_weights(self, app: str) -> Weights:
        """The split the app's managed rules carry now, read from the HTTPRoute."""
        route = self._read(app)
        indexes, _ = self._managed(app, route)
        return weights_of(field(route, "spec"), indexes, app, self._name(app))

    def rollback(self, app: str) -> None:
        """All traffic to production (no mirroring), verified by reading back; idempotent."""
        self.set_weights(app, Weights.all_primary())

    def restore(self, app: str) -> None:
        """Put the user's HTTPRoute back as recorded, verify it, then drop the per-track
        Services. Idempotent; call it after baseline and canary are deleted.

        Raises:
            PlatformError: the route does not match the record after restoring it.
        """
        recorded.restore(self.client, self.kind, self._name(app))
        for track in TRACKS:
            self.services.remove(app, track)

    # -- helpers --------------------------------------------------------------------------
    def _name(self, app: str) -> str:
        return self.http_route or app

    def _service(self, app: str) -> str:
        return self.service or app

    def _read(self, app: str) -> JSON:
        route = self.client.get(self.kind, self._name(app))
        if route is None:
            raise ConfigError(f"HTTPRoute {self._name(app)!r} not found in namespace "
                              f"{self.client.namespace!r}; the router edits the app's existing one")
        return route

    def _managed(self, app: str, route: JSON) -> tuple[list[int], JSON]:
        """The managed rules' indexes, and the user's backendRef they all had."""
        spec = original_spec(route)
        indexes = managed_rules(spec, self.rule, self._service(app), self._name(app))
        return indexes, entries(entries(spec, "rules")[indexes[0]], "backendRefs")[0]

    def _ensure_services(self, app: str, service: str, weights: Weights) -> None:
        production = self.client.get(DEPLOYMENT, app)
        if production is None:
            raise ConfigError(f"production Deployment {app!r} not found; the {app}-primary "
                              "Service selects its pods")
        self.services.ensure(app, "primary", service, production_track(production, self.track_label))
        for track, share in (("baseline", weights.baseline), ("canary", weights.canary)):
            if share:
                self.services.ensure(app, track, service, track)
