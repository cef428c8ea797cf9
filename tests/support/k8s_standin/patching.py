"""The three PATCH flavours of the API server: strategic merge, JSON merge, JSON patch.

Their differences are exactly the bugs a fake hides: a strategic merge of ``containers``
merges by ``name`` while a JSON merge patch replaces the whole list; a JSON patch can test a
value first. Errors raise PatchError, which the server turns into 422 (or 400).
"""

from __future__ import annotations

import copy
from typing import Any

#: Patch merge keys of the list fields a canary touches (from the Kubernetes API types).
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "ownerReferences": "uid",
    "conditions": "type",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
}


class PatchError(ValueError):
    """The patch cannot be applied; ``code`` is the HTTP status the server answers with."""

    def __init__(self, message: str, code: int = 422) -> None:
        super().__init__(message)
        self.code = code


def _merge_key(field: str, items: list[Any]) -> str | None:
    if field == "ports":  # container ports merge on containerPort, Service ports on port
        dicts = [i for i in items if isinstance(i, dict)]
        return "containerPort" if any("containerPort" in i for i in dicts) else "port"
    return MERGE_KEYS.get(field)


def _strip(value: Any) -> Any:
    """Drop ``$``-directives from a value that is inserted rather than merged."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _merge_list(current: list[Any], patch: list[Any], key: str) -> list[Any]:
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [_strip(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    result = copy.deepcopy(current)
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise PatchError(f"map in list of merge key {key!r} has no value for {key!r}: {item!r}")
        index = next(
            (i for i, old in enumerate(result) if isinstance(old, dict) and old.get(key) == item[key]),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
        elif index is None:
            result.append(_strip(item))
        else:
            merged = _merge_map(result[index], item)
            result[index] = merged if merged is not None else result[index]
    return result


def _merge_map(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any] | None:
    directive = patch.get("$patch")
    if directive == "replace":
        return _strip(patch)
    if directive == "delete":
        return None
    result = copy.deepcopy(current)
    for field, value in patch.items():
        if field.startswith("$"):
            continue
        if value is None:
            result.pop(field, None)
            continue
        old = result.get(field)
        if isinstance(value, dict) and isinstance(old, dict):
            merged = _merge_map(old, value)
            if merged is None:
                result.pop(field, None)
            else:
                result[field] = merged
        elif isinstance(value, list) and isinstance(old, list) and (key := _merge_key(field, old + value)):
            result[field] = _merge_list(old, value, key)
        else:
            result[field] = _strip(value)
    for field, values in patch.items():
        if field.startswith("$deleteFromPrimitiveList/"):
            name = field.split("/", 1)[1]
            result[name] = [v for v in result.get(name, []) if v not in values]
        elif field.startswith("$setElementOrder/"):
            name = field.split("/", 1)[1]
            key = _merge_key(name, result.get(name, []))
            if key and isinstance(result.get(name), list):
                order = [v.get(key) for v in values if isinstance(v, dict)]
                result[name].sort(key=lambda i, o=order, k=key: o.index(i.get(k)) if i.get(k) in o else len(o))
    if isinstance(patch.get("$retainKeys"), list):
        result = {k: v for k, v in result.items() if k in patch["$retainKeys"]}
    return result


def strategic_merge(current: dict[str, Any], patch: Any) -> dict[str, Any]:
    """Apply a strategic merge patch to a built-in object."""
    if not isinstance(patch, dict):
        raise PatchError("a strategic merge patch must be a JSON object", code=400)
    merged = _merge_map(current, patch)
    if merged is None:
        raise PatchError("a strategic merge patch cannot delete the whole object")
    return merged


def merge_patch(current: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge, null deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(current) if isinstance(current, dict) else {}
    for field, value in patch.items():
        if value is None:
            result.pop(field, None)
        else:
            result[field] = merge_patch(result.get(field), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"JSON pointer {path!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, tokens: list[str], path: str) -> Any:
    node = doc
    for token in tokens[:-1]:
        try:
            node = node[int(token)] if isinstance(node, list) else node[token]
        except (KeyError, IndexError, ValueError, TypeError):
            raise PatchError(f"path {path!r} does not exist") from None
    return node


def _get(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return doc
    parent, last = _parent(doc, tokens, path), tokens[-1]
    try:
        return parent[int(last)] if isinstance(parent, list) else parent[last]
    except (KeyError, IndexError, ValueError, TypeError):
        raise PatchError(f"path {path!r} does not exist") from None


def _index(parent: list[Any], token: str, path: str, *, insert: bool) -> int:
    if insert and token == "-":
        return len(parent)
    try:
        index = int(token)
    except ValueError:
        raise PatchError(f"invalid array index {token!r} in {path!r}") from None
    if not 0 <= index <= len(parent) - (0 if insert else 1):
        raise PatchError(f"array index {index} out of range in {path!r}")
    return index


def _remove(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    parent = _parent(doc, tokens, path)
    if isinstance(parent, list):
        return parent.pop(_index(parent, tokens[-1], path, insert=False))
    if not isinstance(parent, dict) or tokens[-1] not in parent:
        raise PatchError(f"cannot remove {path!r}: it does not exist")
    return parent.pop(tokens[-1])


def _add(doc: Any, path: str, value: Any, *, replace: bool = False) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return copy.deepcopy(value)
    parent = _parent(doc, tokens, path)
    if isinstance(parent, list):
        index = _index(parent, tokens[-1], path, insert=not replace)
        if replace:
            parent[index] = copy.deepcopy(value)
        else:
            parent.insert(index, copy.deepcopy(value))
    elif isinstance(parent, dict):
        if replace and tokens[-1] not in parent:
            raise PatchError(f"cannot replace {path!r}: it does not exist")
        parent[tokens[-1]] = copy.deepcopy(value)
    else:
        raise PatchError(f"path {path!r} does not point into an object or array")
    return doc


def json_patch(current: Any, operations: Any) -> Any:
    """RFC 6902 JSON patch: add, remove, replace, move, copy, test, applied in order."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a JSON array of operations", code=400)
    doc = copy.deepcopy(current)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"invalid JSON patch operation {op!r}", code=400)
        kind, path = op["op"], op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f"JSON patch operation {kind!r} at {path!r} needs a value", code=400)
        if kind == "add":
            doc = _add(doc, path, op["value"])
        elif kind == "replace":
            doc = _add(doc, path, op["value"], replace=True)
        elif kind == "remove":
            _remove(doc, path)
        elif kind in ("move", "copy"):
            value = _remove(doc, op["from"]) if kind == "move" else copy.deepcopy(_get(doc, op["from"]))
            doc = _add(doc, path, value)
        elif kind == "test":
            if _get(doc, path) != op["value"]:
                raise PatchError(f"test operation failed: {path!r} is not {op['value']!r}")
        else:
            raise PatchError(f"unknown JSON patch operation {kind!r}", code=400)
    return doc
