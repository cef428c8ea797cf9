"""What the stand-in serves, and how it validates each object it accepts.

Built-in kinds are checked with kubernetes-validate (strict: unknown fields are errors),
custom resources with jsonschema against the real CRD schemas in ../shared/crds, made strict
the same way (``additionalProperties: false`` on every object node that lists properties and
does not preserve unknown fields). The real server prunes or warns on unknown fields unless
the client asks for ``fieldValidation=Strict``; being stricter here catches typos such as
``wieght`` that a real cluster would silently drop.
"""

from __future__ import annotations

import copy
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

KUBERNETES_VERSION = "1.37"
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


@dataclass(frozen=True)
class Cause:
    """One field error, as in a Status object's ``details.causes``."""

    field: str
    message: str
    reason: str = "FieldValueInvalid"


class Invalid(Exception):
    """The object is invalid; ``unknown_field`` marks errors that only strict decoding raises."""

    def __init__(self, causes: list[Cause], *, unknown_field: bool = False) -> None:
        super().__init__("; ".join(f"{c.field}: {c.message}" for c in causes))
        self.causes = causes
        self.unknown_field = unknown_field


@dataclass(frozen=True)
class ResourceType:
    group: str
    versions: tuple[str, ...]
    plural: str
    kind: str
    namespaced: bool = True
    status: bool = True  # has a /status subresource
    custom: bool = False
    schemas: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False, hash=False)

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version

    @property
    def qualified(self) -> str:
        """``deployments.apps``: how the server names the resource in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


BUILTINS = (
    ResourceType("apps", ("v1",), "deployments", "Deployment"),
    ResourceType("apps", ("v1",), "replicasets", "ReplicaSet"),
    ResourceType("", ("v1",), "pods", "Pod"),
    ResourceType("", ("v1",), "services", "Service"),
    ResourceType("", ("v1",), "configmaps", "ConfigMap", status=False),
    ResourceType("", ("v1",), "secrets", "Secret", status=False),
    ResourceType("", ("v1",), "serviceaccounts", "ServiceAccount", status=False),
)

#: Knative Build's CRD predates structural schemas, so it has none: this hand-written one
#: covers the v1alpha1 fields the seed's Build uses (git source, steps, service account, and
#: secret volumes mounted into a step: BuildSpec.Volumes is []corev1.Volume, a step a
#: corev1.Container; only the Volume/VolumeMount fields used are listed, typed as in core/v1).
_KEY_TO_PATH = {"type": "object", "required": ["key", "path"],
                "properties": {"key": {"type": "string"}, "path": {"type": "string"},
                               "mode": {"type": "integer"}}}
_VOLUME = {"type": "object", "required": ["name"], "properties": {
    "name": {"type": "string"},
    "secret": {"type": "object", "properties": {
        "secretName": {"type": "string"}, "items": {"type": "array", "items": _KEY_TO_PATH},
        "defaultMode": {"type": "integer"}, "optional": {"type": "boolean"}}},
    "emptyDir": {"type": "object", "properties": {"medium": {"type": "string"}}}}}
_VOLUME_MOUNT = {"type": "object", "required": ["name", "mountPath"], "properties": {
    "name": {"type": "string"}, "mountPath": {"type": "string"}, "readOnly": {"type": "boolean"},
    "subPath": {"type": "string"}}}
_STEP = {
    "type": "object",
    "required": ["image"],
    "properties": {
        "name": {"type": "string"},
        "image": {"type": "string"},
        "command": {"type": "array", "items": {"type": "string"}},
        "args": {"type": "array", "items": {"type": "string"}},
        "workingDir": {"type": "string"},
        "env": {"type": "array", "items": {"type": "object", "required": ["name"],
                "properties": {"name": {"type": "string"}, "value": {"type": "string"}}}},
        "volumeMounts": {"type": "array", "items": _VOLUME_MOUNT},
    },
}
KNATIVE_BUILD_SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["steps"],
            "properties": {
                "serviceAccountName": {"type": "string"},
                "timeout": {"type": "string"},
                "source": {"type": "object", "properties": {"git": {
                    "type": "object", "required": ["url", "revision"],
                    "properties": {"url": {"type": "string"}, "revision": {"type": "string"}}}}},
                "steps": {"type": "array", "minItems": 1, "items": _STEP},
                "volumes": {"type": "array", "items": _VOLUME},
                "status": {"type": "string", "enum": ["", "BuildCancelled"]},
            },
        },
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
}


def default_crd_dir() -> Path:
    """``$K8S_STANDIN_CRDS``, else the maintainers' copy next to the repository
    (tests/support/shared.py)."""
    from tests.support.shared import location

    return location("crds")


def _tighten(node: Any) -> Any:
    """Make a structural schema reject unknown fields, as ``fieldValidation=Strict`` does."""
    if isinstance(node, list):
        return [_tighten(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _tighten(v) for k, v in node.items()}
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


@functools.lru_cache(maxsize=4)
def load_crds(directory: Path) -> tuple[ResourceType, ...]:
    """Resource types (and strict schemas per version) from CRD manifests, parsed once."""
    if not directory.is_dir():
        raise FileNotFoundError(f"CRD directory {directory} not found; set K8S_STANDIN_CRDS")
    types = []
    for path in sorted(directory.glob("*.yaml")):
        for doc in yaml.load_all(path.read_text(), Loader=_LOADER):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            if "versions" in spec:
                served = [v for v in spec["versions"] if v.get("served", True)]
                versions = tuple(v["name"] for v in served)
                schemas = {v["name"]: v["schema"]["openAPIV3Schema"] for v in served if "schema" in v}
                status = any("status" in (v.get("subresources") or {}) for v in served)
            else:  # apiextensions.k8s.io/v1beta1 (Knative Build)
                versions = (spec["version"],)
                schemas = {spec["version"]: KNATIVE_BUILD_SCHEMA}
                status = "status" in (spec.get("subresources") or {})
            types.append(ResourceType(
                spec["group"], versions, spec["names"]["plural"], spec["names"]["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced", status=status,
                custom=True, schemas={v: _tighten(s) for v, s in schemas.items()},
            ))
    return tuple(types)


_VALIDATORS: dict[int, jsonschema.Draft7Validator] = {}


def _validator(schema: dict[str, Any]) -> jsonschema.Draft7Validator:
    if id(schema) not in _VALIDATORS:
        _VALIDATORS[id(schema)] = jsonschema.Draft7Validator(schema)
    return _VALIDATORS[id(schema)]


def _path(error: jsonschema.ValidationError) -> str:
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def _schema_causes(error: jsonschema.ValidationError) -> Invalid:
    where = _path(error)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set((error.schema or {}).get("properties", {}))
        extra = [k for k in error.instance if k not in known]
        causes = [Cause(f"{where}.{k}" if where != "<root>" else k, f'unknown field "{k}"',
                        "FieldValueNotSupported") for k in extra]
        return Invalid(causes, unknown_field=True)
    if error.validator == "required":
        return Invalid([Cause(where, error.message, "FieldValueRequired")])
    return Invalid([Cause(where, f"Invalid value: {error.instance!r}: {error.message}")])


def _check_metadata(obj: dict[str, Any]) -> None:
    meta = obj.get("metadata") or {}
    name = meta.get("name", "")
    causes = []
    if not name:
        causes.append(Cause("metadata.name", "Required value: name or generateName is required",
                            "FieldValueRequired"))
    elif len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        causes.append(Cause("metadata.name", f'Invalid value: "{name}": a lowercase RFC 1123 '
                            "subdomain must consist of lower case alphanumeric characters, '-' or '.'"))
    for kind in ("labels", "annotations"):
        for key, value in (meta.get(kind) or {}).items():
            prefix, _, short = key.rpartition("/")
            if not _LABEL_NAME.match(short) or len(short) > 63 or (prefix and not _DNS_SUBDOMAIN.match(prefix)):
                causes.append(Cause(f"metadata.{kind}", f'Invalid value: "{key}": name part must '
                                    "consist of alphanumeric characters, '-', '_' or '.'"))
            if not isinstance(value, str):
                causes.append(Cause(f"metadata.{kind}.{key}", "Invalid value: must be a string"))
            elif kind == "labels" and (len(value) > 63 or not _LABEL_VALUE.match(value)):
                causes.append(Cause(f"metadata.labels.{key}", f'Invalid value: "{value}": a valid '
                                    "label must be 63 characters or less, alphanumeric, '-', '_' or '.'"))
    if causes:
        raise Invalid(causes)


def _check_deployment(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    """The semantic rules of Deployment validation that a schema cannot express."""
    spec = obj.get("spec") or {}
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    causes = []
    if not selector and not (spec.get("selector") or {}).get("matchExpressions"):
        causes.append(Cause("spec.selector", "Required value", "FieldValueRequired"))
    if any(labels.get(k) != v for k, v in selector.items()):
        causes.append(Cause("spec.template.metadata.labels", f"Invalid value: {labels!r}: "
                            "`selector` does not match template `labels`"))
    if spec.get("replicas", 1) < 0:
        causes.append(Cause("spec.replicas", f"Invalid value: {spec['replicas']}: must be greater "
                            "than or equal to 0"))
    for i, container in enumerate(((spec.get("template") or {}).get("spec") or {}).get("containers") or []):
        if not container.get("image"):
            causes.append(Cause(f"spec.template.spec.containers[{i}].image", "Required value",
                                "FieldValueRequired"))
    if old is not None and (old.get("spec") or {}).get("selector") != spec.get("selector"):
        causes.append(Cause("spec.selector", f"Invalid value: {spec.get('selector')!r}: "
                            "field is immutable"))
    if causes:
        raise Invalid(causes)


def default_deployment(obj: dict[str, Any]) -> None:
    """The defaults the real server fills in, so adapters see (and copy) what they would."""
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    spec.setdefault("strategy", {"type": "RollingUpdate",
                                 "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
    pod = spec.setdefault("template", {}).setdefault("spec", {})
    for key, value in (("restartPolicy", "Always"), ("terminationGracePeriodSeconds", 30),
                       ("dnsPolicy", "ClusterFirst"), ("schedulerName", "default-scheduler"),
                       ("securityContext", {})):
        pod.setdefault(key, value)
    for container in pod.get("containers") or []:
        image = str(container.get("image", ""))
        latest = "@" not in image and (":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"))
        container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("resources", {})


def validate(rt: ResourceType, version: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    """Raise Invalid when the API server would reject ``obj`` (``old``: the stored one)."""
    _check_metadata(obj)
    if not rt.custom:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            raise _schema_causes(error) from None
        if rt.kind == "Deployment":
            _check_deployment(obj, old)
        return
    extra = sorted(set(obj) - {"apiVersion", "kind", "metadata", "spec", "status"})
    if extra:
        raise Invalid([Cause(k, f'unknown field "{k}"', "FieldValueNotSupported") for k in extra],
                      unknown_field=True)
    schema = rt.schemas.get(version)
    if schema is None:
        return
    validator = _validator(schema)
    body = {k: copy.deepcopy(v) for k, v in obj.items() if k in ("spec", "status")}
    errors = sorted(validator.iter_errors(body), key=lambda e: (len(e.absolute_path), _path(e)))
    if errors:
        raise _schema_causes(errors[0])
