"""The ReleasePolicy CRD, generated from the config models (one home: the pydantic models).

pydantic's JSON Schema of `ReleaseSpec` and `CanaryConfig` becomes a Kubernetes *structural*
schema: references inlined, optionals without their null branch, unions of objects merged
into one object, numbers' exclusive bounds in OpenAPI v3's form, durations as int-or-string,
free-form maps preserved. What the models check in code (validators) is added here as the
same limits or as CEL rules (`x-kubernetes-validations`), keyed by model and field; what CEL
cannot say is listed in canary.config.policy.NOT_IN_SCHEMA. `scripts/generate_crds.py`
writes the result to deployments/kubernetes/crds/releasepolicy.yaml, and a test keeps the
shipped file equal to `crd()`.
"""

from __future__ import annotations

from collections.abc import Mapping

import yaml

from canary.config import CanaryConfig
from canary.config.canary import DEFAULT_JUDGE, SEQUENTIAL_JUDGE
from canary.config.kubernetes import _LABEL, _SUBDOMAIN
from canary.config.policy import API_VERSION, DEFAULT_KEY, GROUP, KIND, PLURAL, SINGULAR, VERSION
from canary.config.query import KNOWN_STORES
from canary.config.release import ReleaseSpec
from canary.values.outcome import Outcome
from canary.values.release import _NAME

#: A JSON (Schema) object.
Node = dict[str, object]

#: parse_duration's forms: seconds, compact lengths (1h30m), ISO 8601 (PT5M; "P"/"PT" alone
#: are no duration, hence the extra conditions).
_NUMBER = r"^\d+(\.\d+)?$"
_COMPACT = r"^(\d+(\.\d+)?(ms|s|m|h|d))+$"
_ISO = r"^[Pp](\d+(\.\d+)?[Dd])?([Tt](\d+(\.\d+)?[Hh])?(\d+(\.\d+)?[Mm])?(\d+(\.\d+)?[Ss])?)?$"
_DURATION_RULE = (
    f"type(self) == int ? self >= 0 : (self.matches('{_NUMBER}') || self.matches('{_COMPACT}')"
    f" || (self.matches('{_ISO}') && size(self) > 1 && !self.endsWith('T') && !self.endsWith('t')))"
).replace("\\", "\\\\")
_DURATION_MESSAGE = ("not a duration; write seconds (90) or a length such as 90s, 5m, 1h30m "
                     "or PT5M (never negative)")  # fmt: skip

_PATH_RULE = (r"!self.startsWith('/') && !self.contains('\\') && "
              r"!self.split('/').exists(p, p == '..')")  # fmt: skip
_OBJECT_NAME: Node = {"pattern": f"^{_SUBDOMAIN.pattern}$", "maxLength": 253}


def _rule(rule: str, message: str) -> Node:
    return {"rule": rule, "message": message}


# -- CEL pieces over a metric `m` -------------------------------------------------------------
def _prometheus(m: str, counter: str) -> str:
    return f"(has({m}.query) && {m}.query.type == 'prometheus' && has({m}.query.{counter}))"


def _setting(m: str, key: str) -> str:
    canary = f"{m}.analysisConfigurations.canary"
    return f"(has({m}.analysisConfigurations) && has({canary}) && has({canary}.{key}))"


_COUNTS = f"({_prometheus('m', 'ratio')} || {_prometheus('m', 'histogram')})"
_MUTED = f"({_setting('m', 'muted')} && m.analysisConfigurations.canary.muted)"
_SEQUENTIAL = f"(has(self.judge) && has(self.judge.name) && self.judge.name == '{SEQUENTIAL_JUDGE}')"
_QUERY_KEYS = ("metricName", "customInlineTemplate", "customFilterTemplate", "customFilter")

