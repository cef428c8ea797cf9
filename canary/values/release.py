"""One release: which app, which image, built from which commit; and the app-name rule.

The app name is an RFC 1123 label everywhere (Deployments, HAProxy backends, concurrency
limits, Prefect run names), so this is the one place that says what a name may be and how
a repository's name becomes one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from canary.errors import ConfigError

__all__ = ["Release", "app_name_for_repository", "check_app_name", "check_commit"]

_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_COMMIT = re.compile(r"[0-9a-f]{40}")


def check_app_name(app: str) -> str:
    """Check an app name: an RFC 1123 label (it names Deployments, backends, limits).

    Args:
        app: The name to check.

    Returns:
        The name, unchanged.

    Raises:
        ConfigError: It is not 1-63 lowercase letters, digits and '-', starting and ending
            with a letter or digit.
    """
    if not isinstance(app, str) or not _NAME.fullmatch(app):
        raise ConfigError(
            f"app {app!r} is not a valid name: use 1-63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (RFC 1123)"
        )
    return app


def app_name_for_repository(repository: str) -> str:
    """The app name for a GitHub repository name.

    `owner/` is dropped, the rest lowercased, every run of characters outside [a-z0-9]
    becomes one '-', leading/trailing '-' are dropped, and it is cut to 63:
    `MyService` -> `myservice`, `web_api.v2` -> `web-api-v2`. A name that leaves nothing
    (or a release spec that wants another name) names the app in `.canary/release.yaml`.

    Args:
        repository: `name` or `owner/name`.

    Returns:
        A valid app name.

    Raises:
        ConfigError: Nothing valid is left of the name.
    """
    name = repository.rsplit("/", 1)[-1] if isinstance(repository, str) else ""
    mapped = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:63].rstrip("-")
    if not mapped:
        raise ConfigError(f"repository {repository!r} maps to no valid app name: name the app "
                          "with `app:` in the repository's .canary/release.yaml")  # fmt: skip
    return check_app_name(mapped)


def check_commit(commit: str) -> str:
    """Check a commit id: 40 hex digits (a branch or short id is ambiguous, not reproducible).

    Args:
        commit: The commit id to check.

    Returns:
        The id, lowercased.

    Raises:
        ConfigError: It is not a full 40-hex git commit id.
    """
    if not isinstance(commit, str) or not _COMMIT.fullmatch(commit.lower()):
        raise ConfigError(f"commit {commit!r} is not a full 40-hex git commit id")
    return commit.lower()


@dataclass(frozen=True)
class Release:
    """An app's image, built from one commit: what a build produces and a release ships.

    Validated on construction (the name rule, a full commit id, a non-empty image).

    Attributes:
        app: The app's name (an RFC 1123 label).
        image: The image reference.
        commit: The full commit id, lowercased.
    """

    app: str
    image: str
    commit: str

    def __post_init__(self) -> None:
        check_app_name(self.app)
        object.__setattr__(self, "commit", check_commit(self.commit))
        if not isinstance(self.image, str) or not self.image.strip():
            raise ConfigError(f"release of {self.app}: image {self.image!r} is empty")

    @property
    def short_commit(self) -> str:
        """The commit's first 7 characters, as git shows it."""
        return self.commit[:7]
