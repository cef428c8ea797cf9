"""Pure functions over Istio VirtualService / DestinationRule specs (no I/O).

The user's VirtualService is recorded, before our first change, as JSON in an annotation on
the VirtualService itself: the record and the change land in one write, so there is never a
modified route without a way back, and a reconcile after a crash finds it where it looks.
"""

from __future__ import annotations

import json

from canary.errors import ConfigError, PlatformError
from canary.values.weights import Weights

from .manifests import LEGACY_ORIGINAL_ANNOTATION, ORIGINAL_ANNOTATION, TRACKS, managed_labels
from .objects import JSON, child, entries, field, maybe_text, number, text, value

SUBSETS = ("primary", *TRACKS)


def record(obj: JSON) -> str:
    """The parts of ``obj`` a restore puts back, as they were: labels, annotations, spec."""
    meta = field(obj, "metadata")
    return json.dumps({"labels": meta.get("labels"), "annotations": meta.get("annotations"),
                       "spec": obj.get("spec")}, separators=(",", ":"))


def recorded(obj: JSON) -> str | None:
    """The record ``with_record`` left on ``obj`` (JSON text), None if there is none."""
    annotations = field(obj, "metadata", "annotations")
    found = annotations.get(ORIGINAL_ANNOTATION) or annotations.get(LEGACY_ORIGINAL_ANNOTATION)
    return found if isinstance(found, str) else None


def with_record(obj: JSON) -> JSON:
    """``obj`` carrying its own original, unless it already does (a crashed run's record wins)."""
    if recorded(obj) is None:
        original = record(obj)
        meta = child(obj, "metadata")
        meta["annotations"] = {**field(meta, "annotations"), ORIGINAL_ANNOTATION: original}
    return obj


def restored(obj: JSON) -> JSON | None:
    """``obj`` with the recorded labels, annotations and spec back; None if nothing recorded."""
    saved = recorded(obj)
    if saved is None:
        return None
    original: object = json.loads(saved)
    meta = child(obj, "metadata")
    for name in ("labels", "annotations"):
        found = value(original, name)
        if found is None:
            meta.pop(name, None)
        else:
            meta[name] = found
    obj["spec"] = value(original, "spec")
    return obj


def matches_record(obj: JSON, saved: str) -> bool:
    """True when ``obj`` is byte for byte what ``saved`` recorded (same JSON, same key order)."""
    return record(obj) == saved


def _host(destination: JSON) -> str | None:
    return maybe_text(destination, "destination", "host")


def managed_routes(spec: JSON, names: tuple[str, ...] | None, host: str | None,
                   vs_name: str, app: str = "") -> tuple[list[int], str]:
    """Indexes of the HTTP routes to split, and the host their destinations use.

    Named routes when ``names`` is given; otherwise every route whose destinations all go to
    one host: ``host`` if given, else the only such host, else the one named like ``app``.
    """
    http = entries(spec, "http")
    if names:
        by_name = {route.get("name"): i for i, route in enumerate(http)}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise ConfigError(f"VirtualService {vs_name!r} has no HTTP route named {missing}")
        indexes = [by_name[n] for n in names]
    else:
        by_host: dict[str | None, list[int]] = {}
        for i, route in enumerate(http):
            hosts = {_host(d) for d in entries(route, "route")}
            if len(hosts) == 1 and (host is None or hosts == {host}):
                by_host.setdefault(hosts.pop(), []).append(i)
        if len(by_host) > 1 and app:  # the app's own Service, by the usual naming
            by_host = {h: i for h, i in by_host.items()
                       if h is not None and (h == app or h.startswith(f"{app}."))} or by_host
        if len(by_host) > 1:
            raise ConfigError(f"VirtualService {vs_name!r} routes to several hosts "
                              f"({sorted(by_host, key=str)}); say which one to split (host=) or name the routes")
        indexes = next(iter(by_host.values()), [])
    hosts = {_host(d) for i in indexes for d in entries(http[i], "route")}
    if not indexes or len(hosts) != 1:
        raise ConfigError(f"VirtualService {vs_name!r}: no HTTP route sends all its traffic to one "
                          f"host{f' {host!r}' if host else ''}; name the routes to split (routes=)")
    return indexes, str(hosts.pop())


def _port(route: JSON) -> object:
    for destination in entries(route, "route"):
        if "port" in field(destination, "destination"):
            return value(destination, "destination", "port")
    return None


def split(route: JSON, host: str, weights: Weights, mirror: bool = False) -> JSON:
    """The HTTP route with its destinations replaced by our subsets.

    Weighted (the default): one destination per track with a share (zero shares left out).
    Mirrored: every live request goes to primary, and baseline and canary each get a copy
    of their share of the requests (Istio ``mirrors``; the copies' responses are dropped),
    so users never see a canary response while both sides are judged on the same traffic.
    """
    port = _port(route)

    def destination(subset: str) -> JSON:
        return {"host": host, "subset": subset, **({"port": port} if port is not None else {})}

    new = {key: value for key, value in route.items() if key not in ("mirror", "mirrorPercentage", "mirrors")}
    if mirror:
        new["route"] = [{"destination": destination("primary"), "weight": 100}]
        copies = [{"destination": destination(subset), "percentage": {"value": float(share)}}
                  for subset, share in (("baseline", weights.baseline), ("canary", weights.canary)) if share]
        if copies:
            new["mirrors"] = copies
        return new
    new["route"] = [{"destination": destination(subset), "weight": weight}
                    for subset, weight in zip(SUBSETS, (weights.primary, weights.baseline, weights.canary),
                                              strict=True) if weight]
    return new


