"""What on-cluster builders share: a run per commit, a deadline, the digest, cleanup.

The run's name is derived from the image and the commit, so a retried ``build`` (after a
timeout or a dropped connection) finds the run it already started and waits for it instead
of building twice; a failed run is replaced by a fresh one; a succeeded one is reused.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import TypedDict

from canary.errors import BuildError, ConfigError, PlatformError
from canary.platforms.gitfiles import fetch_directory

from .client import Kind, KubeClient
from .errors import ConflictError, WaitTimeout
from .manifests import MANAGED_BY, MANAGER, PREFIX, pinned, split_image
from .objects import JSON, entries, maybe_text

_COMMIT = re.compile(r"^[0-9a-f]{7,40}$")
_REPO = re.compile(r"^(https?://|ssh://|git@)\S+$")
KANIKO_IMAGE = "gcr.io/kaniko-project/executor:v1.23.2"


@dataclass(frozen=True)
class Outcome:
    """How a finished run ended; ``step`` and ``pod`` say where to look when it failed."""

    succeeded: bool
    digest: str | None = None
    reason: str = ""
    message: str = ""
    step: str | None = None
    pod: str | None = None


def check_source(repo: str, commit: str) -> None:
    """Refuse a commit that is not a hex SHA or a repo that is not a git URL (ConfigError)."""
    if not _COMMIT.match(commit):
        raise ConfigError(f"commit must be a lower-case hex SHA (7-40 chars), got {commit!r}")
    if not _REPO.match(repo):
        raise ConfigError(f"repo must be a git URL (https://, ssh:// or git@), got {repo!r}")


def run_name(repository: str, commit: str) -> str:
    """``<image name>-<commit[:12]>``: a valid object name, the same for the same build."""
    base = re.sub(r"[^a-z0-9-]", "-", split_image(repository)[0].rsplit("/", 1)[-1].lower())
    base = re.sub(r"-+", "-", base).strip("-")[:40] or "build"
    return f"{base}-{commit[:12]}"


def build_labels(repository: str, commit: str) -> dict[str, str]:
    """The labels of a build run: ours, with the commit and the image it builds."""
    return {MANAGED_BY: MANAGER, f"{PREFIX}commit": commit,
            f"{PREFIX}image": run_name(repository, commit).rsplit("-", 1)[0]}


#: Where kaniko looks for registry credentials (its DOCKER_CONFIG default).
KANIKO_DOCKER_CONFIG = "/kaniko/.docker"


def docker_config_items(key: str) -> list[dict[str, str]]:
    """A docker-config Secret's key mounted as ``config.json``, the file kaniko reads;
    ``kubectl create secret docker-registry`` stores it under ``.dockerconfigjson``."""
    return [{"key": key, "path": "config.json"}]


class BuilderOptions(TypedDict, total=False):
    """The keyword options of ClusterBuilder (for subclasses that add their own)."""

    service_account: str | None
    timeout: float
    keep_runs: bool
    window: float
    kaniko_image: str
    dockerfile: str
    context: str
    docker_config_secret: str | None
    docker_config_key: str


class ClusterBuilder:
    """Builder port skeleton; subclasses give the kind, the manifest and how to read it.

    ``service_account``: the run's pod identity (image pull/push secrets, git credentials);
    ``docker_config_secret``: a Secret holding registry credentials (docker config JSON under
    ``docker_config_key``), mounted where kaniko reads it; ``dockerfile`` and ``context``:
    paths inside the repository (the Dockerfile is relative to the context).
    """

    kind: Kind

    def __init__(self, client: KubeClient, *, image: str, service_account: str | None = None,
                 timeout: float = 1800.0, keep_runs: bool = False, window: float = 30.0,
                 kaniko_image: str = KANIKO_IMAGE, dockerfile: str = "Dockerfile",
                 context: str = ".", docker_config_secret: str | None = None,
                 docker_config_key: str = ".dockerconfigjson") -> None:
        repository, _, digest = split_image(image)
        if digest:
            raise ConfigError(f"image must name a repository to push to, not a digest: {image!r}")
        self.client = client
        self.repository = repository
        self.service_account = service_account
        self.timeout = timeout
        self.keep_runs = keep_runs
        self.window = window
        self.kaniko_image = kaniko_image
        self.dockerfile = dockerfile
        self.context = context
        self.docker_config_secret = docker_config_secret
        self.docker_config_key = docker_config_key

    # -- for subclasses -------------------------------------------------------------------
    def manifest(self, name: str, repo: str, commit: str) -> JSON:
        """The run object that builds ``commit`` of ``repo`` under ``name``."""
        raise NotImplementedError

    def outcome(self, run: JSON) -> Outcome | None:
        """None while the run is still going."""
        raise NotImplementedError

    def cancel_patch(self) -> JSON:
        """The merge patch that cancels a run."""
        raise NotImplementedError

    # -- the port -------------------------------------------------------------------------
    def destination(self, commit: str) -> str:
        """The image tag a build of ``commit`` pushes to."""
        return f"{self.repository}:{commit}"

    def config_files(self, repo: str, commit: str, directory: str = ".canary") -> dict[str, str] | None:
        """The files under `directory` at `commit`: the build runs in the cluster, so the
        flow process fetches just that commit (shallow, into a temporary directory)."""
        check_source(repo, commit)
        return fetch_directory(repo, commit, directory)

    def build(self, repo: str, commit: str) -> str:
        """Run the build of ``commit`` and return ``<repository>@sha256:...``."""
        check_source(repo, commit)
        name = run_name(self.repository, commit)
        existing = self.client.get(self.kind, name)
        if existing is not None:
            previous = self.outcome(existing)
            if previous is not None and not previous.succeeded:  # build it again, fresh
                self.client.delete(self.kind, name, uid=maybe_text(existing, "metadata", "uid"))
                self.client.wait_for(self.kind, name, lambda obj: obj is None, timeout=30.0)
                existing = None
        if existing is None:
            # AlreadyExists: our own earlier, unanswered try created it; wait for that run
            with contextlib.suppress(ConflictError):
                self.client.create(self.kind, self.manifest(name, repo, commit))

        def check(run: JSON | None) -> bool:
            if run is None:
                raise BuildError(f"{self.kind.kind} {name!r} was deleted while it ran", transient=False)
            return self.outcome(run) is not None

        try:
            run = self.client.wait_for(self.kind, name, check, timeout=self.timeout, window=self.window)
        except WaitTimeout:
            with contextlib.suppress(PlatformError):  # best effort: its own timeout stops it too
                self.client.patch(self.kind, name, self.cancel_patch())
            raise BuildError(f"{self.kind.kind} {name!r} did not finish within {self.timeout:g}s; "
                             "it was cancelled", transient=False) from None
        assert run is not None
        result = self.outcome(run)
        assert result is not None
        if not result.succeeded:
            where = f" at step {result.step!r}" if result.step else ""
            logs = (f" (logs: kubectl logs -n {self.client.namespace} {result.pod}"
                    + (f" -c step-{result.step}" if result.step else "") + ")") if result.pod else ""
            raise BuildError(f"{self.kind.kind} {name!r} failed{where}: {result.reason}: "
                             f"{result.message}{logs}", transient=False)
        try:
            reference = pinned(self.repository, result.digest or "")
        except PlatformError as error:
            raise BuildError(f"{self.kind.kind} {name!r} succeeded but {error}", transient=False) from None
        if not self.keep_runs:
            self.client.delete(self.kind, name, uid=maybe_text(run, "metadata", "uid"))
        return reference


def succeeded_condition(run: JSON) -> JSON | None:
    """The ``Succeeded`` condition once it is final (True/False), else None."""
    for condition in entries(run, "status", "conditions"):
        if condition.get("type") == "Succeeded" and condition.get("status") in ("True", "False"):
            return condition
    return None
