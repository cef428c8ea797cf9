"""Loading what a run needs: the release spec, blocks, and the per-app release lock (kept
in store.locks; the task here makes sure it exists)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from canary import appconfig
from canary.config import CanaryConfig
from canary.config.release import ReleaseSpec
from canary.errors import ConfigError
from store import locks
from tasks._retry import RETRYING

#: Where an app's release spec is, unless the run names another ({app}: the app's name).
DEFAULT_SPEC = "deployments/releases/{app}.yaml"


def _spec_file(path: str, app: str) -> tuple[ReleaseSpec, CanaryConfig]:
    spec = ReleaseSpec.load(Path(path))
    if spec.app != app:
        raise ConfigError(f"release spec {path} is for app {spec.app!r}, not {app!r}")
    return spec, spec.load_canary_config()


def release_config_of(app: str, commit: str, app_config: object,
                      config: str | None) -> tuple[ReleaseSpec, CanaryConfig]:  # fmt: skip
    """The spec and canary config a canary-release run judges with, from its parameters:
    the commit's `.canary/` the build carried (`app_config`), else the file `config`, else
    DEFAULT_SPEC. The one home of that order: the release, its crash hook and `reconcile`
    (reading a crashed run's parameters) all come here, so the platform's adapters get
    the spec the release was judged with."""
    if not app_config:
        return _spec_file(config or DEFAULT_SPEC.format(app=app), app)
    where = f"app_config of commit {commit[:12]}"
    spec, canary_config = appconfig.load(app_config, app, where)
    if spec.app != app:
        raise ConfigError(f"{where} is for app {spec.app!r}, not {app!r}")
    return spec, canary_config


@task(name="load-release-spec", task_run_name="load-release-spec-{app}", cache_policy=NO_CACHE)
def load_release_spec(path: str, app: str) -> tuple[ReleaseSpec, CanaryConfig]:
    """Validate the spec and its canary config once, at the edge (never retried)."""
    return _spec_file(path, app)


@task(name="check-app-config", task_run_name="check-app-config-{app}", cache_policy=NO_CACHE)
def check_app_config(files: dict[str, str], app: str, where: str) -> tuple[dict[str, str], str]:
    """Validate a commit's `.canary/` (never retried): the texts to carry, and the app."""
    return appconfig.check_files(files, app, where)


@task(name="load-release-config", task_run_name="load-release-config-{app}", cache_policy=NO_CACHE)
def load_release_config(app: str, commit: str, app_config: object,
                        config: str | None) -> tuple[ReleaseSpec, CanaryConfig]:  # fmt: skip
    """The release config of a run, validated by the same loaders (release_config_of)."""
    return release_config_of(app, commit, app_config, config)


#: Block type slug -> the module that defines it (imported on demand: the Kubernetes client
#: alone costs ~0.4 s of start-up, which a local release should not pay).
BLOCK_MODULES = {
    "local-platform": "blocks.local",
    "prometheus-source": "blocks.prometheus",
    "canary-kubernetes-cluster": "blocks.kubernetes",
}


def load_block(name: str) -> Any:  # the block's type is only known from the name, at run time
    """Load a block document by "<type-slug>/<name>", importing the type's module first.

    Args:
        name: ``<type-slug>/<document-name>``.

    Returns:
        The block (a platform or a metrics source block).

    Raises:
        ConfigError: The name is malformed or no such block is saved.
    """
    slug, _, document = name.partition("/")
    if not document or slug not in BLOCK_MODULES:
        raise ConfigError(
            f"block {name!r}: give it as <type-slug>/<document-name> with a slug among "
            f"{', '.join(sorted(BLOCK_MODULES))}"
        )
    from prefect.blocks.core import Block

    importlib.import_module(BLOCK_MODULES[slug])  # registers the type for Block.load
    try:
        return Block.load(name)
    except ValueError as exc:
        raise ConfigError(
            f"block {name!r} could not be loaded ({exc}); create it with "
            "`python scripts/register_blocks.py`"
        ) from None


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


def spec_of_run(app: str, params: dict[str, object]) -> tuple[ReleaseSpec | None, str]:
    """The release spec a canary-release run judged with, read again from its parameters
    the way the run read it (release_config_of), and where it came from, in words.

    A plain function: the release's crash hook calls it, where no task may run.

    Args:
        app: The app.
        params: The run's parameters.

    Returns:
        (the spec, where it came from); (None, why) when it cannot be read any more (a file
        gone or changed, a worker with another checkout): the platform then falls back as
        for a run that names none (docs/kubernetes.md), and the words say so.
    """
    config = params.get("config")
    source = ("the commit's .canary/release.yaml" if params.get("app_config")
              else f"the release spec {config or DEFAULT_SPEC.format(app=app)}")  # fmt: skip
    try:
        spec, _ = release_config_of(app, str(params.get("commit") or ""), params.get("app_config"),
                                    None if config is None else str(config))  # fmt: skip
    except Exception as exc:  # a repair must still run
        return None, (f"{source} of the release could not be read again ({exc}); repaired "
                      "with the platform's fallback spec")  # fmt: skip
    return spec, f"repaired with the options of {source}, as the release used them"
