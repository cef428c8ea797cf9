"""Kubernetes objects as the API server sends them: JSON mappings, read through typed helpers.

The adapters keep objects as plain dicts (client.py says why); these helpers read a path
into one without trusting its shape: a missing key, a null and a value of another type all
read as the empty value, so no caller indexes into ``object`` unchecked.
"""

from __future__ import annotations

from collections.abc import Mapping

#: A Kubernetes object, or a part of one, as JSON.
JSON = dict[str, object]


def value(obj: object, *path: str) -> object:
    """The value at `path` inside `obj` (None where a key is missing or not in a mapping)."""
    current: object = obj
    for key in path:
        current = current.get(key) if isinstance(current, Mapping) else None
    return current


def field(obj: object, *path: str) -> JSON:
    """The mapping at `path` (the object itself, not a copy); {} when there is none."""
    found = value(obj, *path)
    return found if isinstance(found, dict) else {}


def entries(obj: object, *path: str) -> list[JSON]:
    """The mappings in the list at `path` (the objects themselves); [] when there is none."""
    found = value(obj, *path)
    return [item for item in found if isinstance(item, dict)] if isinstance(found, list) else []


def text(obj: object, *path: str, default: str = "") -> str:
    """The string at `path`; `default` when there is none."""
    found = value(obj, *path)
    return found if isinstance(found, str) else default


def maybe_text(obj: object, *path: str) -> str | None:
    """The string at `path`; None when there is none."""
    found = value(obj, *path)
    return found if isinstance(found, str) else None


def number(obj: object, *path: str, default: int = 0) -> int:
    """The whole number at `path`; `default` when there is none."""
    found = value(obj, *path)
    return found if isinstance(found, int) and not isinstance(found, bool) else default


def labels(obj: object, *path: str) -> dict[str, str]:
    """The string-to-string mapping at `path` (labels, annotations, matchLabels)."""
    return {str(k): str(v) for k, v in field(obj, *path).items()}


def child(obj: JSON, key: str) -> JSON:
    """``obj[key]`` as a mapping to write into, set to a new {} when it is not one."""
    found = obj.get(key)
    if isinstance(found, dict):
        return found
    new: JSON = {}
    obj[key] = new
    return new