#: CEL rules per model (by its schema name), as the model's validators say them.
RULES: dict[str, list[Node]] = {
    "Thresholds": [_rule("!has(self.pass) || !has(self.marginal) || self.marginal <= self.pass",
                         "marginal is above pass; marginal must be at most pass")],
    "ThresholdRange": [
        _rule("has(self.min) || has(self.max)", "thresholdRange needs min, max or both"),
        _rule("!has(self.min) || !has(self.max) || self.min <= self.max", "thresholdRange min is above max"),
    ],
    "PrometheusQuery": [
        _rule("self.type != 'prometheus' || !has(self.ratio) || !has(self.histogram)",
              "give ratio or histogram, not both"),
        _rule("self.type != 'prometheus' || !(has(self.ratio) || has(self.histogram)) || !("
              + " || ".join(f"has(self.{k})" for k in _QUERY_KEYS) + ")",
              "a ratio or histogram metric is read from its counters; remove " + ", ".join(_QUERY_KEYS)),
    ],
    "MetricConfig": [
        _rule(f"!{_setting('self', 'toleranceOn')} || {_prometheus('self', 'histogram')}",
              "analysisConfigurations.canary.toleranceOn applies to histogram metrics only: remove it"),
        _rule(f"!{_setting('self', 'safeRate')} || {_prometheus('self', 'ratio')}",
              "analysisConfigurations.canary.safeRate applies to ratio metrics only: remove it"),
        _rule(f"!{_setting('self', 'safeRate')} || ({_setting('self', 'direction')} && "
              "self.analysisConfigurations.canary.direction == 'increase')",
              "analysisConfigurations.canary.safeRate needs direction: increase"),
    ],
    "CanaryConfig": [
        _rule(f"!{_SEQUENTIAL} || !has(self.metrics) || self.metrics.all(m, {_COUNTS} || {_MUTED})",
              f"the {SEQUENTIAL_JUDGE} judge decides on ratio or histogram metrics only: give each "
              "metric counters, or mute it"),
        _rule(f"{_SEQUENTIAL} || !has(self.metrics) || self.metrics.all(m, !{_COUNTS})",
              f"ratio and histogram metrics need judge.name {SEQUENTIAL_JUDGE}"),
    ],
    "AnalysisPlan": [
        _rule("type(self.lifetime) != int || self.lifetime > 0", "lifetime must be longer than 0"),
        _rule("!has(self.step) || type(self.step) != int || self.step >= 1",
              "step must be a whole number of seconds, at least 1"),
    ],
}

#: Extra schema per (model, property): the limits its field validators check in code.
FIELDS: dict[tuple[str, str], Node] = {
    ("ReleaseSpec", "app"): {"pattern": f"^{_NAME.pattern}$", "maxLength": 63},
    ("ReleaseSpec", "manual_gates"): {"items": {"type": "integer", "minimum": 1}},
    ("TrafficPlan", "steps"): {"minItems": 1, "items": {"type": "integer", "minimum": 1, "maximum": 50}},
    ("IstioOptions", "virtual_service"): _OBJECT_NAME,
    ("IstioOptions", "host"): _OBJECT_NAME,
    ("IstioOptions", "destination_rule"): _OBJECT_NAME,
    ("IstioOptions", "routes"): {"x-kubernetes-list-type": "set",
                                 "items": {"type": "string", "pattern": r"\S"}},
    ("GatewayApiOptions", "http_route"): _OBJECT_NAME,
    ("GatewayApiOptions", "service"): _OBJECT_NAME,
    ("GatewayApiOptions", "rule"): {"x-kubernetes-validations": [_rule(
        "type(self) == int ? self >= 0 && self < 16 : (size(self) <= 253 && "
        "self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$'))",
        "must be a rule index 0 to 15, or a rule name (lowercase letters, digits, '-' and '.')")]},
    ("KubernetesRelease", "container"): {"pattern": f"^{_LABEL.pattern}$"},
    ("KubernetesRelease", "dockerfile"): {"minLength": 1, "maxLength": 1024, "x-kubernetes-validations": [
        _rule(_PATH_RULE, "must be a relative path inside the repository, without '..'")]},
    ("KubernetesRelease", "context"): {"minLength": 1, "maxLength": 1024, "x-kubernetes-validations": [
        _rule(_PATH_RULE, "must be a relative path inside the repository, without '..'")]},
    ("CanaryConfig", "name"): {"minLength": 1},
    ("CanaryConfig", "metrics"): {"maxItems": 200, "x-kubernetes-list-type": "map",
                                  "x-kubernetes-list-map-keys": ["name"]},
    ("CanaryConfig", "judge"): {"default": {}},
    ("JudgeConfig", "name"): {"default": DEFAULT_JUDGE},
}
#: Properties the models accept that a policy has no use for (or gives elsewhere).
DROPPED = {
    "ReleaseSpec": ("canary_config", "source"),
    "AnalysisPlan": ("end_time", "start_time"),  # a release analyses live traffic (ReleaseSpec)
}
#: Properties a policy must give, beyond the models' own required ones.
REQUIRED = {"AnalysisPlan": ["lifetime"], "CanaryConfig": ["name"], "ReleaseSpec": ["app"]}
#: JSON Schema keys that carry over unchanged.
_KEPT = ("type", "enum", "format", "pattern", "minLength", "maxLength", "minimum", "maximum",
         "minItems", "maxItems")  # fmt: skip


def _description(node: Mapping[str, object]) -> Node:
    text = node.get("description")
    return {"description": str(text).split("\n\n")[0].replace("\n", " ")} if text else {}


