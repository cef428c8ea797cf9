"""Flow `restore-production`: put a known-good image back into production.

Started by `canary rollback` (a person: `by` says who; the last good release, or the one
`--to COMMIT` names), by hand, or by the (disabled by default) automation on
`canary.reanalysis.regressed` with the image that production ran before the last promotion.
It runs no analysis. Under the app's lock (never in the middle of a canary release: with
`lock_timeout` it gives up instead of waiting for one), it puts the image in, all traffic
on production, and reads production back. Emits `canary.production.restored`
(canary.values.events.ProductionRestored, `manual` when a person asked) once production
runs it; the run's state message says what production runs, read back.

No release spec is known here (the promotion's is not recorded), so the platform gets None
and uses its fallback: on Kubernetes `<release_specs>/<app>.yaml`, else the defaults, whose
`container` (default: the first) is the one whose image is replaced (docs/kubernetes.md).
"""

from __future__ import annotations

import contextlib

from prefect import State, flow, get_run_logger
from prefect.states import Completed

from canary.errors import PlatformError
from canary.values import messages
from canary.values.events import ProductionRestored
from canary.values.release import check_app_name
from store import current
from store.blocks import load_block
from store.events import emit
from store.turn import take_lock
from tasks.platform import promote_image, read_production_image, roll_back_traffic
from tasks.setup import ensure_release_lock


def _run_name() -> str:
    """`restore-production-<app>-<short commit>` (`-image` when no commit is named): the
    trailing part lets `canary history` find an app's restores by name, like its releases."""
    app, commit = current.parameter("app"), current.parameter("commit")
    return f"restore-production-{app}-{str(commit)[:7] if commit else 'image'}"


@flow(name="restore-production", flow_run_name=_run_name)
def restore_production(app: str, image: str, platform: str = "local-platform/local",
                       commit: str | None = None, version: str | None = None,
                       by: str | None = None, lock_timeout: float | None = None) -> State:  # fmt: skip
    """Put ``image`` back into production, under the app's lock (never in the middle of a
    canary release), then read it back.

    Args:
        app: The app.
        image: The image production should run.
        platform: The platform block, ``<type-slug>/<name>``.
        commit: The commit ``image`` was built from, when known (``canary rollback``).
        version: Its version, when known.
        by: Who asked, in words (``canary rollback``: a person; None: an automation or a
            run by hand without it).
        lock_timeout: Seconds to wait for the app's lock (None: as long as it takes).

    Returns:
        Completed, with what production runs now (read back) as its message and data.

    Raises:
        PlatformError: Production does not run ``image`` afterwards.
        store.turn.LockBusy: The lock stayed taken for ``lock_timeout`` seconds.
    """
    app = check_app_name(app)
    me = current.run_id()
    with contextlib.ExitStack() as held:
        take_lock(app, ensure_release_lock(app), held, me=me, timeout=lock_timeout)
        plat = load_block(platform)
        previous = read_production_image(plat, app, None)
        promote_image(plat, app, None, image)
        roll_back_traffic(plat, app, None)
        now = read_production_image(plat, app, None)
    if now != image:
        raise PlatformError(f"{app}: production runs {now} after restoring {image} (read back)")
    target = " ".join(x for x in (version, f"({commit[:7]})" if commit else None) if x) or image
    who = f" by {by}" if by else ""
    message = (f"{app} rolled back to {target}{who}: production runs {now} (read back), "
               f"was {previous}")  # fmt: skip
    get_run_logger().info("%s", message)
    line = f"{message} · {messages.link_text(None, current.run_link())}"  # the notification's
    emit(ProductionRestored(app=app, image=now, previous_image=previous, commit=commit,
                            manual=by is not None, by=by, run=me, message=line))  # fmt: skip
    return Completed(message=message, data=now)
