"""The app spec: how the local platform builds, runs and probes an artifact.

An artifact is a git tree; the tree says how to run it in an optional ``canary.yaml`` at its
root (or at the builder's ``subdir``). Every key is optional; the defaults run the demo app::

    command: [python, server.py, --port, "{port}"]   # argv; placeholders below
    health: /healthz          # GET must answer 2xx before the process counts as ready
    metrics: /metrics         # scraped by Prometheus (file_sd) with app/track/version labels
    env: {}                   # extra environment, values may use the placeholders
    build: null               # optional argv run once in the checked-out tree; non-zero fails
    build_timeout: 300        # seconds
    ready_timeout: 20         # seconds to pass the health check after start
    version_file: VERSION     # the version is this file's first line, else the short commit

Placeholders (``str.format`` style): ``{port}``, ``{track}``, ``{version}``, ``{app}``,
``{python}``. An argv whose first word is ``python``/``python3`` runs with the platform's
Python (the one that has the app's dependencies). Every process also gets ``CANARY_APP``,
``CANARY_TRACK``, ``CANARY_VERSION``, ``CANARY_PORT`` and ``<APP>_TRACK``/``<APP>_VERSION``
(``<APP>`` = the app name upper-cased, non-alphanumerics as ``_``; ``GOLDENGOOSE_TRACK`` for
the demo).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

import yaml

from canary.errors import ConfigError

SPEC_FILE = "canary.yaml"
PLACEHOLDERS = frozenset({"port", "track", "version", "app", "python"})
_FIELD = re.compile(r"\{([^{}]*)\}")


def _argv(value: object, key: str) -> tuple[str, ...]:
    if not (isinstance(value, list) and value and all(isinstance(v, str | int) for v in value)):
        raise ConfigError(f"{SPEC_FILE}: {key!r} must be a non-empty list of strings")
    return tuple(str(v) for v in value)


def _seconds(value: object, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 3600:
        raise ConfigError(f"{SPEC_FILE}: {key!r} must be a number of seconds in (0, 3600]")
    return float(value)


def _path(value: object, key: str) -> str:
    if not (isinstance(value, str) and value.startswith("/")):
        raise ConfigError(f"{SPEC_FILE}: {key!r} must be an HTTP path starting with '/'")
    return value


def _check_placeholders(words: Sequence[str], key: str) -> None:
    for word in words:
        for name in _FIELD.findall(word):
            if name not in PLACEHOLDERS:
                raise ConfigError(
                    f"{SPEC_FILE}: {key!r} uses unknown placeholder {{{name}}} "
                    f"(known: {', '.join(sorted(PLACEHOLDERS))})"
                )


class _Given(TypedDict, total=False):
    command: tuple[str, ...]
    health: str
    metrics: str
    env: Mapping[str, str]
    build: tuple[str, ...] | None
    build_timeout: float
    ready_timeout: float
    version_file: str


@dataclass(frozen=True)
class AppSpec:
    """How the local platform builds, runs and checks an app (its canary.yaml)."""

    command: tuple[str, ...] = ("python", "server.py", "--port", "{port}")
    health: str = "/healthz"
    metrics: str = "/metrics"
    env: Mapping[str, str] = field(default_factory=dict)
    build: tuple[str, ...] | None = None
    build_timeout: float = 300.0
    ready_timeout: float = 20.0
    version_file: str = "VERSION"

    @classmethod
    def parse(cls, data: object) -> AppSpec:
        """The spec from canary.yaml's data (None: every default).

        Raises:
            ConfigError: naming the bad key.
        """
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise ConfigError(f"{SPEC_FILE} must hold a mapping")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"{SPEC_FILE}: unknown key(s) {', '.join(map(repr, unknown))}")
        kw: _Given = {}
        if "command" in data:
            kw["command"] = command = _argv(data["command"], "command")
            _check_placeholders(command, "command")
        if data.get("build") is not None:
            kw["build"] = build = _argv(data["build"], "build")
            _check_placeholders(build, "build")
        if "health" in data:
            kw["health"] = _path(data["health"], "health")
        if "metrics" in data:
            kw["metrics"] = _path(data["metrics"], "metrics")
        if "build_timeout" in data:
            kw["build_timeout"] = _seconds(data["build_timeout"], "build_timeout")
        if "ready_timeout" in data:
            kw["ready_timeout"] = _seconds(data["ready_timeout"], "ready_timeout")
        if "env" in data:
            env = data["env"]
            if not isinstance(env, dict) or not all(
                isinstance(k, str) and isinstance(v, str | int | float) for k, v in env.items()
            ):
                raise ConfigError(f"{SPEC_FILE}: 'env' must map names to strings")
            kw["env"] = values = {k: str(v) for k, v in env.items()}
            _check_placeholders(list(values.values()), "env")
        if "version_file" in data:
            vf = data["version_file"]
            if not isinstance(vf, str) or not vf or vf.startswith("/") or ".." in vf.split("/"):
                raise ConfigError(f"{SPEC_FILE}: 'version_file' must be a relative path")
            kw["version_file"] = vf
        return cls(**kw)

    @classmethod
    def load(cls, root: Path) -> AppSpec:
        """The spec of the tree at `root` (defaults when it has no canary.yaml)."""
        path = root / SPEC_FILE
        if not path.is_file():
            return cls()
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{SPEC_FILE} is not readable YAML: {exc}") from None
        return cls.parse(data)


def env_prefix(app: str) -> str:
    """The app's name as an environment variable prefix (SHOP_API for shop-api)."""
    return re.sub(r"[^A-Za-z0-9]", "_", app).upper()


def render(words: Sequence[str], values: Mapping[str, str], python: str) -> list[str]:
    """Fill the placeholders of an argv; a leading python/python3 becomes `python`."""
    out = [w.format_map(values) for w in words]
    if out and out[0] in ("python", "python3"):
        out[0] = python
    return out


def process_env(
    spec: AppSpec,
    base: Mapping[str, str],
    *,
    app: str,
    track: str,
    version: str,
    port: int,
    python: str,
) -> dict[str, str]:
    """The environment a process of the app runs with: `base`, the CANARY_* variables and
    the spec's own `env` with its placeholders filled."""
    values = {"port": str(port), "track": track, "version": version, "app": app, "python": python}
    env = dict(base)
    prefix = env_prefix(app)
    env.update(
        {
            "CANARY_APP": app,
            "CANARY_TRACK": track,
            "CANARY_VERSION": version,
            "CANARY_PORT": str(port),
            f"{prefix}_TRACK": track,
            f"{prefix}_VERSION": version,
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update({k: v.format_map(values) for k, v in spec.env.items()})
    return env
