"""Flow `restore-production`: put a known-good image back into production.

Started by hand, or by the (disabled by default) automation on `canary.reanalysis.regressed`
with the image that production ran before the last promotion. Emits
`canary.production.restored` (canary.values.events.ProductionRestored) once production
runs it (read back).

No release spec is known here (the promotion's is not recorded), so the platform gets None
and uses its fallback: on Kubernetes `<release_specs>/<app>.yaml`, else the defaults, whose
`container` (default: the first) is the one whose image is replaced (docs/kubernetes.md).
"""

from __future__ import annotations

import contextlib

from prefect import flow, get_run_logger

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


@flow(name="restore-production", flow_run_name="restore-production-{app}")
def restore_production(app: str, image: str, platform: str = "local-platform/local") -> str:
    """Put ``image`` back into production, under the app's lock (never in the middle of a
    canary release), then read it back.

    Args:
        app: The app.
        image: The image production should run.
        platform: The platform block, ``<type-slug>/<name>``.

    Returns:
        The image production runs now (read back).

    Raises:
        PlatformError: Production does not run ``image`` afterwards.
    """
    app = check_app_name(app)
    me = current.run_id()
    with contextlib.ExitStack() as held:
        take_lock(app, ensure_release_lock(app), held, me=me)
        plat = load_block(platform)
        previous = read_production_image(plat, app, None)
        promote_image(plat, app, None, image)
        roll_back_traffic(plat, app, None)
        now = read_production_image(plat, app, None)
    if now != image:
        raise PlatformError(f"{app}: production runs {now} after restoring {image} (read back)")
    get_run_logger().info("%s production restored to %s (read back), was %s", app, now, previous)
    emit(ProductionRestored(app=app, image=now, previous_image=previous, message=messages.restored(
        app=app, image=now, previous=previous, by="by hand", run=current.run_link())))
    return now
