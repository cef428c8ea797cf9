"""A release config carried by the app's own commit (`.canary/`), checked once at the build,
and the one order in which a release finds its config.

The build reads `.canary/release.yaml` and the canary config it names (a relative path that
stays inside `.canary/`) from the pushed commit, validates both with the same loaders as
the files in deployments/releases/, and passes the two texts on in the
canary.build.succeeded event; the release loads them again through the same code. So a
config change is a commit to the app, judged like any other. Without `.canary/` the
release reads, in this order (`config_source`), the app's ReleasePolicy on the cluster
(canary.config.policy), the deployment's `config` parameter, and this repository's
deployments/releases/<app>.yaml.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Literal, NamedTuple

from canary.config import CanaryConfig
from canary.config.release import ReleaseSpec
from canary.errors import ConfigError
from canary.ports import ReleasePolicies

DIRECTORY = ".canary"
RELEASE_FILE = "release.yaml"
#: The most the carried texts may add up to: they travel in an event payload.
MAX_BYTES = 64 * 1024
KEYS = ("release", "canary_config", "canary_config_name")
#: Where an app's release spec is, unless the run names another ({app}: the app's name).
DEFAULT_SPEC = "deployments/releases/{app}.yaml"


def check_files(files: dict[str, str], app: str, where: str) -> tuple[dict[str, str], str]:
    """Validate the files of a commit's `.canary/` and make the app_config a build carries.

    Args:
        files: The files of `.canary/`, by path relative to it, as text.
        app: The app named after the repository; the spec's own `app:` overrides it.
        where: Names the commit in errors ("<repo> at <commit>").

    Returns:
        (the app_config to carry in canary.build.succeeded, the app it releases).

    Raises:
        ConfigError: No release.yaml, an invalid spec or canary config, a canary config
            outside `.canary/`, or texts over 64 KiB.
    """
    if RELEASE_FILE not in files:
        raise ConfigError(
            f"{where}: {DIRECTORY}/ has no {RELEASE_FILE} (it has {', '.join(sorted(files))}); "
            f"add one, or remove {DIRECTORY}/ to use deployments/releases/{app}.yaml")  # fmt: skip
    with _written(files, where) as root:
        spec, _, name = _load(root, app, where)
    carried = {"release": files[RELEASE_FILE], "canary_config": files[name],
               "canary_config_name": name}  # fmt: skip
    _check_size(carried, where)
    return carried, spec.app


def load(app_config: object, app: str, where: str) -> tuple[ReleaseSpec, CanaryConfig]:
    """The spec and canary config of a carried app_config.

    Validated again: it came through an event, and this is the one code path that turns
    config text into models.

    Args:
        app_config: The `app_config` of a canary.build.succeeded event.
        app: The app the release is for (the spec's default app).
        where: Names the commit in errors.

    Returns:
        (the release spec, its canary config).

    Raises:
        ConfigError: The app_config is malformed, too large, or fails validation.
    """
    if not isinstance(app_config, dict) or set(app_config) != set(KEYS) or not all(
        isinstance(app_config[k], str) for k in KEYS
    ):
        raise ConfigError(f"{where}: app_config must be a mapping of the strings "
                          f"{', '.join(KEYS)}; got {type(app_config).__name__}")  # fmt: skip
    _check_size(app_config, where)
    name = app_config["canary_config_name"]
    with _written({RELEASE_FILE: app_config["release"], name: app_config["canary_config"]},
                  where) as root:  # fmt: skip
        spec, config, _ = _load(root, app, where)
    return spec, config


def _load(root: Path, app: str, where: str) -> tuple[ReleaseSpec, CanaryConfig, str]:
    """(spec, canary config, the config's path inside the directory)."""
    try:
        spec = ReleaseSpec.load(root / RELEASE_FILE, default_app=app)
        name = _inside(root, spec.canary_config_path(), where, spec.canary_config)
        return spec, spec.load_canary_config(), name
    except ConfigError as exc:  # name the file as the app's author knows it
        raise ConfigError(str(exc).replace(str(root), f"{where}: {DIRECTORY}")) from None


def _inside(root: Path, path: Path, where: str, given: str) -> str:
    try:
        return path.relative_to(root.resolve()).as_posix()
    except ValueError:
        raise ConfigError(f"{where}: {DIRECTORY}/{RELEASE_FILE}: canary_config {given!r} "
                          f"must be a relative path inside {DIRECTORY}/") from None  # fmt: skip


def _check_size(texts: dict[str, str], where: str) -> None:
    size = sum(len(v.encode()) for v in texts.values())
    if size > MAX_BYTES:
        raise ConfigError(f"{where}: the release config is {size} bytes, more than the "
                          f"{MAX_BYTES // 1024} KiB an event may carry; shorten it")  # fmt: skip


@contextmanager
def _written(files: dict[str, str], where: str) -> Iterator[Path]:
    """The files under a temporary directory (the loaders read files, and resolve the
    canary config relative to the spec)."""
    with tempfile.TemporaryDirectory(prefix="canary-app-config-") as tmp:
        root = Path(tmp).resolve()
        for name, text in files.items():
            rel = PurePosixPath(name)
            if rel.is_absolute() or ".." in rel.parts or not rel.parts:
                raise ConfigError(f"{where}: {name!r} is not a relative path inside {DIRECTORY}/")
            target = root.joinpath(*rel.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        yield root


def spec_file(path: str, app: str) -> tuple[ReleaseSpec, CanaryConfig]:
    """The release spec at `path` and the canary config it names, for `app`.

    Raises:
        ConfigError: The file is invalid or is for another app.
    """
    spec = ReleaseSpec.load(Path(path))
    if spec.app != app:
        raise ConfigError(f"release spec {path} is for app {spec.app!r}, not {app!r}")
    return spec, spec.load_canary_config()


#: Where a release's config comes from, in precedence order (docs/kubernetes.md): the
#: commit's `.canary/`, the ReleasePolicy in the app's namespace, the deployment's `config`
#: parameter, the file in this repository (DEFAULT_SPEC).
ConfigSource = Literal["commit", "policy", "deployment", "repository"]
#: Reads the app's ReleasePolicy (None: it has none); called only when no commit config wins.
PolicyLookup = Callable[[], tuple[ReleaseSpec, CanaryConfig] | None]


def config_source(*, carried: bool, policy: bool, config: str | None) -> ConfigSource:
    """The one precedence of a release's config sources: the first one present wins.

    Args:
        carried: The build carried the commit's `.canary/` (an app_config).
        policy: The app's namespace has a ReleasePolicy for it.
        config: The deployment's `config` parameter (a release spec path), if set.

    Returns:
        "commit" > "policy" > "deployment" > "repository".
    """
    if carried:
        return "commit"
    if policy:
        return "policy"
    return "deployment" if config else "repository"


class ReleaseConfig(NamedTuple):
    """A release's spec and canary config, and which source gave them."""

    spec: ReleaseSpec
    config: CanaryConfig
    source: ConfigSource


def policy_lookup(platform: object, app: str) -> PolicyLookup | None:
    """Reads `app`'s policy from `platform` when the platform keeps policies
    (canary.ports.ReleasePolicies), else None."""
    if not isinstance(platform, ReleasePolicies):
        return None
    return lambda: platform.release_config(app)


def release_config_of(app: str, commit: str, app_config: object, config: str | None,
                      policy: PolicyLookup | None = None) -> ReleaseConfig:  # fmt: skip
    """The spec and canary config a canary-release run judges with, from its parameters,
    in config_source's order: the commit's `.canary/` the build carried (`app_config`),
    else the app's ReleasePolicy (`policy`, read only when the commit carries none), else
    the file `config`, else DEFAULT_SPEC. The one home of that order: the release, its
    crash hook and `reconcile` (reading a crashed run's parameters) all come here, so the
    platform's adapters get the spec the release was judged with."""
    found = None if app_config or policy is None else policy()
    source = config_source(carried=bool(app_config), policy=found is not None, config=config)
    if source == "policy" and found is not None:
        spec, canary_config = found
        if spec.app != app:
            raise ConfigError(f"{spec.source} is for app {spec.app!r}, not {app!r}")
        return ReleaseConfig(spec, canary_config, source)
    if source != "commit":
        return ReleaseConfig(*spec_file(config or DEFAULT_SPEC.format(app=app), app), source)
    where = f"app_config of commit {commit[:12]}"
    spec, canary_config = load(app_config, app, where)
    if spec.app != app:
        raise ConfigError(f"{where} is for app {spec.app!r}, not {app!r}")
    return ReleaseConfig(spec, canary_config, source)


def spec_of_run(app: str, params: dict[str, object],
                policy: PolicyLookup | None = None) -> tuple[ReleaseSpec | None, str]:  # fmt: skip
    """The release spec a canary-release run judged with, read again from its parameters
    the way the run read it (release_config_of), and where it came from, in words.

    A plain function: the release's crash hook calls it, where no task may run.

    Args:
        app: The app.
        params: The run's parameters.
        policy: Reads the app's ReleasePolicy (policy_lookup of the run's platform).

    Returns:
        (the spec, where it came from); (None, why) when it cannot be read any more (a file
        gone or changed, a worker with another checkout): the platform then falls back as
        for a run that names none (docs/kubernetes.md), and the words say so.
    """
    config = params.get("config")
    guess = ("the commit's .canary/release.yaml" if params.get("app_config")
             else f"the release spec {config or DEFAULT_SPEC.format(app=app)}")  # fmt: skip
    try:
        found = release_config_of(app, str(params.get("commit") or ""), params.get("app_config"),
                                  None if config is None else str(config), policy)  # fmt: skip
    except Exception as exc:  # a repair must still run
        return None, (f"{guess} of the release could not be read again ({exc}); repaired "
                      "with the platform's fallback spec")  # fmt: skip
    source = found.spec.source if found.source == "policy" else guess
    return found.spec, f"repaired with the options of {source}, as the release used them"
