"""Pure functions that build and read Deployment manifests (no I/O, so they are unit-tested).

Labels and selectors (docs/kubernetes.md says why, against Flagger and Argo Rollouts):
production selects its pods with ``prefect-canary.dev/track: primary`` among its selector's
labels; baseline and canary are copies of production's pod template with that label set to
``baseline`` / ``canary`` in both their selector and their pods. So production's selector
(which its HPA scales by) never matches a baseline or canary pod, each Deployment owns only
its own pods, and the Service (which selects without the track label) still reaches all of
them, so Istio subsets can split the traffic by track.
"""

from __future__ import annotations

import copy
import re

from canary.errors import ConfigError, PlatformError

from .objects import JSON, child, entries, field, labels, number, text, value

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "prefect-canary"
#: Our own label and annotation prefix (a domain this project controls).
PREFIX = "prefect-canary.dev/"
APP_LABEL = f"{PREFIX}app"
TRACK_LABEL = f"{PREFIX}track"
SOURCE_ANNOTATION = f"{PREFIX}source"
ORIGINAL_ANNOTATION = f"{PREFIX}original"
PRIMARY = "primary"
#: Where releases before the prefix change put the same things; still read (never written),
#: so their leftovers (a crashed run's copies, a recorded VirtualService) are cleaned up.
LEGACY_APP_LABEL = "canary.prefect.io/app"
LEGACY_ORIGINAL_ANNOTATION = "canary.prefect.io/original"
TRACKS = ("baseline", "canary")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_FATAL_WAITING = {"CrashLoopBackOff", "InvalidImageName", "CreateContainerConfigError",
                  "CreateContainerError", "RunContainerError"}


def managed_labels(app: str) -> dict[str, str]:
    """The labels marking an object as made by this tool for `app`."""
    return {MANAGED_BY: MANAGER, APP_LABEL: app}


def is_managed(obj: JSON, app: str) -> bool:
    """True when `obj` carries `managed_labels(app)` (or the legacy app label)."""
    found = labels(obj, "metadata", "labels")
    return found.get(MANAGED_BY) == MANAGER and app in (found.get(APP_LABEL), found.get(LEGACY_APP_LABEL))


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


def default_pull_policy(image: str) -> str:
    """The imagePullPolicy the API server fills in for ``image`` when none is given: Always
    for ``:latest`` or no tag at all, IfNotPresent otherwise (a digest alone included)."""
    _, tag, digest = split_image(image)
    return "Always" if tag == "latest" or (tag is None and digest is None) else "IfNotPresent"


def version_label(image: str) -> str:
    """A label value (<= 63 chars) naming an image's version: its digest or tag."""
    _, tag, digest = split_image(image)
    if digest:
        return digest.replace(":", "-")[:23]
    value = re.sub(r"[^A-Za-z0-9_.-]", "-", tag or "untagged")[:63].strip("-_.")
    return value or "untagged"


def selector_string(selector: JSON, extra: dict[str, str] | None = None) -> str:
    """A LabelSelector as the ``labelSelector`` query string."""
    terms = [f"{k}={v}" for k, v in {**labels(selector, "matchLabels"), **(extra or {})}.items()]
    for expr in entries(selector, "matchExpressions"):
        listed = value(expr, "values")
        key, op = text(expr, "key"), text(expr, "operator")
        values = ",".join(map(str, listed)) if isinstance(listed, list) else ""
        terms.append({"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})",
                      "Exists": key, "DoesNotExist": f"!{key}"}[op])
    return ",".join(terms)


def target_container(deployment: JSON, container: str | None) -> JSON:
    """The container whose image a release replaces: the named one, or the first."""
    containers = entries(deployment, "spec", "template", "spec", "containers")
    if container is None:
        return containers[0]
    for candidate in containers:
        if candidate.get("name") == container:
            return candidate
    names = ", ".join(text(c, "name") for c in containers)
    raise ConfigError(f"Deployment {text(deployment, 'metadata', 'name')!r} has no container "
                      f"{container!r} (it has: {names}); set container= to one of them")