def _bound(out: Node, node: Mapping[str, object], key: str, plain: str) -> None:
    """JSON Schema 2020's numeric exclusive bound as OpenAPI v3's (bound + true)."""
    if key in node:
        out[plain], out[key] = node[key], True


class _Converter:
    """JSON Schema (pydantic's, with $defs) to a structural schema."""

    def __init__(self, schema: Mapping[str, object], renames: Mapping[str, str]) -> None:
        defs = schema.get("$defs")
        self.defs: Mapping[str, object] = defs if isinstance(defs, Mapping) else {}
        self.renames = renames

    def node(self, node: Mapping[str, object], model: str = "") -> Node:
        """One schema node, converted (`model`: the model it is, for its rules)."""
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            target = self.defs[name]
            assert isinstance(target, Mapping)
            return {**self.node(target, name), **_description(node)}
        branches = [b for b in _list(node.get("anyOf") or node.get("oneOf"))
                    if isinstance(b, Mapping) and b.get("type") != "null"]  # fmt: skip
        if branches:
            converted = [self.node(b) for b in branches]
            union = "oneOf" in node  # a discriminated union (the routers'), even of one model
            if not union and sorted(str(c.get("type")) for c in converted) == ["integer", "string"]:
                return {**_description(node), "x-kubernetes-int-or-string": True}
            if not union and len(converted) > 1:
                raise ValueError(f"no structural form for a union of {len(converted)} types: {node}")
            return {**(_merged(converted) if union else converted[0]), **_description(node)}
        if node.get("format") == "duration":
            return {**_description(node), "x-kubernetes-int-or-string": True, "maxLength": 64,
                    "x-kubernetes-validations": [_rule(_DURATION_RULE, _DURATION_MESSAGE)]}  # fmt: skip
        out: Node = {**_description(node), **{k: node[k] for k in _KEPT if k in node}}
        if "const" in node:
            out["enum"] = [node["const"]]
        _bound(out, node, "exclusiveMinimum", "minimum")
        _bound(out, node, "exclusiveMaximum", "maximum")
        items = node.get("items")
        if isinstance(items, Mapping):
            out["items"] = self.node(items)
        extra = node.get("additionalProperties")
        if extra is True or (node.get("type") == "object" and "properties" not in node and extra is None):
            out["x-kubernetes-preserve-unknown-fields"] = True
        elif isinstance(extra, Mapping):
            out["additionalProperties"] = self.node(extra)
        if isinstance(node.get("properties"), Mapping):
            self._object(out, node, model)
        return out

    def _object(self, out: Node, node: Mapping[str, object], model: str) -> None:
        properties = node["properties"]
        assert isinstance(properties, Mapping)
        dropped = DROPPED.get(model, ())
        converted: Node = {}
        for key, value in properties.items():
            if key in dropped or not isinstance(value, Mapping):
                continue
            if (model, key) == ("MetricConfig", "query"):  # one object for any store's query
                value = {"$ref": "#/$defs/PrometheusQuery"}
            name, schema = _special(model, key, self.node(value))
            converted[self.renames.get(name, name)] = {**schema, **FIELDS.get((model, key), {})}
        out["properties"] = converted
        required = [self.renames.get(str(k), str(k)) for k in _list(node.get("required")) if k not in dropped]
        required += [k for k in REQUIRED.get(model, []) if k not in required]
        if required:
            out["required"] = required
        if model in RULES:
            out["x-kubernetes-validations"] = RULES[model]


