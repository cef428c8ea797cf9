"""The seams between the canary logic and the platforms it drives (docs/architecture.md, house rule 3).

Each port is a narrow ``typing.Protocol``; every platform (Kubernetes, local processes,
Prometheus) provides one implementation that takes its client in ``__init__``. Methods raise
only ``canary.errors`` types, with ``transient=True`` where repeating the call may succeed,
so Prefect tasks can retry exactly those. Cleanup methods are idempotent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from canary.values.counts import SideCounts
from canary.values.scope import MetricScope
from canary.values.series import Series
from canary.values.tracks import Track
from canary.values.weights import Weights

if TYPE_CHECKING:
    from datetime import datetime

    from canary.config import CanaryConfig, MetricConfig
    from canary.config.release import ReleaseSpec
    from canary.values.carried import Restart
    from canary.values.events import ReleaseEnded

@runtime_checkable
class MetricSource(Protocol):
    """What a metric store must do, for ONE scope (canary.metrics.prometheus implements it).

    A store renders the metric's query or counter selectors for the scope and reads the
    answer; it never pairs control with experiment: canary.metrics.collect does that, the
    same way for every store (`fetch_pair`, `fetch_counts_pair`).
    """

    def fetch(
        self, metric: MetricConfig, templates: Mapping[str, str] | None, scope: MetricScope
    ) -> list[Series]:
        """Every series the metric's query yields over ``scope``.

        Never empty: no data gives one untagged placeholder series. Raises ConfigError for a
        query the store rejects, MetricsError (transient for timeouts/5xx) otherwise.
        """
        ...

    def fetch_counts(
        self, metric: MetricConfig, templates: Mapping[str, str] | None, scope: MetricScope
    ) -> SideCounts:
        """A ratio or histogram metric's counts over the scope's window (exact counter
        increases, resets handled); `missing` when its selectors matched no series.

        Raises ConfigError for a series metric or a rejected selector, MetricsError
        (transient for timeouts/5xx) otherwise, also for buckets that cannot be summed.
        """
        ...

    def counter_increase(
        self,
        selector_template: str,
        templates: Mapping[str, str] | None,
        scope: MetricScope,
        *,
        by: str | None = None,
        name: str = "request counter",
    ) -> dict[str, float]:
        """Increase over the scope's window of the counters a selector template matches,
        summed per value of label ``by`` (one key "" without it); empty when none matched."""
        ...


@runtime_checkable
class Builder(Protocol):
    """Turns a commit into a runnable artifact (Tekton/Knative build, or a local build).

    A builder may also offer the optional capabilities `ConfigFileReader` (a commit's
    `.canary/` files) and `CommitOrder` (git ancestry); callers check them with isinstance.
    """

    def build(self, repo: str, commit: str) -> str:
        """Build ``commit`` of ``repo`` and return the image (artifact) reference.

        Content-addressed: building the same commit twice returns the same reference.

        Raises:
            BuildError: naming the failing step.
        """
        ...


@runtime_checkable
class ConfigFileReader(Protocol):
    """Optional builder capability: a commit's `.canary/` files, read without running it.

    A builder without it means "no files": the release spec then comes from
    deployments/releases/.
    """

    def config_files(self, repo: str, commit: str) -> dict[str, str] | None:
        """The text of every file under `.canary` at ``commit``, by relative path.

        Returns:
            The files, or None when the commit has none.
        """
        ...


@runtime_checkable
class CommitOrder(Protocol):
    """Optional builder capability: git ancestry, to order releases of one repository."""

    def is_ancestor(self, repo: str, older: str, newer: str) -> bool | None:
        """Whether ``older`` is an ancestor of ``newer`` in ``repo``.

        Returns:
            True or False, or None when either commit is unknown.
        """
        ...


@runtime_checkable
class ImageVersions(Protocol):
    """Optional platform capability: the version an image (artifact) reports."""

    def image_version(self, image: str) -> str | None:
        """The VERSION ``image`` was built with, or None when unknown."""
        ...


@runtime_checkable
class GraphLinks(Protocol):
    """Optional metric-source capability: a link to a graph of a metric's both sides."""

    def graph_link(self, metric: MetricConfig, templates: Mapping[str, str] | None,
                   control_scope: MetricScope, experiment_scope: MetricScope) -> str:  # fmt: skip
        """A link to a graph of ``metric`` for both scopes over the experiment's window."""
        ...