def production_track(production: JSON, track_label: str = TRACK_LABEL) -> str:
    """The track value production's *selector* requires (``primary``), which the primary
    subset selects and baseline/canary pods never carry.

    A selector without it would also select the baseline and canary pods (they carry every
    other label of production's pods, so the Service reaches them), and production's HPA
    and PDB would count them. Selectors are immutable, so this cannot be fixed for the user:
    refuse before anything is created, and say exactly what to change.
    """
    name = text(production, "metadata", "name")
    selector = field(production, "spec", "selector")
    track = labels(selector, "matchLabels").get(track_label)
    if track and track not in TRACKS:
        return track
    shown = selector_string(selector) or "{}"
    if track:
        raise ConfigError(
            f"production Deployment {name!r} selects {track_label}={track}, a value reserved for "
            f"the copies this tool makes; use {track_label}: {PRIMARY} in its selector and pod labels")
    raise ConfigError(
        f"production Deployment {name!r} selects its pods by {shown!r}, which would also select "
        "the baseline and canary pods (they keep production's labels to stay behind its Service), "
        "so production's HPA and PDB would count them. Add "
        f"'{track_label}: {PRIMARY}' to BOTH spec.selector.matchLabels and "
        f"spec.template.metadata.labels of Deployment {name!r} (and to the selector of its "
        "PodDisruptionBudget, if any), not to the Service's selector. A Deployment's selector "
        "cannot be changed in place: re-create it without stopping its pods, e.g. "
        f"`kubectl delete deployment {name} --cascade=orphan` then `kubectl apply` the edited "
        "manifest (docs/kubernetes.md, 'Labels and selectors')")


def canary_replicas(production: JSON, max_share: int) -> int:
    """Enough pods for the canary's largest share: ceil(production's replicas x share / 100),
    at least 1 (a 40-replica app at 10 % gets 4 baseline + 4 canary, not 40 + 40)."""
    replicas = number(production, "spec", "replicas", default=1 if "replicas" not in field(production, "spec") else 0)
    return max(1, -(-replicas * max_share // 100))


def derived_deployment(production: JSON, *, track: str, image: str,
                       replicas: int, container: str | None, track_label: str = TRACK_LABEL,
                       version_key: str = "version") -> JSON:
    """The ``<app>-<track>`` Deployment: production's pod template, another track and image.

    Production's own metadata labels are not copied (a GitOps tool tracking them would prune
    or adopt our copy); its pod labels and annotations are, so the Service, sidecars and
    scraping treat the copy like production; only the track label differs, in the selector
    and the pods, which is what keeps production's selector off the copy's pods.
    """
    if track not in TRACKS:
        raise ConfigError(f"track must be one of {TRACKS}, not {track!r}")
    app = text(production, "metadata", "name")
    spec = copy.deepcopy(field(production, "spec"))
    spec.pop("paused", None)
    spec["replicas"] = replicas
    selector = child(spec, "selector")
    selector["matchLabels"] = {**field(selector, "matchLabels"), track_label: track}
    template_meta = child(child(spec, "template"), "metadata")
    template_meta["labels"] = {**field(template_meta, "labels"), track_label: track,
                               version_key: version_label(image)}
    template_meta.pop("creationTimestamp", None)
    probe = {"metadata": {"name": app}, "spec": spec}
    target = target_container(probe, container)
    # production's template comes back from the server with imagePullPolicy defaulted for
    # production's image (IfNotPresent for a digest); copied as is, a canary of `app:latest`
    # would run whatever `latest` a node has cached. Default it again for the new image,
    # unless production's differs from its own default (then the user chose it: kept).
    if target.get("imagePullPolicy") == default_pull_policy(text(target, "image")):
        target["imagePullPolicy"] = default_pull_policy(image)
    target["image"] = image
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"{app}-{track}",
                     "labels": {**managed_labels(app), track_label: track},
                     "annotations": {SOURCE_ANNOTATION: app}},
        "spec": spec,
    }


