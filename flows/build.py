"""Flow `build`: a pushed commit becomes an image (artifact), announced by an event.

Triggered by the `github.push` event (see prefect.yaml). On success it emits
`canary.build.succeeded` (resource `canary.app.<app>`, payload image + commit), which
triggers the canary release; on failure `canary.build.failed` with the reason.

The release config travels with the app: a commit with `.canary/release.yaml` (and the
canary config it names, inside `.canary/`) has both validated here, before building, and
carried as `app_config` in the event; its `app:` names the app. A bad `.canary/` fails the
build. The build itself uses that spec too (on Kubernetes its `kubernetes:` dockerfile and
context). Without `.canary/` the release reads deployments/releases/<app>.yaml, and the
build passes the platform no spec (the platform's fallback, docs/kubernetes.md).

Idempotent by commit: however many deliveries of one commit arrive, one build runs and
announces it; the others end at once (state Skipped, type Cancelled) saying which run
did the work, and so does a build of the commit production already runs. A run cancelled
while it was still queued stays cancelled.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TypedDict

from prefect import State, flow, get_run_logger
from prefect.states import Cancelled

from canary.appconfig import DIRECTORY
from canary.config.release import ReleaseSpec
from canary.ports import Platform
from canary.queue import Place, place
from canary.values import messages
from canary.values.events import BuildFailed, BuildSucceeded
from canary.values.outcome import BUILD_SKIPPED
from canary.values.release import app_name_for_repository, check_commit
from store import current, runs
from store.blocks import load_block
from store.events import emit
from tasks.platform import build_image, image_version, read_config_files, read_production_commit
from tasks.setup import check_app_config, load_release_config, read_policy_spec

SKIPPED = BUILD_SKIPPED.name


class Built(TypedDict):
    """What a build returns: its BuildSucceeded event's fields."""

    app: str
    commit: str
    image: str
    repo: str
    pushed_at: str | None
    version: str | None
    app_config: dict[str, str] | None


def _announce(flow: object, flow_run: object, state: State) -> None:
    """Emit canary.build.succeeded once the run is Completed.

    From a completion hook rather than the flow body: measured here, the automation it
    triggers then creates the release run in ~0.03 s instead of ~2 s.
    """
    emit(BuildSucceeded.model_validate(state.result()))


@flow(name="build", flow_run_name="build-{app}-{commit:.7}", log_prints=False,
      on_completion=[_announce])  # fmt: skip
def build(
    repo: str, commit: str, app: str, platform: str = "local-platform/local",
    pushed_at: str | None = None,
) -> Built | State:
    """Build `commit` of `repo` for `app` on the platform named by the block `platform`.
    `app` may be a repository name (the push automation passes it): it is mapped to a valid
    app name (`MyService` -> `myservice`, see canary.release.app_name_for_repository)."""
    logger, started = get_run_logger(), datetime.now(UTC)
    try:
        given = app
        app, commit = app_name_for_repository(app), check_commit(commit)
        if app != given:
            logger.info("repository %r releases as app %r (app names are RFC 1123 labels)",
                        given, app)  # fmt: skip
        skip = _why_not_build(given, commit)  # its sibling runs carry the same parameter
        plat = load_block(platform)
        app_config, spec = None, None
        if skip is None:
            app, app_config, spec = _app_config(plat, app, repo, commit)
        if skip is None and read_production_commit(plat, app) == commit:
            skip = f"production already runs commit {commit[:12]}: nothing to build or release"
        if skip is not None:
            logger.info("%s %s: %s", app, commit[:12], skip)
            return Cancelled(name=SKIPPED, message=skip)
        image = build_image(plat, app, spec, repo, commit)
    except Exception as exc:
        _failed(app, str(commit), repo, str(exc)[:2000], pushed_at or started)
        raise
    version = image_version(plat, app, image)
    logger.info("built %s %s at %s: %s", app, version or "", commit, image)
    return Built(app=app, commit=commit, image=image, repo=repo, pushed_at=pushed_at,
                 version=version, app_config=app_config)


def _failed(app: str, commit: str, repo: str, reason: str, since: str | datetime) -> None:
    """Emit canary.build.failed, its notification's line included."""
    emit(BuildFailed(app=app, commit=commit, repo=repo, reason=reason, message=messages.build_failed(
        app=app, commit=commit, reason=reason, run=current.run_link(),
        seconds=messages.seconds_between(since, datetime.now(UTC)))))  # fmt: skip


def _app_config(plat: Platform, app: str, repo: str,
                commit: str) -> tuple[str, dict[str, str] | None, ReleaseSpec | None]:  # fmt: skip
    """(the app, the release config to carry, its spec) from the commit's `.canary/`;
    (app, None, the spec of the app's ReleasePolicy or None) when it has none: the release
    then reads the policy, else deployments/releases/<app>.yaml (canary.appconfig)."""
    files = read_config_files(plat, app, repo, commit)
    if files is None:
        return app, None, read_policy_spec(plat, app)
    app_config, named = check_app_config(files, app, f"{repo} at {commit[:12]}")
    if named != app:
        get_run_logger().info("%s/release.yaml names the app %r (not %r)", DIRECTORY, named, app)
    spec = load_release_config(named, commit, app_config, None).spec
    return named, app_config, spec


def _why_not_build(app: str, commit: str) -> str | None:
    """Another run already builds (or built) this commit, or a person cancelled this one."""
    stopped = current.stop_requested()
    if stopped:
        return f"cancelled while queued: {stopped}"
    decision = place(current.this_run(), runs.sibling_runs("build", app))
    if decision.place is Place.DUPLICATE:
        return decision.reason
    return None
