"""Loading what a run needs, as tasks: the release spec and canary config (validated at
the edge, never retried) and the per-app release lock (kept in store.locks; the task here
makes sure it exists). Where a release's config comes from is canary.appconfig's;
loading a block is store.blocks'."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from canary import appconfig
from canary.appconfig import ReleaseConfig, policy_lookup, release_config_of, spec_file
from canary.config import CanaryConfig
from canary.config.release import ReleaseSpec
from canary.ports import Platform
from store import locks
from tasks._retry import RETRYING


@task(name="load-release-spec", task_run_name="load-release-spec-{app}", cache_policy=NO_CACHE)
def load_release_spec(path: str, app: str) -> tuple[ReleaseSpec, CanaryConfig]:
    """Validate the spec and its canary config once, at the edge (never retried)."""
    return spec_file(path, app)


@task(name="check-app-config", task_run_name="check-app-config-{app}", cache_policy=NO_CACHE)
def check_app_config(files: dict[str, str], app: str, where: str) -> tuple[dict[str, str], str]:
    """Validate a commit's `.canary/` (never retried): the texts to carry, and the app."""
    return appconfig.check_files(files, app, where)


@task(name="load-release-config", task_run_name="load-release-config-{app}", cache_policy=NO_CACHE)
def load_release_config(app: str, commit: str, app_config: object, config: str | None,
                        platform: Platform | None = None) -> ReleaseConfig:  # fmt: skip
    """The release config of a run and its source, validated by the same loaders
    (release_config_of); the app's ReleasePolicy is read from `platform` if it keeps any."""
    return release_config_of(app, commit, app_config, config, policy_lookup(platform, app))


@task(name="read-release-policy", task_run_name="read-release-policy-{app}", cache_policy=NO_CACHE)
def read_policy_spec(platform: Platform, app: str) -> ReleaseSpec | None:
    """The release spec of the app's ReleasePolicy, where the platform keeps policies
    (None: it keeps none, or the app has none)."""
    lookup = policy_lookup(platform, app)
    found = lookup() if lookup is not None else None
    return found[0] if found is not None else None


@task(name="ensure-release-lock", task_run_name="ensure-release-lock-{app}",
      cache_policy=NO_CACHE, **RETRYING)  # fmt: skip
def ensure_release_lock(app: str) -> str:
    """Create the app's limit (1 slot) if missing: a missing limit would be silently skipped.

    A limit an operator switched off stays off: that is how releases are frozen (every
    lock taker waits while it is off, see store.turn).

    Args:
        app: The app.

    Returns:
        The lock's name.
    """
    return locks.ensure_lock(app)


