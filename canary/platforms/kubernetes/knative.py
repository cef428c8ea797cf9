"""``KnativeBuilder``: a build.knative.dev/v1alpha1 Build, for clusters that still run it.

Knative Build clones ``spec.source.git`` into /workspace itself and has no task results, so
kaniko writes the digest to the step's termination message (``--digest-file=/dev/termination-log``)
and it is read back from ``status.stepStates``. Knative Build is archived upstream; prefer
TektonBuilder where Tekton is installed.
"""

from __future__ import annotations

from typing import Any

from .builds import (
    KANIKO_DOCKER_CONFIG,
    ClusterBuilder,
    Outcome,
    build_labels,
    docker_config_items,
    succeeded_condition,
)
from .client import Kind

BUILD = Kind("Build", "build.knative.dev", "v1alpha1", "builds")
BUILD_STEP = "build-and-push"


def build_manifest(name: str, *, repo: str, commit: str, destination: str, labels: dict[str, str],
                   timeout: float, kaniko_image: str, dockerfile: str, context: str,
                   service_account: str | None, docker_config_secret: str | None = None,
                   docker_config_key: str = ".dockerconfigjson") -> dict[str, Any]:
    folder = context.strip("/")
    workdir = "/workspace" if folder in ("", ".") else f"/workspace/{folder}"
    spec: dict[str, Any] = {
        "timeout": f"{max(1, int(timeout))}s",
        "source": {"git": {"url": repo, "revision": commit}},
        "steps": [{
            "name": BUILD_STEP,
            "image": kaniko_image,
            "args": [f"--dockerfile={workdir}/{dockerfile}",
                     f"--context={workdir}",
                     f"--destination={destination}",
                     "--digest-file=/dev/termination-log"],
        }],
    }
    if service_account:
        spec["serviceAccountName"] = service_account
    if docker_config_secret:  # registry credentials: a volume where kaniko reads them
        spec["volumes"] = [{"name": "docker-config", "secret": {
            "secretName": docker_config_secret, "items": docker_config_items(docker_config_key)}}]
        spec["steps"][0]["volumeMounts"] = [{"name": "docker-config", "mountPath": KANIKO_DOCKER_CONFIG,
                                             "readOnly": True}]
    return {"apiVersion": BUILD.api_version, "kind": "Build",
            "metadata": {"name": name, "labels": labels}, "spec": spec}


def build_outcome(run: dict[str, Any]) -> Outcome | None:
    """Read a Build: None while running; step states line up with ``spec.steps``."""
    condition = succeeded_condition(run)
    if condition is None:
        return None
    status = run.get("status") or {}
    steps = [s.get("name", f"step-{i}") for i, s in enumerate(run["spec"].get("steps") or [])]
    states = [s.get("terminated") or {} for s in status.get("stepStates") or []]
    pod = (status.get("cluster") or {}).get("podName")
    if condition["status"] == "True":
        index = steps.index(BUILD_STEP) if BUILD_STEP in steps else len(steps) - 1
        digest = states[index].get("message") if index < len(states) else None
        return Outcome(True, digest=digest, pod=pod)
    failed = next((i for i, s in enumerate(states) if s.get("exitCode", 0) != 0), None)
    step = steps[failed] if failed is not None and failed < len(steps) else None
    message = condition.get("message", "")
    if failed is not None and states[failed].get("message"):
        message = f"{message} ({states[failed]['message']})"
    return Outcome(False, reason=condition.get("reason", "") or "BuildFailed", message=message,
                   step=step, pod=pod)


class KnativeBuilder(ClusterBuilder):
    """Builder port over Knative Build (``image``: the repository to push)."""

    kind = BUILD

    def manifest(self, name: str, repo: str, commit: str) -> dict[str, Any]:
        return build_manifest(name, repo=repo, commit=commit, destination=self.destination(commit),
                              labels=build_labels(self.repository, commit), timeout=self.timeout,
                              kaniko_image=self.kaniko_image, dockerfile=self.dockerfile,
                              context=self.context, service_account=self.service_account,
                              docker_config_secret=self.docker_config_secret,
                              docker_config_key=self.docker_config_key)

    def outcome(self, run: dict[str, Any]) -> Outcome | None:
        return build_outcome(run)

    def cancel_patch(self) -> dict[str, Any]:
        return {"spec": {"status": "BuildCancelled"}}
