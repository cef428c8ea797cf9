"""``TektonBuilder``: a tekton.dev/v1 TaskRun that clones the commit and builds it with kaniko.

The Task is inline (no Task or catalog to install first); the digest comes back as the
``IMAGE_DIGEST`` task result, which kaniko writes with ``--digest-file``. The repository URL
and commit reach the clone script as environment variables, never spliced into the script,
so an odd URL cannot inject shell.
"""

from __future__ import annotations

from typing import Unpack

from .builds import (
    BuilderOptions,
    ClusterBuilder,
    Outcome,
    build_labels,
    docker_config_items,
    succeeded_condition,
)
from .client import Kind, KubeClient
from .objects import JSON, entries, field, maybe_text, number, text

TASKRUN = Kind("TaskRun", "tekton.dev", "v1", "taskruns")
GIT_IMAGE = "docker.io/alpine/git:2.45.2"
_CLONE = """#!/bin/sh
set -eu
git init -q .
git remote add origin "$REPO_URL"
git fetch -q --depth 1 origin "$REVISION"
git checkout -q FETCH_HEAD
"""
_PARAMS = ("repo-url", "revision", "image", "dockerfile", "context")


def taskrun_manifest(name: str, *, repo: str, commit: str, destination: str, labels: dict[str, str],
                     timeout: float, kaniko_image: str, git_image: str, dockerfile: str,
                     context: str, service_account: str | None,
                     docker_config_secret: str | None = None,
                     docker_config_key: str = ".dockerconfigjson") -> JSON:
    """The TaskRun that clones ``commit`` of ``repo`` and pushes its image to ``destination``."""
    values = dict(zip(_PARAMS, (repo, commit, destination, dockerfile, context), strict=True))
    workspaces: list[JSON] = [{"name": "source", "emptyDir": {}}]
    task_workspaces: list[JSON] = [{"name": "source"}]
    build: JSON = {"name": "build-and-push", "image": kaniko_image,
                   "args": ["--dockerfile=$(params.dockerfile)",
                            "--context=$(workspaces.source.path)/$(params.context)",
                            "--destination=$(params.image)",
                            "--digest-file=$(results.IMAGE_DIGEST.path)"]}  # fmt: skip
    spec: JSON = {
        "timeout": f"{max(1, int(timeout))}s",
        "params": [{"name": p, "value": values[p]} for p in _PARAMS],
        "workspaces": workspaces,
        "taskSpec": {
            "params": [{"name": p, "type": "string"} for p in _PARAMS],
            "workspaces": task_workspaces,
            "results": [{"name": "IMAGE_DIGEST", "type": "string",
                         "description": "sha256 digest of the pushed image"}],
            "steps": [
                {"name": "clone", "image": git_image, "workingDir": "$(workspaces.source.path)",
                 "env": [{"name": "REPO_URL", "value": "$(params.repo-url)"},
                         {"name": "REVISION", "value": "$(params.revision)"}],
                 "script": _CLONE},
                build,
            ],
        },
    }
    if service_account:
        spec["serviceAccountName"] = service_account
    if docker_config_secret:  # registry credentials: a workspace kaniko finds via DOCKER_CONFIG
        workspaces.append({"name": "dockerconfig", "secret": {
            "secretName": docker_config_secret, "items": docker_config_items(docker_config_key)}})
        task_workspaces.append({"name": "dockerconfig", "readOnly": True,
                                "description": "docker config.json with registry credentials"})
        build["env"] = [{"name": "DOCKER_CONFIG", "value": "$(workspaces.dockerconfig.path)"}]
    return {"apiVersion": TASKRUN.api_version, "kind": "TaskRun",
            "metadata": {"name": name, "labels": labels}, "spec": spec}


def taskrun_outcome(run: JSON) -> Outcome | None:
    """Read a TaskRun: None while running; the failing step is the first non-zero exit."""
    condition = succeeded_condition(run)
    if condition is None:
        return None
    status = field(run, "status")
    pod = maybe_text(status, "podName")
    if condition["status"] == "True":
        digest = next((r.get("value") for r in entries(status, "results")
                       if r.get("name") == "IMAGE_DIGEST"), None)
        return Outcome(True, digest=str(digest) if digest is not None else None, pod=pod)
    failed = next((s for s in entries(status, "steps")
                   if number(s, "terminated", "exitCode") != 0), None)
    message = text(condition, "message")
    if failed is not None and text(failed, "terminated", "message"):
        message = f"{message} ({text(failed, 'terminated', 'message')})"
    return Outcome(False, reason=text(condition, "reason"), message=message,
                   step=maybe_text(failed, "name") if failed else None, pod=pod)


class TektonBuilder(ClusterBuilder):
    """Builder port over Tekton (``image``: the repository to push, e.g. reg/team/app)."""

    kind = TASKRUN

    def __init__(self, client: KubeClient, *, image: str, git_image: str = GIT_IMAGE,
                 **options: Unpack[BuilderOptions]) -> None:  # fmt: skip
        """A builder pushing to ``image``; ``git_image`` runs the clone step."""
        super().__init__(client, image=image, **options)
        self.git_image = git_image

    def manifest(self, name: str, repo: str, commit: str) -> JSON:
        """The TaskRun building ``commit`` (taskrun_manifest with this builder's options)."""
        return taskrun_manifest(name, repo=repo, commit=commit, destination=self.destination(commit),
                                labels=build_labels(self.repository, commit), timeout=self.timeout,
                                kaniko_image=self.kaniko_image, git_image=self.git_image,
                                dockerfile=self.dockerfile, context=self.context,
                                service_account=self.service_account,
                                docker_config_secret=self.docker_config_secret,
                                docker_config_key=self.docker_config_key)

    def outcome(self, run: JSON) -> Outcome | None:
        """The TaskRun's outcome (taskrun_outcome)."""
        return taskrun_outcome(run)

    def cancel_patch(self) -> JSON:
        """Tekton's cancel: status TaskRunCancelled."""
        return {"spec": {"status": "TaskRunCancelled"}}
