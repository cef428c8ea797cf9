"""Label and field selectors, parsed as the API server parses them.

Selectors are where fakes usually cheat (kmock ignores them), and a wrong selector in an
adapter deletes or waits on the wrong pods, so the stand-in implements the whole grammar:
``=``, ``==``, ``!=``, ``in``, ``notin``, ``key`` (exists) and ``!key`` (does not exist).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_SET_TERM = re.compile(r"^\s*([^\s!=(),]+)\s+(in|notin)\s*\(([^()]*)\)\s*$")
_KEY = re.compile(r"^([a-z0-9A-Z]([-a-z0-9A-Z_./]*[a-z0-9A-Z])?)$")


class SelectorError(ValueError):
    """The selector text does not parse (the server answers 400 BadRequest)."""


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "=":
            return present and value == self.values[0]
        if self.op == "!=":
            return not present or value != self.values[0]
        if self.op == "in":
            return present and value in self.values
        if self.op == "notin":
            return not present or value not in self.values
        if self.op == "exists":
            return present
        return not present  # "!"


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside a ``(...)`` value set."""
    terms, depth, current = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(char)
    terms.append("".join(current))
    return [t.strip() for t in terms if t.strip()]


def _checked_key(key: str, text: str) -> str:
    if not _KEY.match(key):
        raise SelectorError(f"invalid label key {key!r} in selector {text!r}")
    return key


def parse_label_selector(text: str | None) -> list[Requirement]:
    """Parse ``labelSelector``; an empty or missing selector matches everything."""
    requirements: list[Requirement] = []
    for term in _split_terms(text or ""):
        if m := _SET_TERM.match(term):
            values = tuple(v.strip() for v in m.group(3).split(",") if v.strip())
            requirements.append(Requirement(_checked_key(m.group(1), text or ""), m.group(2), values))
        elif "!=" in term:
            key, value = term.split("!=", 1)
            requirements.append(Requirement(_checked_key(key.strip(), term), "!=", (value.strip(),)))
        elif "=" in term:
            key, value = re.split(r"==?", term, maxsplit=1)
            requirements.append(Requirement(_checked_key(key.strip(), term), "=", (value.strip(),)))
        elif term.startswith("!"):
            requirements.append(Requirement(_checked_key(term[1:].strip(), term), "!"))
        else:
            requirements.append(Requirement(_checked_key(term, term), "exists"))
    return requirements


def labels_match(requirements: list[Requirement], obj: Mapping[str, Any]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(r.matches(labels) for r in requirements)


_FIELDS = {"metadata.name", "metadata.namespace"}


def parse_field_selector(text: str | None) -> list[tuple[str, str, str]]:
    """Parse ``fieldSelector``; like most resources, only metadata.name/namespace are indexed."""
    parsed = []
    for term in _split_terms(text or ""):
        op = "!=" if "!=" in term else "="
        field, value = re.split(r"!=|==?", term, maxsplit=1)
        field = field.strip()
        if field not in _FIELDS:
            raise SelectorError(f'field label not supported: "{field}"')
        parsed.append((field, op, value.strip()))
    return parsed


def fields_match(selector: list[tuple[str, str, str]], obj: Mapping[str, Any]) -> bool:
    meta = obj.get("metadata") or {}
    for field, op, value in selector:
        actual = meta.get(field.split(".", 1)[1], "")
        if (actual == value) != (op == "="):
            return False
    return True
