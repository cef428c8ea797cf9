"""Pure functions over Istio VirtualService / DestinationRule specs (no I/O).

The user's VirtualService is recorded, before our first change, as JSON in an annotation on
the VirtualService itself: the record and the change land in one write, so there is never a
modified route without a way back, and a reconcile after a crash finds it where it looks.
"""

from __future__ import annotations

import json
from typing import Any

from canary.errors import ConfigError, PlatformError
from canary.values.weights import Weights

from .manifests import LEGACY_ORIGINAL_ANNOTATION, ORIGINAL_ANNOTATION, TRACKS, managed_labels

SUBSETS = ("primary", *TRACKS)


def record(obj: dict[str, Any]) -> str:
    """The parts of ``obj`` a restore puts back, as they were: labels, annotations, spec."""
    meta = obj.get("metadata", {})
    return json.dumps({"labels": meta.get("labels"), "annotations": meta.get("annotations"),
                       "spec": obj.get("spec")}, separators=(",", ":"))


def recorded(obj: dict[str, Any]) -> str | None:
    annotations = obj.get("metadata", {}).get("annotations") or {}
    return annotations.get(ORIGINAL_ANNOTATION) or annotations.get(LEGACY_ORIGINAL_ANNOTATION)


def with_record(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` carrying its own original, unless it already does (a crashed run's record wins)."""
    if recorded(obj) is None:
        text = record(obj)
        obj["metadata"]["annotations"] = {**(obj["metadata"].get("annotations") or {}),
                                          ORIGINAL_ANNOTATION: text}
    return obj


def restored(obj: dict[str, Any]) -> dict[str, Any] | None:
    """``obj`` with the recorded labels, annotations and spec back; None if nothing recorded."""
    text = recorded(obj)
    if text is None:
        return None
    original = json.loads(text)
    for field in ("labels", "annotations"):
        if original[field] is None:
            obj["metadata"].pop(field, None)
        else:
            obj["metadata"][field] = original[field]
    obj["spec"] = original["spec"]
    return obj


def matches_record(obj: dict[str, Any], text: str) -> bool:
    """True when ``obj`` is byte for byte what ``text`` recorded (same JSON, same key order)."""
    return record(obj) == text


def managed_routes(spec: dict[str, Any], names: tuple[str, ...] | None, host: str | None,
                   vs_name: str, app: str = "") -> tuple[list[int], str]:
    """Indexes of the HTTP routes to split, and the host their destinations use.

    Named routes when ``names`` is given; otherwise every route whose destinations all go to
    one host: ``host`` if given, else the only such host, else the one named like ``app``.
    """
    http = spec.get("http") or []
    if names:
        by_name = {route.get("name"): i for i, route in enumerate(http)}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise ConfigError(f"VirtualService {vs_name!r} has no HTTP route named {missing}")
        indexes = [by_name[n] for n in names]
    else:
        by_host: dict[str, list[int]] = {}
        for i, route in enumerate(http):
            hosts = {d.get("destination", {}).get("host") for d in route.get("route") or []}
            if len(hosts) == 1 and (host is None or hosts == {host}):
                by_host.setdefault(hosts.pop(), []).append(i)
        if len(by_host) > 1 and app:  # the app's own Service, by the usual naming
            by_host = {h: i for h, i in by_host.items() if h == app or h.startswith(f"{app}.")} or by_host
        if len(by_host) > 1:
            raise ConfigError(f"VirtualService {vs_name!r} routes to several hosts "
                              f"({sorted(by_host)}); say which one to split (host=) or name the routes")
        indexes = next(iter(by_host.values()), [])
    hosts = {d.get("destination", {}).get("host") for i in indexes for d in http[i].get("route") or []}
    if not indexes or len(hosts) != 1:
        raise ConfigError(f"VirtualService {vs_name!r}: no HTTP route sends all its traffic to one "
                          f"host{f' {host!r}' if host else ''}; name the routes to split (routes=)")
    return indexes, str(hosts.pop())


def _port(route: dict[str, Any]) -> dict[str, Any] | None:
    for destination in route.get("route") or []:
        if "port" in destination.get("destination", {}):
            port: dict[str, Any] = destination["destination"]["port"]
            return port
    return None


def split(route: dict[str, Any], host: str, weights: Weights, mirror: bool = False) -> dict[str, Any]:
    """The HTTP route with its destinations replaced by our subsets.

    Weighted (the default): one destination per track with a share (zero shares left out).
    Mirrored: every live request goes to primary, and baseline and canary each get a copy
    of their share of the requests (Istio ``mirrors``; the copies' responses are dropped),
    so users never see a canary response while both sides are judged on the same traffic.
    """
    port = _port(route)

    def destination(subset: str) -> dict[str, Any]:
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


def apply_weights(spec: dict[str, Any], indexes: list[int], host: str, weights: Weights,
                  mirror: bool = False) -> dict[str, Any]:
    http = list(spec["http"])
    for i in indexes:
        http[i] = split(http[i], host, weights, mirror)
    return {**spec, "http": http}


def weights_of(spec: dict[str, Any], indexes: list[int], vs_name: str) -> Weights:
    """The split the managed routes carry; a destination without a subset counts as primary
    (the user's own route: the Service decides, no split is in force); a mirrored copy to
    baseline or canary counts as that track's share."""
    found = set()
    for i in indexes:
        shares = dict.fromkeys(SUBSETS, 0)
        destinations = spec["http"][i].get("route") or []
        for d in destinations:
            subset = d.get("destination", {}).get("subset") or "primary"
            if subset not in shares:
                raise PlatformError(f"VirtualService {vs_name!r} routes to unknown subset {subset!r}",
                                    transient=False)
            shares[subset] += d.get("weight", 100 if len(destinations) == 1 else 0)
        for copy in spec["http"][i].get("mirrors") or []:  # mirrored shares come out of primary's
            subset = copy.get("destination", {}).get("subset")
            if subset in TRACKS:
                share = int(round((copy.get("percentage") or {}).get("value", 100)))
                shares[subset] += share
                shares["primary"] -= share
        found.add((shares["primary"], shares["baseline"], shares["canary"]))
    if len(found) != 1:
        raise PlatformError(f"VirtualService {vs_name!r}: its routes disagree on the split {sorted(found)}",
                            transient=False)
    primary, baseline, canary = found.pop()
    try:
        return Weights(primary=primary, baseline=baseline, canary=canary)
    except ConfigError as error:
        raise PlatformError(f"VirtualService {vs_name!r} carries an invalid split: {error}",
                            transient=False) from None


def subsets(track_label: str, primary_track: str) -> list[dict[str, Any]]:
    tracks = {"primary": primary_track, "baseline": "baseline", "canary": "canary"}
    return [{"name": s, "labels": {track_label: tracks[s]}} for s in SUBSETS]


def with_subsets(spec: dict[str, Any], wanted: list[dict[str, Any]]) -> dict[str, Any]:
    """A DestinationRule spec with our subsets in place and the user's other subsets kept."""
    names = {s["name"] for s in wanted}
    return {**spec, "subsets": [s for s in spec.get("subsets") or [] if s.get("name") not in names] + wanted}


def added_subsets(spec: dict[str, Any], wanted: list[dict[str, Any]], dr_name: str) -> list[str]:
    """The names of ``wanted`` subsets a user's DestinationRule lacks (what we add, and later
    remove); refuses a subset of theirs that has one of our names but other labels."""
    present = {s.get("name"): s for s in spec.get("subsets") or []}
    for subset in wanted:
        theirs = present.get(subset["name"])
        if theirs is not None and theirs.get("labels") != subset["labels"]:
            raise ConfigError(
                f"DestinationRule {dr_name!r} already has a subset {subset['name']!r} selecting "
                f"{theirs.get('labels')}; the canary needs that name for {subset['labels']}: rename "
                "the subset in your DestinationRule (or leave destination_rule unset to use our own)")
    return [s["name"] for s in wanted if s["name"] not in present]


def without_subsets(spec: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """The spec with the named subsets (ours) removed and every other field left as it is."""
    kept = [s for s in spec.get("subsets") or [] if s.get("name") not in names]
    new = {key: value for key, value in spec.items() if key != "subsets"}
    if kept:
        new["subsets"] = kept
    return new


def has_subsets(spec: dict[str, Any], wanted: list[dict[str, Any]]) -> bool:
    present = spec.get("subsets") or []
    return all(any(p.get("name") == w["name"] and p.get("labels") == w["labels"] for p in present)
               for w in wanted)


def destination_rule(app: str, name: str, host: str, api_version: str,
                     wanted: list[dict[str, Any]]) -> dict[str, Any]:
    """The DestinationRule we own when the user has none to extend."""
    return {"apiVersion": api_version, "kind": "DestinationRule",
            "metadata": {"name": name, "labels": managed_labels(app)},
            "spec": {"host": host, "subsets": wanted}}
