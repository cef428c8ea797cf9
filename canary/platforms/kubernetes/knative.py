"""``KnativeBuilder``: a build.knative.dev/v1alpha1 Build, for clusters that still run it.

Knative Build clones ``spec.source.git`` into /workspace itself and has no task results, so
kaniko writes the digest to the step's termination message (``--digest-file=/dev/termination-log``)
and it is read back from ``status.stepStates``. Knative Build is archived upstream; prefer
TektonBuilder where Tekton is installed.
"""

from __future__ import annotations

from .builds import (
    KANIKO_DOCKER_CONFIG,
    ClusterBuilder,
    Outcome,
    build_labels,
    docker_config_items,
    succeeded_condition,
)
from .client import Kind
from .objects import JSON, entries, field, maybe_text, number, text

BUILD = Kind("Build", "build.knative.dev", "v1alpha1", "builds")
BUILD_STEP = "build-and-push"


def build_manifest(name: str, *, repo: str, commit: str, destination: str, labels: dict[str, str],
                   timeout: float, kaniko_image: str, dockerfile: str, context: str,
                   service_account: str | None, docker_config_secret: str | None = None,
                   docker_config_key: str = ".dockerconfigjson") -> JSON:
    """The Build that builds ``commit`` of ``repo`` and pushes its image to ``destination``."""
    folder = context.strip("/")
    workdir = "/workspace" if folder in ("", ".") else f"/workspace/{folder}"
    step: JSON = {
        "name": BUILD_STEP,
        "image": kaniko_image,
        "args": [f"--dockerfile={workdir}/{dockerfile}",
                 f"--context={workdir}",
                 f"--destination={destination}",
                 "--digest-file=/dev/termination-log"],
    }
    spec: JSON = {
        "timeout": f"{max(1, int(timeout))}s",
        "source": {"git": {"url": repo, "revision": commit}},
        "steps": [step],
    }
    if service_account:
        spec["serviceAccountName"] = service_account
    if docker_config_secret:  # registry credentials: a volume where kaniko reads them
        spec["volumes"] = [{"name": "docker-config", "secret": {
            "secretName": docker_config_secret, "items": docker_config_items(docker_config_key)}}]
        step["volumeMounts"] = [{"name": "docker-config", "mountPath": KANIKO_DOCKER_CONFIG,
                                             "readOnly": True}]
    return {"apiVersion": BUILD.api_version, "kind": "Build",
            "metadata": {"name": name, "labels": labels}, "spec": spec}


def build_outcome(run: JSON) -> Outcome | None:
    """Read a Build: None while running; step states line up with ``spec.steps``."""
    condition = succeeded_condition(run)
    if condition is None:
        return None
    status = field(run, "status")
    steps = [text(s, "name", default=f"step-{i}") for i, s in enumerate(entries(run, "spec", "steps"))]
    states = [field(s, "terminated") for s in entries(status, "stepStates")]
    pod = maybe_text(status, "cluster", "podName")
    if condition["status"] == "True":
        index = steps.index(BUILD_STEP) if BUILD_STEP in steps else len(steps) - 1
        digest = maybe_text(states[index], "message") if index < len(states) else None
        return Outcome(True, digest=digest, pod=pod)
    failed = next((i for i, s in enumerate(states) if number(s, "exitCode") != 0), None)
    step = steps[failed] if failed is not None and failed < len(steps) else None
    message = text(condition, "message")
    if failed is not None and text(states[failed], "message"):
        message = f"{message} ({text(states[failed], 'message')})"
    return Outcome(False, reason=text(condition, "reason") or "BuildFailed", message=message,
                   step=step, pod=pod)


class KnativeBuilder(ClusterBuilder):
    """Builder port over Knative Build (``image``: the repository to push)."""

    kind = BUILD

    def manifest(self, name: str, repo: str, commit: str) -> JSON:
        """The Build of ``commit`` (build_manifest with this builder's options)."""
        return build_manifest(name, repo=repo, commit=commit, destination=self.destination(commit),
                              labels=build_labels(self.repository, commit), timeout=self.timeout,
                              kaniko_image=self.kaniko_image, dockerfile=self.dockerfile,
                              context=self.context, service_account=self.service_account,
                              docker_config_secret=self.docker_config_secret,
                              docker_config_key=self.docker_config_key)

    def outcome(self, run: JSON) -> Outcome | None:
        """The Build's outcome (build_outcome)."""
        return build_outcome(run)

    def cancel_patch(self) -> JSON:
        """Knative's cancel: status BuildCancelled."""
        return {"spec": {"status": "BuildCancelled"}}
