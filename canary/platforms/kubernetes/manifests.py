"""Pure functions that build and read Deployment manifests (no I/O, so they are unit-tested).

Baseline and canary are copies of production's pod template, told apart by a ``track``
label that is added to both the selector and the pod labels, so each Deployment owns only its
own pods while the Service (which selects production's labels) still reaches all of them and
Istio subsets split the traffic by track.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from canary.errors import ConfigError, PlatformError

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "prefect-canary"
APP_LABEL = "canary.prefect.io/app"
ORIGINAL_ANNOTATION = "canary.prefect.io/original"
TRACKS = ("baseline", "canary")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_FATAL_WAITING = {"CrashLoopBackOff", "InvalidImageName", "CreateContainerConfigError",
                  "CreateContainerError", "RunContainerError"}


def managed_labels(app: str) -> dict[str, str]:
    return {MANAGED_BY: MANAGER, APP_LABEL: app}


def is_managed(obj: dict[str, Any], app: str) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    return labels.get(MANAGED_BY) == MANAGER and labels.get(APP_LABEL) == app


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """``registry/repo:tag@sha256:x`` -> (``registry/repo``, tag, digest)."""
    name, _, digest = image.partition("@")
    repo, tag = name, None
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = name.rsplit(":", 1)
    return repo, tag, digest or None


def pinned(repository: str, digest: str) -> str:
    """An image reference pinned by digest; refuses anything that is not a sha256 digest."""
    digest = digest.strip()
    if not _DIGEST.match(digest):
        raise PlatformError(f"the build reported {digest!r}, not an image digest (sha256:<64 hex>)",
                            transient=False)
    return f"{split_image(repository)[0]}@{digest}"


def version_label(image: str) -> str:
    """A label value (<= 63 chars) naming an image's version: its digest or tag."""
    _, tag, digest = split_image(image)
    if digest:
        return digest.replace(":", "-")[:23]
    value = re.sub(r"[^A-Za-z0-9_.-]", "-", tag or "untagged")[:63].strip("-_.")
    return value or "untagged"


def selector_string(selector: dict[str, Any], extra: dict[str, str] | None = None) -> str:
    """A LabelSelector as the ``labelSelector`` query string."""
    terms = [f"{k}={v}" for k, v in {**(selector.get("matchLabels") or {}), **(extra or {})}.items()]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], ",".join(expr.get("values") or [])
        terms.append({"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})",
                      "Exists": key, "DoesNotExist": f"!{key}"}[op])
    return ",".join(terms)


def target_container(deployment: dict[str, Any], container: str | None) -> dict[str, Any]:
    """The container whose image a release replaces: the named one, or the first."""
    containers = deployment["spec"]["template"]["spec"]["containers"]
    if container is None:
        return containers[0]
    for candidate in containers:
        if candidate["name"] == container:
            return candidate
    names = ", ".join(c["name"] for c in containers)
    raise ConfigError(f"Deployment {deployment['metadata']['name']!r} has no container "
                      f"{container!r} (it has: {names}); set container= to one of them")


def production_track(production: dict[str, Any], track_label: str) -> str:
    """The track label value of production's pods, which the primary subset selects.

    Without it the primary subset cannot exclude baseline and canary pods, so refuse early,
    before anything is created, and say how to fix it.
    """
    name = production["metadata"]["name"]
    labels = production["spec"]["template"].get("metadata", {}).get("labels") or {}
    value = labels.get(track_label)
    if not value or value in TRACKS:
        raise ConfigError(
            f"production Deployment {name!r} needs a {track_label!r} label on its pods that is not "
            f"baseline/canary (e.g. {track_label}: primary in spec.template.metadata.labels, not in "
            "the selector), so traffic can be split by track")
    return value


def derived_deployment(production: dict[str, Any], *, track: str, image: str,
                       replicas: int | None, container: str | None, track_label: str,
                       version_key: str) -> dict[str, Any]:
    """The ``<app>-<track>`` Deployment: production's pod template, another track and image.

    Production's own metadata labels are not copied (a GitOps tool tracking them would prune
    or adopt our copy); its pod labels and annotations are, so the Service, sidecars and
    scraping treat the copy like production.
    """
    if track not in TRACKS:
        raise ConfigError(f"track must be one of {TRACKS}, not {track!r}")
    app = production["metadata"]["name"]
    spec = copy.deepcopy(production["spec"])
    spec.pop("paused", None)
    spec["replicas"] = spec.get("replicas", 1) if replicas is None else replicas
    selector = spec.setdefault("selector", {})
    selector["matchLabels"] = {**(selector.get("matchLabels") or {}), track_label: track}
    template_meta = spec["template"].setdefault("metadata", {})
    template_meta["labels"] = {**(template_meta.get("labels") or {}), track_label: track,
                               version_key: version_label(image)}
    template_meta.pop("creationTimestamp", None)
    probe = {"metadata": {"name": app}, "spec": spec}
    target_container(probe, container)["image"] = image
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"{app}-{track}",
                     "labels": {**managed_labels(app), track_label: track},
                     "annotations": {"canary.prefect.io/source": app}},
        "spec": spec,
    }


def rollout_progress(deployment: dict[str, Any]) -> tuple[bool, str]:
    """(done, what is missing), as ``kubectl rollout status`` decides it.

    Raises PlatformError once the Deployment reports ProgressDeadlineExceeded: waiting
    longer cannot help.
    """
    meta, spec = deployment["metadata"], deployment.get("spec", {})
    status = deployment.get("status") or {}
    name, generation = meta["name"], meta.get("generation", 0)
    if status.get("observedGeneration", 0) < generation:
        return False, f"waiting for the controller to observe generation {generation}"
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            raise PlatformError(f"Deployment {name!r} exceeded its progress deadline: "
                                f"{condition.get('message', '')}", transient=False)
    want = spec.get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    if updated < want:
        return False, f"{updated} of {want} replicas updated"
    if status.get("replicas", 0) > updated:
        return False, f"{status['replicas'] - updated} old replicas pending termination"
    available = status.get("availableReplicas", 0)
    if available < updated:
        return False, f"{available} of {updated} updated replicas available"
    return True, f"{available} of {want} replicas ready"


def pod_problems(pods: list[dict[str, Any]]) -> tuple[list[str], bool]:
    """Why pods are not ready (deduplicated), and whether waiting longer is pointless."""
    problems: list[str] = []
    fatal = False
    for pod in pods:
        name = pod["metadata"]["name"]
        status = pod.get("status") or {}
        for condition in status.get("conditions") or []:
            if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
                problems.append(f"{condition.get('reason')}: {condition.get('message', '')}")
        for container in status.get("containerStatuses") or []:
            waiting = (container.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason")
            if reason and reason not in ("ContainerCreating", "PodInitializing"):
                last = ((container.get("lastState") or {}).get("terminated") or {})
                exit_info = f", last exit code {last['exitCode']}" if "exitCode" in last else ""
                problems.append(f"container {container['name']} {reason} "
                                f"({container.get('restartCount', 0)} restarts{exit_info})")
                fatal = fatal or reason in _FATAL_WAITING
        if not problems and status.get("phase") == "Failed":
            problems.append(f"pod {name} failed: {status.get('reason', '')}")
    return list(dict.fromkeys(problems)), fatal
