"""Thin tasks over a platform block: one library call each, retried only when transient.

A platform block (LocalPlatform or KubernetesCluster) hands out the adapters; every task
takes the block, so a task run shows which platform it acted on and the flow never touches
a client itself. Every task that reaches an adapter also takes the release spec the flow
judges with (None: none known) and binds it with the app once, `platform.for_app(app,
spec)`, which makes the app's adapters with that spec's options (canary.ports.Platform).
Optional capabilities are typed protocols checked with isinstance (canary.ports).
"""

from __future__ import annotations

from datetime import datetime
from functools import partial

from prefect import task
from prefect.cache_policies import NO_CACHE, CachePolicy

from canary.cleanup import TRACK_STEPS, attempt_each
from canary.config.release import ReleaseSpec
from canary.errors import PlatformError
from canary.ports import (
    CommitOrder,
    ConfigFileReader,
    ImageVersions,
    Platform,
    ReleasePolicies,
    RestartLog,
)
from canary.queue import by_ancestry
from canary.values.carried import Restart
from canary.values.events import ReleaseEnded
from canary.values.tracks import TRACKS
from canary.values.weights import Weights
from tasks._retry import RETRYING, RetryOptions


class _TaskOptions(RetryOptions):
    cache_policy: CachePolicy


_TASK: _TaskOptions = {"cache_policy": NO_CACHE, **RETRYING}


@task(name="read-config-files", task_run_name="read-config-files-{app}@{commit:.12}", **_TASK)
def read_config_files(platform: Platform, app: str, repo: str, commit: str) -> dict[str, str] | None:
    """The files of the commit's `.canary/` where the platform's builder can read them
    (None: none there, or a builder that cannot: deployments/releases/ is used then).
    No spec yet: it is what these files are read for."""
    builder = platform.for_app(app, None).builder()
    return builder.config_files(repo, commit) if isinstance(builder, ConfigFileReader) else None


@task(name="build-image", task_run_name="build-{app}@{commit}", **_TASK)
def build_image(platform: Platform, app: str, spec: ReleaseSpec | None, repo: str, commit: str) -> str:
    """Build `commit` of `repo` for `app`; the image reference."""
    return platform.for_app(app, spec).builder().build(repo, commit)


@task(name="reconcile-app", task_run_name="reconcile-{app}", **_TASK)
def reconcile_app(platform: Platform, app: str, spec: ReleaseSpec | None) -> dict[str, object]:
    """Repair a crashed release of `app`; the platform's report."""
    return platform.for_app(app, spec).reconcile()


@task(name="reconcile-release", task_run_name="reconcile-{app}", **_TASK)
def reconcile_for_release(platform: Platform, app: str,
                          spec: ReleaseSpec | None) -> tuple[dict[str, object], str | None]:  # fmt: skip
    """Before a release, in one task run: repair a crashed release of `app`, then read the
    image its production runs (the baseline's). Both are safe to repeat, so a transient
    error retries both.

    Args:
        platform: The platform block.
        app: The app released.
        spec: The release spec.

    Returns:
        The platform's repair report, and production's image (None before the first).
    """
    bound = platform.for_app(app, spec)
    return bound.reconcile(), bound.production_image()


@task(name="read-production-image", task_run_name="production-image-{app}", **_TASK)
def read_production_image(platform: Platform, app: str, spec: ReleaseSpec | None) -> str | None:
    """The image `app`'s production runs now, None before the first."""
    return platform.for_app(app, spec).production_image()


@task(name="read-production-commit", task_run_name="production-commit-{app}", **_TASK)
def read_production_commit(platform: Platform, app: str) -> str | None:
    """The commit `app`'s production was built from, when the platform knows it."""
    return platform.for_app(app, None).production_commit()


@task(name="read-image-version", task_run_name="image-version-{app}", **_TASK)
def image_version(platform: Platform, app: str, image: str) -> str | None:
    """The version an image reports (the app's VERSION), where the platform knows it."""
    return platform.image_version(image) if isinstance(platform, ImageVersions) else None


@task(name="order-commits", task_run_name="order-{app}-{a:.12}-{b:.12}", **_TASK)
def order_commits(platform: Platform, app: str, spec: ReleaseSpec | None, repo: str, a: str,
                  b: str) -> bool | None:  # fmt: skip
    """Whether commit `a` is newer than `b` by git ancestry where the platform's builder
    knows it, both directions asked in this one task run (canary.queue.by_ancestry).

    Args:
        platform: The platform block (its builder).
        app: The app released.
        spec: The release spec.
        repo: The app's repository.
        a: The commit that may be the newer one.
        b: The commit it is compared with.

    Returns:
        True: `a` is newer; False: older; None: unknown.
    """
    builder = platform.for_app(app, spec).builder()
    if not isinstance(builder, CommitOrder):
        return None
    return by_ancestry(lambda older, newer: builder.is_ancestor(repo, older, newer), a, b)


