"""``KubernetesWorkloads``: baseline and canary Deployments next to production, and promotion.

Every method is safe to repeat after a transient error (the tasks retry): deploy creates or
updates, remove ignores what is gone, promote is a patch that changes nothing the second
time. Only Deployments labelled as ours are ever updated or deleted, so a user's
``<app>-canary`` that happens to exist is refused, not overwritten.

Routers that split by Service (the Gateway API's backendRefs) need one Service per track:
``TrackServices`` makes ``<app>-<track>`` as a copy of the app's Service (its ports, its
selector plus the track label), and removes it again; the same ownership rule applies.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

from canary.errors import ConfigError, PlatformError
from canary.values.tracks import Track

from .client import DEPLOYMENT, POD, Kind, KubeClient
from .errors import ConflictError
from .manifests import (
    MANAGED_BY,
    MANAGER,
    SOURCE_ANNOTATION,
    TRACK_LABEL,
    canary_replicas,
    current_pods,
    deployment_conditions,
    derived_deployment,
    is_managed,
    managed_labels,
    pod_problems,
    production_track,
    rollout_progress,
    selector_string,
    target_container,
    version_label,
)
from .objects import JSON, child, entries, labels, maybe_text, text
from .objects import field as part

SERVICE = Kind("Service", "", "v1", "services", "CoreV1Api", "service")
#: What a per-track Service keeps of each port of the app's Service (not nodePort: a
#: ClusterIP Service has none, and it would clash with the app's).
_PORT_KEYS = ("name", "protocol", "appProtocol", "port", "targetPort")


def track_service(source: JSON, app: str, track: str, value: str, track_label: str) -> JSON:
    """The ``<app>-<track>`` Service: ``source``'s ports and selector, plus the track label.

    Args:
        source: the app's Service, as the server holds it.
        app: the app's name.
        track: primary, baseline or canary (the name's suffix).
        value: the track label's value its pods carry (production's: usually primary).
        track_label: the pod label telling the tracks apart.

    Returns:
        The Service manifest, labelled as ours.

    Raises:
        ConfigError: ``source`` selects no pods (a Service without a selector).
    """
    selector = labels(source, "spec", "selector")
    if not selector:
        raise ConfigError(f"Service {text(source, 'metadata', 'name')!r} has no selector; "
                          "the per-track Services copy it and add the track label")
    ports = [{k: p[k] for k in _PORT_KEYS if k in p} for p in entries(source, "spec", "ports")]
    ours: dict[str, str] = {**managed_labels(app), track_label: value}
    selects: dict[str, str] = {**selector, track_label: value}
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": f"{app}-{track}", "labels": ours,
                         "annotations": {SOURCE_ANNOTATION: text(source, "metadata", "name")}},
            "spec": {"type": "ClusterIP", "selector": selects,
                     "ports": ports}}


class TrackServices:
    """The per-track Services ``<app>-<track>`` next to the app's Service: made, removed.

    Only Services labelled as ours are ever replaced or deleted.
    """

    def __init__(self, client: KubeClient, track_label: str = TRACK_LABEL) -> None:
        """Bind the client.

        Args:
            client: the namespaced client.
            track_label: the pod label telling the tracks apart.
        """
        self.client = client
        self.track_label = track_label

    def ensure(self, app: str, track: str, source: str, value: str) -> None:
        """Make ``<app>-<track>`` select ``source``'s pods of track ``value``, read back.

        Raises:
            ConfigError: ``source`` is missing or has no selector, or a Service of that name
                exists and is not ours.
            PlatformError: the Service does not read back as written.
        """
        found = self.client.get(SERVICE, source)
        if found is None:
            raise ConfigError(f"Service {source!r} not found in namespace "
                              f"{self.client.namespace!r}; the per-track Services copy it")
        wanted = track_service(found, app, track, value, self.track_label)
        name = text(wanted, "metadata", "name")
        existing = self.client.get(SERVICE, name)
        if existing is not None and not is_managed(existing, app):
            raise ConfigError(f"Service {name!r} exists but was not created by {MANAGER}; "
                              "rename or delete it, it will not be overwritten")
        if existing is not None and not _same_service(existing, wanted):
            # made from the app's Service as it was (a Service has no finalizer: gone at once)
            self.client.delete(SERVICE, name, uid=maybe_text(existing, "metadata", "uid"))
            existing = None
        if existing is None:
            with contextlib.suppress(ConflictError):  # made meanwhile (our own earlier try)
                self.client.create(SERVICE, wanted)
        back = self.client.get(SERVICE, name)
        if back is None or not _same_service(back, wanted):
            raise PlatformError(f"Service {name!r} does not select what was just written (being "
                                "replaced, or another controller changes it)", transient=True)

    def remove(self, app: str, track: str) -> None:
        """Delete ``<app>-<track>`` if it exists and is ours; idempotent.

        Raises:
            ConfigError: it exists and is not ours.
        """
        name = f"{app}-{track}"
        existing = self.client.get(SERVICE, name)
        if existing is None:
            return
        if not is_managed(existing, app):
            raise ConfigError(f"Service {name!r} was not created by {MANAGER}; not deleting it")
        try:
            self.client.delete(SERVICE, name, uid=maybe_text(existing, "metadata", "uid"))
        except ConflictError:  # replaced meanwhile: look again
            self.remove(app, track)


def _same_service(found: JSON, wanted: JSON) -> bool:
    """True when ``found`` selects and exposes what ``wanted`` says (server defaults aside)."""
    ports = [{k: p[k] for k in _PORT_KEYS if k in p} for p in entries(found, "spec", "ports")]
    wanted_ports = entries(wanted, "spec", "ports")
    same_ports = len(ports) == len(wanted_ports) and all(
        w.items() <= p.items() for p, w in zip(ports, wanted_ports, strict=True))
    return labels(found, "spec", "selector") == labels(wanted, "spec", "selector") and same_ports


@dataclass
class _WaitState:
    """What a rollout wait last saw, for its timeout message."""

    progress: str = "not read yet"
    checked: float = field(default_factory=time.monotonic)
    obj: JSON | None = None


class KubernetesWorkloads:
    """Workloads port over the Deployments ``<app>``, ``<app>-baseline``, ``<app>-canary``.

    ``replicas``: for baseline and canary each (default: enough for ``max_share``, the
    canary's largest traffic share in percent, see ``canary_replicas``); ``container``: the
    one whose image a release replaces (default: the first); ``rollout_timeout``: how long
    ``promote`` waits for production's rolling update; ``pod_check_interval``: how often a
    wait looks at the pods, to fail fast on CrashLoopBackOff and to explain a timeout;
    ``service``: the app's Service, for routers that split by Service (the Gateway API's):
    ``deploy`` then also makes ``<app>-<track>`` (``TrackServices``) and ``remove`` deletes
    it; None (Istio, which splits by subset): no Services.
    """

    def __init__(self, client: KubeClient, *, replicas: int | None = None, max_share: int = 10,
                 container: str | None = None, track_label: str = TRACK_LABEL,
                 version_label_key: str = "version", rollout_timeout: float = 600.0,
                 pod_check_interval: float = 5.0, service: str | None = None) -> None:
        self.client = client
        self.replicas = replicas
        self.max_share = max_share
        self.container = container
        self.track_label = track_label
        self.version_label_key = version_label_key
        self.rollout_timeout = rollout_timeout
        self.pod_check_interval = pod_check_interval
        self.service = service
        self.services = TrackServices(client, track_label)

    def _production(self, app: str) -> JSON:
        production = self.client.get(DEPLOYMENT, app)
        if production is None:
            raise ConfigError(f"production Deployment {app!r} not found in namespace "
                              f"{self.client.namespace!r}")
        return production

    def production_image(self, app: str) -> str:
        """The image production runs now (what the baseline must run)."""
        return text(target_container(self._production(app), self.container), "image")

    def deploy(self, app: str, track: Track, image: str) -> None:
        """Create (or bring up to date) ``<app>-<track>`` running ``image``, and its Service
        when ``service`` is set."""
        self._deploy(app, track, image)
        if self.service is not None:
            self.services.ensure(app, track, self.service, track)

    def _deploy(self, app: str, track: Track, image: str) -> None:
        production = self._production(app)
        production_track(production, self.track_label)
        replicas = self.replicas if self.replicas is not None else canary_replicas(production,
                                                                                    self.max_share)
        wanted = derived_deployment(production, track=track, image=image, replicas=replicas,
                                    container=self.container, track_label=self.track_label,
                                    version_key=self.version_label_key)
        name = text(wanted, "metadata", "name")
        existing = self.client.get(DEPLOYMENT, name)
        if existing is None:
            try:
                self.client.create(DEPLOYMENT, wanted)
                return
            except ConflictError:  # created meanwhile (e.g. our own earlier, unanswered try)
                existing = self.client.get(DEPLOYMENT, name)
        if existing is not None and not is_managed(existing, app):
            raise ConfigError(f"Deployment {name!r} exists but was not created by {MANAGER}; "
                              "rename or delete it, it will not be overwritten")
        if existing is not None and part(existing, "spec").get("selector") != part(wanted, "spec")["selector"]:
            # A selector cannot be changed in place (422 "field is immutable"): our copy was
            # made from production before its selector (or the track label) changed. Make it
            # anew; deploy runs while traffic is pinned to primary, so nothing is routed to it.
            self.client.delete(DEPLOYMENT, name, uid=maybe_text(existing, "metadata", "uid"))
            self.client.wait_for(DEPLOYMENT, name, lambda obj: obj is None, timeout=30.0)
            self.client.create(DEPLOYMENT, wanted)
            return

        def mutate(current: JSON) -> JSON:
            meta = child(current, "metadata")
            meta["labels"] = {**part(meta, "labels"), **part(wanted, "metadata", "labels")}
            current["spec"] = wanted["spec"]
            return current

        self.client.update(DEPLOYMENT, name, mutate)

    def wait_ready(self, app: str, track: Track, timeout: float) -> None:
        """Wait until every replica of ``<app>-<track>`` is updated and available."""
        self._wait_rollout(f"{app}-{track}", timeout)

    def serving(self, app: str, track: Track) -> str | None:
        """None while ``<app>-<track>`` has every replica updated and available."""
        name = f"{app}-{track}"
        obj = self.client.get(DEPLOYMENT, name)
        if obj is None:
            return f"Deployment {name!r} does not exist"
        try:
            done, progress = rollout_progress(obj)
        except PlatformError as exc:
            return str(exc)
        if done:
            return None
        problems, _ = pod_problems(self._pods(obj))
        return f"Deployment {name!r}: " + "; ".join([progress, deployment_conditions(obj), *problems])

    def promote(self, app: str, image: str) -> None:
        """Roll production to ``image`` (strategic merge of one container) and wait for it."""
        production = self._production(app)
        container = target_container(production, self.container)["name"]
        template: JSON = {"spec": {"containers": [{"name": container, "image": image}]}}
        if self.version_label_key in labels(production, "spec", "template", "metadata", "labels"):
            template["metadata"] = {"labels": {self.version_label_key: version_label(image)}}
        self.client.patch(DEPLOYMENT, app, {"spec": {"template": template}})
        self._wait_rollout(app, self.rollout_timeout)

    def remove(self, app: str, track: Track) -> None:
        """Delete ``<app>-<track>`` if it exists and is ours; its pods go with it, and its
        Service when ``service`` is set (first: nothing routes to it any more)."""
        if self.service is not None:
            self.services.remove(app, track)
        name = f"{app}-{track}"
        existing = self.client.get(DEPLOYMENT, name)
        if existing is None:
            return
        if not is_managed(existing, app):
            raise ConfigError(f"Deployment {name!r} was not created by {MANAGER}; not deleting it")
        try:
            self.client.delete(DEPLOYMENT, name, uid=maybe_text(existing, "metadata", "uid"))
        except ConflictError:  # replaced meanwhile by a newer object of the same name: re-check
            self.remove(app, track)

    def leftovers(self, app: str) -> list[str]:
        """Names of our Deployments for ``app`` that still exist (for a reconcile)."""
        ours = self.client.list(DEPLOYMENT, f"{MANAGED_BY}={MANAGER}")
        return [text(d, "metadata", "name") for d in ours if is_managed(d, app)]

    # -- waiting --------------------------------------------------------------------------
    def _pods(self, deployment: JSON) -> list[JSON]:
        # each Deployment's selector matches only its own track's pods (manifests.py); of
        # those, the ones a rolling update is replacing say nothing about it
        selector = selector_string(part(deployment, "spec", "selector"))
        return current_pods(deployment, self.client.list(POD, selector))

    def _wait_rollout(self, name: str, timeout: float) -> None:
        state = _WaitState()

        def check(obj: JSON | None) -> bool:
            if obj is None:
                raise PlatformError(f"Deployment {name!r} was deleted while waiting for it",
                                    transient=False)
            state.obj = obj
            done, state.progress = rollout_progress(obj)
            if not done and time.monotonic() - state.checked >= self.pod_check_interval:
                state.checked = time.monotonic()
                problems, fatal = pod_problems(self._pods(obj))
                if fatal:
                    raise PlatformError(f"Deployment {name!r} cannot become ready: "
                                        f"{'; '.join([*problems, deployment_conditions(obj)])}",
                                        transient=False)
            return done

        def describe() -> str:
            problems: list[str] = []
            if state.obj is not None:
                with contextlib.suppress(PlatformError):
                    problems, _ = pod_problems(self._pods(state.obj))
                problems.insert(0, deployment_conditions(state.obj))
            return "; ".join([state.progress, *problems])

        self.client.wait_for(DEPLOYMENT, name, check, timeout=timeout,
                             window=self.pod_check_interval, describe=describe)