@runtime_checkable
class Workloads(Protocol):
    """Runs production and the baseline/canary pair of an app."""

    def deploy(self, app: str, track: Track, image: str) -> None:
        """Create or update the ``track`` deployment of ``app`` running ``image``."""
        ...

    def wait_ready(self, app: str, track: Track, timeout: float) -> None:
        """Block until every replica of the track is ready; PlatformError after ``timeout`` s."""
        ...

    def serving(self, app: str, track: Track) -> str | None:
        """None while the track is up and ready, else why not, in words (a quick check
        made at every look: a canary that stopped serving must not be judged)."""
        ...

    def promote(self, app: str, image: str) -> None:
        """Roll production of ``app`` to ``image`` (a rolling update) and wait for it."""
        ...

    def remove(self, app: str, track: Track) -> None:
        """Delete the track's deployment; a no-op when it does not exist."""
        ...


@runtime_checkable
class TrafficRouter(Protocol):
    """Splits an app's traffic between production, baseline and canary."""

    def set_weights(self, app: str, weights: Weights) -> None:
        """Apply ``weights`` to the app's route (takes effect for new requests)."""
        ...

    def read_weights(self, app: str) -> Weights:
        """The weights currently in force, read back from the router itself."""
        ...

    def rollback(self, app: str) -> None:
        """Send 100 % to production and verify it by reading back; idempotent."""
        ...

    def restore(self, app: str) -> None:
        """Put the user's routes back as they were before the release, verified, and drop
        what the release added; idempotent. A router that owns the routes it splits (the
        local HAProxy) has nothing of the user's to restore: all traffic to production."""
        ...


@runtime_checkable
class ReleasePolicies(Protocol):
    """Release configs kept on the platform, under its access control: on Kubernetes the
    ReleasePolicy custom resource (docs/kubernetes.md). A platform may offer it; where the
    one precedence of config sources puts it is canary.appconfig's."""

    def release_config(self, app: str) -> tuple[ReleaseSpec, CanaryConfig] | None:
        """The spec and canary config of `app`'s policy; None when the app has none.

        Raises:
            ConfigError: The policy (or the canary config it references) is invalid.
            PlatformError: The policies cannot be read (e.g. 403: the runner's Role).
        """
        ...

    def record_release(self, app: str, ended: ReleaseEnded, report: str) -> None:
        """Write how a release the app's policy configured ended (the policy's status).

        Args:
            app: The app (its policy's name).
            ended: The release's end.
            report: A link to its report ("" when there is none).
        """
        ...


@runtime_checkable
class RestartLog(Protocol):
    """Optional capability of an app on a platform (`AppPlatform`): the restarts of the parts
    a release of the app depends on. The release reads it at every look and reports what it
    finds: a restarted router may carry another split than the one set (the local platform:
    its supervisor's restarts of HAProxy, Prometheus and the app's production)."""

    def restarts(self, since: datetime) -> list[Restart]:
        """The restarts since ``since`` (aware), oldest first; [] when none.

        Raises:
            PlatformError: The record of restarts cannot be read.
        """
        ...


@runtime_checkable
class AppPlatform(Protocol):
    """One app on a platform, made with the options of the release spec it was bound to.

    What the tasks use: every adapter it hands out is for this app and this spec, so no
    call site passes (or guesses) the spec again.
    """

    def builder(self) -> Builder:
        """The builder of the app's commits."""
        ...

    def workloads(self) -> Workloads:
        """Production and the baseline/canary pair of the app."""
        ...

    def router(self) -> TrafficRouter:
        """The app's traffic split."""
        ...

    def production_image(self) -> str | None:
        """The image production runs now (read from the platform), None before the first."""
        ...

    def production_commit(self) -> str | None:
        """The commit production's image was built from, when the platform knows it."""
        ...

    def reconcile(self) -> dict[str, object]:
        """After a crash: 100 % production (read back), baseline and canary gone.

        Returns:
            A report of what was found and done.
        """
        ...

    def restore_routes(self) -> None:
        """Put the user's routes back as they were before the release (idempotent)."""
        ...


@runtime_checkable
class Platform(Protocol):
    """Where releases run: what the flows ask of a platform block (the local platform,
    the Kubernetes cluster, the tests' fake). The flows see only this seam: a new platform
    (or a new router, e.g. Gateway API or Linkerd) needs no flow change.

    `spec` is the release spec the flow judges with, passed explicitly: a platform takes
    its per-app options from it (on Kubernetes its `kubernetes:` section and traffic steps)
    and never looks for a spec on its own in the run. None means that no spec is known
    (a build of a commit without `.canary/`, a reconcile with no release run to read it
    from): the platform then says in one place what it uses instead (docs/kubernetes.md).
    A platform may also offer `ImageVersions`; its `AppPlatform` may offer `RestartLog`.
    """

    def for_app(self, app: str, spec: ReleaseSpec | None) -> AppPlatform:
        """`app` on this platform, with the options of `spec` bound to every adapter.

        Raises:
            ConfigError: `spec` is for another app, or its options do not fit here (a
                platform may find out only when the first adapter is made).
        """
        ...
