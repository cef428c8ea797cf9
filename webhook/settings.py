"""The relay's configuration: read once at start-up, refused early and loudly when incomplete.

A relay without a secret would accept anyone's push as a release trigger, and one without a
Prefect URL would 503 every delivery; both are start-up errors, never request-time surprises.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from urllib.parse import urlsplit, urlunsplit

from canary.errors import ConfigError

MiB = 1024 * 1024
DEFAULT_MAX_BODY_BYTES = MiB
DEFAULT_PREFECT_TIMEOUT_S = 8.0  # GitHub gives up on a delivery after 10 s

SECRET_ENV = "GITHUB_WEBHOOK_SECRET"
API_URL_ENV = "PREFECT_API_URL"
BRANCHES_ENV = "WEBHOOK_BRANCHES"


@dataclass(frozen=True)
class Settings:
    """Everything a request handler needs; the secret and auth header never show in a repr."""

    secret: str = field(repr=False)
    prefect_api_url: str
    branches: tuple[str, ...] = ()
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    prefect_timeout_s: float = DEFAULT_PREFECT_TIMEOUT_S
    prefect_auth_header: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.secret:
            raise ConfigError(
                f"{SECRET_ENV} is not set: the relay refuses to accept unsigned pushes. "
                "Set it to the secret configured on the GitHub webhook."
            )
        object.__setattr__(self, "prefect_api_url", _check_api_url(self.prefect_api_url))
        if self.max_body_bytes <= 0:
            raise ConfigError(f"max_body_bytes must be positive, got {self.max_body_bytes}")
        if self.prefect_timeout_s <= 0:
            raise ConfigError(f"prefect_timeout_s must be positive, got {self.prefect_timeout_s}")
        object.__setattr__(self, "branches", tuple(b for b in self.branches if b))

    @property
    def events_url(self) -> str:
        return f"{self.prefect_api_url}/events"

    @property
    def loggable_api_url(self) -> str:
        """The API URL without any user:password part, for log lines."""
        parts = urlsplit(self.prefect_api_url)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

    def tracks(self, branch: str, default_branch: str | None) -> bool:
        """Configured branches (globs like ``release/*``) win; else only the default branch."""
        if self.branches:
            return any(fnmatchcase(branch, pattern) for pattern in self.branches)
        return default_branch is not None and branch == default_branch

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        branches: Iterable[str] | str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        prefect_timeout_s: float = DEFAULT_PREFECT_TIMEOUT_S,
    ) -> Settings:
        """Settings from the environment; `branches` (a flag) overrides WEBHOOK_BRANCHES."""
        env = os.environ if environ is None else environ
        if branches is None:
            branches = env.get(BRANCHES_ENV, "")
        if isinstance(branches, str):
            branches = branches.split(",")
        missing = []
        if not env.get(SECRET_ENV):
            missing.append(
                f"{SECRET_ENV} is not set: the relay refuses to accept unsigned pushes; "
                "set it to the secret configured on the GitHub webhook"
            )
        api_url = env.get(API_URL_ENV, "")
        if not api_url:
            missing.append(
                f"{API_URL_ENV} is not set: the relay needs the Prefect API to send events to, "
                "e.g. PREFECT_API_URL=http://127.0.0.1:4200/api"
            )
        if missing:
            raise ConfigError("; ".join(missing))
        return cls(
            secret=env.get(SECRET_ENV, ""),
            prefect_api_url=api_url,
            branches=tuple(b.strip() for b in branches),
            max_body_bytes=max_body_bytes,
            prefect_timeout_s=prefect_timeout_s,
            prefect_auth_header=_auth_header(env),
        )


def _check_api_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{API_URL_ENV} must be an http(s) URL such as http://127.0.0.1:4200/api, "
            f"got scheme {parts.scheme!r}"
        )
    return url.strip().rstrip("/")


def _auth_header(env: Mapping[str, str]) -> str | None:
    """The same Authorization header Prefect's own client sends (auth string wins over key)."""
    auth_string = env.get("PREFECT_API_AUTH_STRING")
    if auth_string:
        return "Basic " + base64.b64encode(auth_string.encode("utf-8")).decode("ascii")
    api_key = env.get("PREFECT_API_KEY")
    if api_key:
        return f"Bearer {api_key}"
    return None