def _list(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []


def _merged(objects: list[Node]) -> Node:
    """Objects told apart by `kind` as one object: every branch's properties, and a rule per
    branch that its kind has none of the others' properties."""
    properties: Node = {}
    kinds: list[object] = []
    rules: list[Node] = []
    for branch in objects:
        own = branch.get("properties")
        assert isinstance(own, Mapping)
        properties.update(own)
        kind = own.get("kind")
        kinds += _list(kind.get("enum")) if isinstance(kind, Mapping) else []
    for branch, kind in zip(objects, kinds, strict=True):
        own = branch["properties"]
        assert isinstance(own, Mapping)
        others = [k for k in properties if k not in own]
        if others:
            rules.append(_rule(f"self.kind != '{kind}' || !(" + " || ".join(f"has(self.{k})" for k in others)
                               + ")", f"{', '.join(others)}: not options of {kind}"))
    merged: Node = {"type": "object", "properties": {**properties, "kind": {"type": "string", "enum": kinds}},
                    "required": ["kind"]}  # fmt: skip
    if rules:
        merged["x-kubernetes-validations"] = rules
    return merged


def _special(model: str, key: str, schema: Node) -> tuple[str, Node]:
    """A metric's `query` (any store's keys kept) and judge settings (Kayenta's nesting)."""
    if (model, key) == ("MetricConfig", "canary"):  # pydantic names only its alias' first step
        return "analysisConfigurations", {"type": "object", "properties": {"canary": schema}}
    if (model, key) != ("MetricConfig", "query"):
        return key, schema
    properties = schema.get("properties")
    assert isinstance(properties, Mapping)
    store = {"type": "string", "enum": list(KNOWN_STORES),
             "description": "The metric store. A query keeps keys of its store's own (a Prometheus "
                            "query's unknown keys are refused when the release reads the policy)."}
    return key, {**schema, "properties": {**properties, "type": store}, "required": ["type"],
                 "x-kubernetes-preserve-unknown-fields": True}


def _status() -> Node:
    """What a release writes back (canary.platforms.kubernetes.policies.write_status)."""
    text: Node = {"type": "string"}
    return {"type": "object", "description": "The last release configured by this policy.",
            "properties": {
                "lastRelease": {"type": "string", "format": "date-time",
                                "description": "When the last release ended."},
                "commit": text, "reason": text,
                "outcome": {"type": "string", "enum": [o.value for o in Outcome]},
                "report": {"type": "string", "description": "A link to the release's report."},
                "judge": {"type": "string", "description": "The judge of the last release's canary config."}}}  # fmt: skip


def spec_schema() -> Node:
    """The structural schema of a ReleasePolicy's `spec`.

    Returns:
        `release` (the release spec), `canaryConfig` or `canaryConfigRef`.
    """
    release, canary = ReleaseSpec.model_json_schema(by_alias=False), CanaryConfig.model_json_schema(by_alias=True)
    ref: Node = {"type": "object", "required": ["name"],
                 "description": "A ConfigMap in the policy's namespace holding the canary config.",
                 "properties": {"name": {"type": "string", **_OBJECT_NAME},
                                "key": {"type": "string", "pattern": r"^[-._a-zA-Z0-9]+$",
                                        "description": f"Its key (default {DEFAULT_KEY})."}}}  # fmt: skip
    return {
        "type": "object", "required": ["release"],
        "properties": {"release": _Converter(release, {"pass_": "pass"}).node(release, "ReleaseSpec"),
                       "canaryConfig": _Converter(canary, {}).node(canary, "CanaryConfig"),
                       "canaryConfigRef": ref},
        "x-kubernetes-validations": [_rule(
            "has(self.canaryConfig) != has(self.canaryConfigRef)",
            "give exactly one of canaryConfig (inline) and canaryConfigRef (a ConfigMap)")],
    }  # fmt: skip


def _columns() -> list[Node]:
    def column(name: str, path: str, kind: str = "string") -> Node:
        return {"name": name, "type": kind, "jsonPath": path}

    return [column("App", ".spec.release.app"), column("Judge", ".status.judge"),
            column("Lifetime", ".spec.release.analysis.lifetime"), column("Outcome", ".status.outcome"),
            column("Age", ".metadata.creationTimestamp", "date")]  # fmt: skip


def crd() -> Node:
    """The ReleasePolicy CustomResourceDefinition, as shipped in deployments/kubernetes/crds/.

    Returns:
        The CRD object (apiextensions.k8s.io/v1).
    """
    schema: Node = {"type": "object", "properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
        "spec": spec_schema(), "status": _status()}, "required": ["spec"]}  # fmt: skip
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}",
                     "labels": {"app.kubernetes.io/name": "prefect-canary"}},
        "spec": {"group": GROUP, "scope": "Namespaced",
                 "names": {"kind": KIND, "plural": PLURAL, "singular": SINGULAR,
                           "listKind": f"{KIND}List", "shortNames": ["rp"], "categories": ["prefect-canary"]},
                 "versions": [{"name": VERSION, "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": schema},
                               "subresources": {"status": {}},
                               "additionalPrinterColumns": _columns()}]},
    }  # fmt: skip


__all__ = ["API_VERSION", "FIELDS", "RULES", "crd", "render", "spec_schema"]


HEADER = """\
# GENERATED by scripts/generate_crds.py from the config models (canary/config/): do not edit.
# The ReleasePolicy: a release spec and canary config under the cluster's RBAC
# (docs/kubernetes.md). Install once per cluster: kubectl apply -f releasepolicy.yaml
"""


def render() -> str:
    """The CRD as the shipped YAML text (a header, then the document).

    Returns:
        The file's text.
    """
    return HEADER + yaml.dump(crd(), Dumper=_Plain, sort_keys=False, width=100, allow_unicode=True)


class _Plain(yaml.SafeDumper):
    """SafeDumper without anchors: a rule shared by two models is written out twice."""

    def ignore_aliases(self, data: object) -> bool:
        """Never alias (the CRD reads as written, for `kubectl explain` and reviewers)."""
        return True
