"""``IstioRouter``: traffic split by track through DestinationRule subsets and route weights.

Order matters, and every step is read back (Argo Rollouts #1838 and PR#4612 are what
happens otherwise): subsets exist before any route names them; weights are verified by
reading the VirtualService back; a roll back is 100 % primary, verified, before anything
is deleted; restore puts the user's VirtualService back byte for byte and only then removes
the subsets (from a user's DestinationRule: only the subsets we added, nothing else). Pin traffic to primary (``set_weights(app, Weights.all_primary())``) *before*
creating baseline and canary, and delete them *before* ``restore``: an unpinned route sends
traffic to every pod behind the Service, canary pods included.
"""

from __future__ import annotations

from canary.errors import ConfigError, PlatformError
from canary.values.weights import Weights

from . import recorded, routes
from .client import DEPLOYMENT, Kind, KubeClient
from .errors import ConflictError
from .manifests import PREFIX, TRACK_LABEL, is_managed, production_track
from .objects import JSON, child, field, maybe_text, text

#: On a user's DestinationRule we extend: the subsets we added (comma-separated), which
#: restore removes, so whatever else they change meanwhile (mTLS, their subsets) stays.
ADDED_SUBSETS = f"{PREFIX}added-subsets"


def virtual_service_kind(version: str = "v1") -> Kind:
    """Istio's VirtualService at API ``version``."""
    return Kind("VirtualService", "networking.istio.io", version, "virtualservices")


def destination_rule_kind(version: str = "v1") -> Kind:
    """Istio's DestinationRule at API ``version``."""
    return Kind("DestinationRule", "networking.istio.io", version, "destinationrules")


