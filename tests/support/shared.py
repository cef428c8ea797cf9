"""Test data that lives outside this repository: the real Kayenta fixtures (kept beside the
checkout by the project's maintainers).

A user's clone does not have them. Tests that need them are marked `needs("kayenta")` and
skip with one line that names what is missing and the variable to point at it. Under CI
(`CI=true`) a missing directory fails those tests instead: CI must run them. (The CRDs the
Kubernetes tests need come from their upstream Go modules: controlplane/upstream.lock.)
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: kind -> (environment variable, default location, what it is)
SHARED = {
    "kayenta": ("KAYENTA_FIXTURES", ROOT.parent / "shared" / "fixtures" / "kayenta",
                "the real Kayenta canary configs and requests"),
}  # fmt: skip


def location(kind: str) -> Path:
    variable, default, _ = SHARED[kind]
    return Path(os.environ.get(variable) or default)


def missing(kind: str) -> str | None:
    """Why the `kind` data is not there (one line), or None when it is."""
    variable, _, what = SHARED[kind]
    path = location(kind)
    if path.is_dir():
        return None
    return f"{what} are not at {path}: set {variable} to their directory to run this test"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")