@task(name="deploy-tracks", task_run_name="deploy-{app}", **_TASK)
def deploy_tracks(platform: Platform, app: str, spec: ReleaseSpec | None, baseline: str,
                  canary: str) -> None:  # fmt: skip
    """Create or update `app`'s baseline, then its canary, in one task run (create-or-update
    is idempotent, so a retry safely repeats both).

    Args:
        platform: The platform block.
        app: The app released.
        spec: The release spec.
        baseline: The baseline's image (production's).
        canary: The canary's image.
    """
    workloads = platform.for_app(app, spec).workloads()
    workloads.deploy(app, "baseline", baseline)
    workloads.deploy(app, "canary", canary)


# Not retried: the wait has its own deadline; retrying would multiply the spec's timeout.
@task(name="wait-tracks-ready", task_run_name="wait-ready-{app}", cache_policy=NO_CACHE)
def wait_tracks_ready(platform: Platform, app: str, spec: ReleaseSpec | None, timeout: float) -> None:
    """Wait until every replica of `app`'s baseline, then of its canary, is ready, in one
    task run, each track within its own `timeout` seconds.

    Args:
        platform: The platform block.
        app: The app released.
        spec: The release spec.
        timeout: Seconds each track may take.

    Raises:
        PlatformError: A track was not ready within `timeout` seconds.
    """
    workloads = platform.for_app(app, spec).workloads()
    for track in TRACKS:
        workloads.wait_ready(app, track, timeout)


# A plain function, not a task run: a look reads it in the flow's own run (like read_traffic
# below), retried there under the tasks' rule (tasks._retry.retrying); what it read is in the
# look's readiness guard, its table and the report.
def check_serving(platform: Platform, app: str, spec: ReleaseSpec | None) -> dict[str, str | None]:
    """Each track's readiness right now: None, or why it is not serving."""
    workloads = platform.for_app(app, spec).workloads()
    return {track: workloads.serving(app, track) for track in TRACKS}


@task(name="set-traffic", task_run_name="traffic-{app}-{weights.canary}pct", **_TASK)
def set_traffic(platform: Platform, app: str, spec: ReleaseSpec | None, weights: Weights) -> Weights:
    """Apply the split and read it back: judging traffic that is not in force is worthless."""
    router = platform.for_app(app, spec).router()
    router.set_weights(app, weights)
    return _verified(router.read_weights(app), weights, app)


# Plain functions, not task runs (read_traffic, read_restarts): a look reads them in the flow's
# own run (flows/looks.py), two reads not being worth two task runs of three events each; not
# retried either: a look reports what it could not read and goes on.
def read_traffic(platform: Platform, app: str, spec: ReleaseSpec | None) -> Weights:
    """The split the router carries now, read back (a look compares it with the plan)."""
    return platform.for_app(app, spec).router().read_weights(app)


def read_restarts(platform: Platform, app: str, spec: ReleaseSpec | None,
                  since: datetime) -> list[Restart]:  # fmt: skip
    """Restarts since `since` of what `app`'s release depends on, where the platform keeps
    them (canary.ports.RestartLog); [] where it does not."""
    bound = platform.for_app(app, spec)
    return bound.restarts(since) if isinstance(bound, RestartLog) else []


@task(name="promote-image", task_run_name="promote-{app}", **_TASK)
def promote_image(platform: Platform, app: str, spec: ReleaseSpec | None, image: str) -> None:
    """Roll `app`'s production to `image` and wait for it."""
    platform.for_app(app, spec).workloads().promote(app, image)


@task(name="cleanup-traffic", task_run_name="cleanup-traffic-{app}", **_TASK)
def roll_back_traffic(platform: Platform, app: str, spec: ReleaseSpec | None) -> Weights:
    """100 % production, verified by the adapter reading it back; returns what it read."""
    router = platform.for_app(app, spec).router()
    router.rollback(app)
    return _verified(router.read_weights(app), Weights.all_primary(), app)


def _verified(got: Weights, want: Weights, app: str) -> Weights:
    if got != want:
        raise PlatformError(
            f"{app}: the router reads back {got}, not the {want} just set", transient=True
        )
    return got


@task(name="cleanup-tracks", task_run_name="cleanup-{app}-tracks", **_TASK)
def remove_tracks(platform: Platform, app: str, spec: ReleaseSpec | None) -> None:
    """Delete `app`'s baseline and canary (each a no-op when gone) in one task run, each
    attempted even when the other failed (canary.cleanup.attempt_each).

    Args:
        platform: The platform block.
        app: The app released.
        spec: The release spec.

    Raises:
        StepsFailed: Naming each removal that failed by its cleanup step (transient, and so
            retried, only when every failure is).
    """
    workloads = platform.for_app(app, spec).workloads()
    attempt_each({TRACK_STEPS[track]: partial(workloads.remove, app, track) for track in TRACKS})


@task(name="cleanup-routes", task_run_name="cleanup-routes-{app}", **_TASK)
def restore_routes(platform: Platform, app: str, spec: ReleaseSpec | None) -> None:
    """Put `app`'s routes back as they were before the release."""
    platform.for_app(app, spec).restore_routes()


@task(name="record-release", task_run_name="record-release-{app}", **_TASK)
def record_release(platform: Platform, app: str, ended: ReleaseEnded, report: str) -> None:
    """Write how the release ended into the app's ReleasePolicy (its status), where the
    platform keeps policies (canary.ports.ReleasePolicies)."""
    if isinstance(platform, ReleasePolicies):
        platform.record_release(app, ended, report)