class IstioRouter:
    """TrafficRouter port over an existing VirtualService (default name: the app's).

    ``routes``: names of the HTTP routes to split (default: every route to a single host);
    ``host``: that host, if it must be pinned; ``destination_rule``: the name of the user's
    DestinationRule for the host, to extend with our subsets (only those are removed again)
    instead of creating ``<app>-canary``; ``mirror``: live traffic stays 100 % on primary and
    baseline and canary get mirrored copies of their shares instead of a weighted split;
    ``track_label``: the pod label subsets use.
    """

    def __init__(self, client: KubeClient, *, virtual_service: str | None = None,
                 routes: tuple[str, ...] | None = None, host: str | None = None,
                 destination_rule: str | None = None, mirror: bool = False,
                 track_label: str = TRACK_LABEL, api_version: str = "v1") -> None:
        self.client = client
        self.virtual_service = virtual_service
        self.routes = tuple(routes) if routes else None
        self.host = host
        self.destination_rule = destination_rule
        self.mirror = mirror
        self.track_label = track_label
        self.vs_kind = virtual_service_kind(api_version)
        self.dr_kind = destination_rule_kind(api_version)

    # -- the port -------------------------------------------------------------------------
    def set_weights(self, app: str, weights: Weights) -> None:
        """Make sure the subsets exist, write the weights, and verify them by reading back."""
        name = self._vs_name(app)
        _, host = routes.managed_routes(field(self._read_vs(app), "spec"), self.routes, self.host, name, app)
        self._ensure_subsets(app, host)

        def mutate(current: JSON) -> JSON:
            indexes, _ = routes.managed_routes(field(current, "spec"), self.routes, host, name)
            current = routes.with_record(current)
            current["spec"] = routes.apply_weights(field(current, "spec"), indexes, host, weights,
                                                   self.mirror)
            return current

        self.client.update(self.vs_kind, name, mutate)
        back = field(self._read_vs(app), "spec")
        indexes, _ = routes.managed_routes(back, self.routes, host, name)
        wanted = routes.apply_weights(back, indexes, host, weights, self.mirror)
        if back != wanted or routes.weights_of(back, indexes, name) != weights:
            raise PlatformError(f"VirtualService {name!r} does not hold the weights just written "
                                f"({weights}); is another controller (Argo CD, Flux) reverting it?",
                                transient=False)

    def read_weights(self, app: str) -> Weights:
        """The split the app's managed routes carry now, read from the VirtualService."""
        spec = field(self._read_vs(app), "spec")
        indexes, _ = routes.managed_routes(spec, self.routes, self.host, self._vs_name(app), app)
        return routes.weights_of(spec, indexes, self._vs_name(app))

    def rollback(self, app: str) -> None:
        """All traffic to production (no mirroring), verified by reading back; idempotent."""
        self.set_weights(app, Weights.all_primary())

    def restore(self, app: str) -> None:
        """Put the user's VirtualService back as recorded, verify it, then drop our subsets.

        Idempotent: with no record left there is nothing to restore. Call it after baseline
        and canary are deleted.
        """
        name = self._vs_name(app)
        if self.client.get(self.vs_kind, name) is not None:
            recorded.restore(self.client, self.vs_kind, name)
        if self.destination_rule:
            self._remove_added_subsets(self.destination_rule)
            return
        ours = self.client.get(self.dr_kind, self._dr_name(app))
        if ours is not None and is_managed(ours, app):
            self.client.delete(self.dr_kind, self._dr_name(app), uid=maybe_text(ours, "metadata", "uid"))

    # -- helpers --------------------------------------------------------------------------
    def _vs_name(self, app: str) -> str:
        return self.virtual_service or app

    def _dr_name(self, app: str) -> str:
        return self.destination_rule or f"{app}-canary"

    def _read_vs(self, app: str) -> JSON:
        vs = self.client.get(self.vs_kind, self._vs_name(app))
        if vs is None:
            raise ConfigError(f"VirtualService {self._vs_name(app)!r} not found in namespace "
                              f"{self.client.namespace!r}; the router edits the app's existing one")
        return vs

    def _ensure_subsets(self, app: str, host: str) -> None:
        production = self.client.get(DEPLOYMENT, app)
        if production is None:
            raise ConfigError(f"production Deployment {app!r} not found; the primary subset "
                              "selects its pods")
        wanted = routes.subsets(self.track_label, production_track(production, self.track_label))
        name = self._dr_name(app)
        if self.client.get(self.dr_kind, name) is None:
            if self.destination_rule:
                raise ConfigError(f"DestinationRule {name!r} (destination_rule=) not found")
            rule = routes.destination_rule(app, name, host, self.dr_kind.api_version, wanted)
            try:
                self.client.create(self.dr_kind, rule)
            except PlatformError as error:
                if not (isinstance(error, ConflictError) and error.reason == "AlreadyExists"):
                    raise

        def mutate(current: JSON) -> JSON | None:
            if routes.has_subsets(field(current, "spec"), wanted):
                return None
            if self.destination_rule:
                annotations = field(current, "metadata", "annotations")
                earlier = [n for n in text(annotations, ADDED_SUBSETS).split(",") if n]
                added = routes.added_subsets(field(current, "spec"), wanted, name)
                child(current, "metadata")["annotations"] = {
                    **annotations, ADDED_SUBSETS: ",".join(dict.fromkeys([*earlier, *added]))}
            elif not is_managed(current, app):
                raise ConfigError(f"DestinationRule {name!r} exists but is not ours; pass "
                                  f"destination_rule={name!r} to extend it instead")
            current["spec"] = routes.with_subsets(field(current, "spec"), wanted)
            return current

        self.client.update(self.dr_kind, name, mutate)
        back = self.client.get(self.dr_kind, name)
        if back is None or not routes.has_subsets(field(back, "spec"), wanted):
            raise PlatformError(f"DestinationRule {name!r} does not hold the subsets just written",
                                transient=False)

    def _remove_added_subsets(self, name: str) -> None:
        """Take out of the user's DestinationRule exactly the subsets we added; idempotent."""
        if self.client.get(self.dr_kind, name) is None:
            return

        def mutate(current: JSON) -> JSON | None:
            annotations = dict(field(current, "metadata", "annotations"))
            if ADDED_SUBSETS not in annotations:
                return None
            names = [n for n in str(annotations.pop(ADDED_SUBSETS)).split(",") if n]
            current["spec"] = routes.without_subsets(field(current, "spec"), names)
            if annotations:
                child(current, "metadata")["annotations"] = annotations
            else:
                child(current, "metadata").pop("annotations", None)
            return current

        self.client.update(self.dr_kind, name, mutate)
        back = self.client.get(self.dr_kind, name)
        if back is not None and ADDED_SUBSETS in field(back, "metadata", "annotations"):
            raise PlatformError(f"DestinationRule {name!r} still lists our subsets after removing "
                                "them; another try will remove them", transient=True)