def apply_weights(spec: JSON, indexes: list[int], host: str, weights: Weights,
                  mirror: bool = False) -> JSON:
    """The VirtualService spec with the routes at ``indexes`` split by ``weights`` (see split)."""
    http = entries(spec, "http")
    for i in indexes:
        http[i] = split(http[i], host, weights, mirror)
    return {**spec, "http": http}


def weights_of(spec: JSON, indexes: list[int], vs_name: str) -> Weights:
    """The split the managed routes carry; a destination without a subset counts as primary
    (the user's own route: the Service decides, no split is in force); a mirrored copy to
    baseline or canary counts as that track's share."""
    found = set()
    http = entries(spec, "http")
    for i in indexes:
        shares = dict.fromkeys(SUBSETS, 0)
        destinations = entries(http[i], "route")
        for d in destinations:
            subset = text(d, "destination", "subset") or "primary"
            if subset not in shares:
                raise PlatformError(f"VirtualService {vs_name!r} routes to unknown subset {subset!r}",
                                    transient=False)
            shares[subset] += number(d, "weight", default=100 if len(destinations) == 1 else 0)
        for copy in entries(http[i], "mirrors"):  # mirrored shares come out of primary's
            subset = text(copy, "destination", "subset")
            if subset in TRACKS:
                percent = field(copy, "percentage").get("value", 100)
                share = int(round(percent if isinstance(percent, int | float) else 100))
                shares[subset] += share
                shares["primary"] -= share
        found.add((shares["primary"], shares["baseline"], shares["canary"]))
    return agreed_split(found, f"VirtualService {vs_name!r}", "routes")


def agreed_split(found: set[tuple[int, int, int]], what: str, parts: str) -> Weights:
    """The one split every managed route (or rule) of `what` carries.

    Args:
        found: The (primary, baseline, canary) shares each route carries.
        what: The object, as errors name it (``HTTPRoute 'shop'``).
        parts: What its routes are called (``routes``, ``rules``).

    Raises:
        PlatformError: They disagree, or carry shares that are no split.
    """
    if len(found) != 1:
        raise PlatformError(f"{what}: its {parts} disagree on the split {sorted(found)}", transient=False)
    primary, baseline, canary = next(iter(found))
    try:
        return Weights(primary=primary, baseline=baseline, canary=canary)
    except ConfigError as error:
        raise PlatformError(f"{what} carries an invalid split: {error}", transient=False) from None


def subsets(track_label: str, primary_track: str) -> list[JSON]:
    """Our three subsets (primary, baseline, canary), each selecting its track's pods."""
    tracks = {"primary": primary_track, "baseline": "baseline", "canary": "canary"}
    return [{"name": s, "labels": {track_label: tracks[s]}} for s in SUBSETS]


def with_subsets(spec: JSON, wanted: list[JSON]) -> JSON:
    """A DestinationRule spec with our subsets in place and the user's other subsets kept."""
    names = {s["name"] for s in wanted}
    return {**spec, "subsets": [s for s in entries(spec, "subsets") if s.get("name") not in names] + wanted}


def added_subsets(spec: JSON, wanted: list[JSON], dr_name: str) -> list[str]:
    """The names of ``wanted`` subsets a user's DestinationRule lacks (what we add, and later
    remove); refuses a subset of theirs that has one of our names but other labels."""
    present = {s.get("name"): s for s in entries(spec, "subsets")}
    for subset in wanted:
        theirs = present.get(subset["name"])
        if theirs is not None and theirs.get("labels") != subset["labels"]:
            raise ConfigError(
                f"DestinationRule {dr_name!r} already has a subset {subset['name']!r} selecting "
                f"{theirs.get('labels')}; the canary needs that name for {subset['labels']}: rename "
                "the subset in your DestinationRule (or leave destination_rule unset to use our own)")
    return [str(s["name"]) for s in wanted if s["name"] not in present]


def without_subsets(spec: JSON, names: list[str]) -> JSON:
    """The spec with the named subsets (ours) removed and every other field left as it is."""
    kept = [s for s in entries(spec, "subsets") if s.get("name") not in names]
    new = {key: value for key, value in spec.items() if key != "subsets"}
    if kept:
        new["subsets"] = kept
    return new


def has_subsets(spec: JSON, wanted: list[JSON]) -> bool:
    """True when the DestinationRule spec has every ``wanted`` subset, labels and all."""
    present = entries(spec, "subsets")
    return all(any(p.get("name") == w["name"] and p.get("labels") == w["labels"] for p in present)
               for w in wanted)


def destination_rule(app: str, name: str, host: str, api_version: str,
                     wanted: list[JSON]) -> JSON:
    """The DestinationRule we own when the user has none to extend."""
    return {"apiVersion": api_version, "kind": "DestinationRule",
            "metadata": {"name": name, "labels": managed_labels(app)},
            "spec": {"host": host, "subsets": wanted}}