def rollout_progress(deployment: JSON) -> tuple[bool, str]:
    """(done, what is missing), as ``kubectl rollout status`` decides it.

    Raises PlatformError once the Deployment reports ProgressDeadlineExceeded: waiting
    longer cannot help.
    """
    status = field(deployment, "status")
    name, generation = text(deployment, "metadata", "name"), number(deployment, "metadata", "generation")
    if number(status, "observedGeneration") < generation:
        return False, f"waiting for the controller to observe generation {generation}"
    for condition in entries(status, "conditions"):
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            raise PlatformError(f"Deployment {name!r} exceeded its progress deadline: "
                                f"{text(condition, 'message')}", transient=False)
    want = number(deployment, "spec", "replicas", default=1)
    updated = number(status, "updatedReplicas")
    if updated < want:
        return False, f"{updated} of {want} replicas updated"
    if number(status, "replicas") > updated:
        return False, f"{number(status, 'replicas') - updated} old replicas pending termination"
    available = number(status, "availableReplicas")
    if available < updated:
        return False, f"{available} of {updated} updated replicas available"
    return True, f"{available} of {want} replicas ready"


def deployment_conditions(deployment: JSON) -> str:
    """The Deployment controller's own verdict, as ``kubectl describe`` lists it: each
    condition's type, status and reason, with the message of the ones that say something is
    wrong (Available/Progressing not True, ReplicaFailure True, e.g. a quota refusing pods)."""
    parts = []
    for condition in entries(deployment, "status", "conditions"):
        kind, status = text(condition, "type", default="?"), text(condition, "status", default="?")
        line = f"{kind}={status} {text(condition, 'reason')}".rstrip()
        wrong = status == "True" if kind == "ReplicaFailure" else status != "True"
        if wrong and condition.get("message"):
            line += f" ({condition['message']})"
        parts.append(line)
    return "conditions " + ", ".join(parts) if parts else "no conditions reported yet"


def current_pods(deployment: JSON, pods: list[JSON]) -> list[JSON]:
    """The pods of the Deployment's current template, not yet terminating.

    During a rolling update the old ReplicaSet's pods are still listed (crash-looping ones
    too, until the controller deletes them, then terminating until their kubelet is done):
    they are being replaced, so they say nothing about the new rollout. A pod is current when
    it carries the template's labels and runs the template's images (sidecars a webhook
    injected aside); the pod-template-hash that would say it exactly is the ReplicaSet's.
    """
    template = field(deployment, "spec", "template")
    wanted = labels(template, "metadata", "labels").items()
    images = {c.get("name"): c.get("image") for c in entries(template, "spec", "containers")}

    def current(pod: JSON) -> bool:
        running = {c.get("name"): c.get("image") for c in entries(pod, "spec", "containers")}
        return (not value(pod, "metadata", "deletionTimestamp")
                and wanted <= labels(pod, "metadata", "labels").items()
                and all(running.get(name) == image for name, image in images.items()))

    return [pod for pod in pods if current(pod)]


def pod_problems(pods: list[JSON]) -> tuple[list[str], bool]:
    """Why pods are not ready (deduplicated), and whether waiting longer is pointless."""
    problems: list[str] = []
    fatal = False
    for pod in pods:
        name = text(pod, "metadata", "name")
        status = field(pod, "status")
        for condition in entries(status, "conditions"):
            if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
                problems.append(f"{condition.get('reason')}: {text(condition, 'message')}")
        for container in entries(status, "containerStatuses"):
            reason = text(container, "state", "waiting", "reason")
            if reason and reason not in ("ContainerCreating", "PodInitializing"):
                last = field(container, "lastState", "terminated")
                exit_info = f", last exit code {last['exitCode']}" if "exitCode" in last else ""
                problems.append(f"container {text(container, 'name')} {reason} "
                                f"({number(container, 'restartCount')} restarts{exit_info})")
                fatal = fatal or reason in _FATAL_WAITING
        if not problems and status.get("phase") == "Failed":
            problems.append(f"pod {name} failed: {text(status, 'reason')}")
    return list(dict.fromkeys(problems)), fatal
