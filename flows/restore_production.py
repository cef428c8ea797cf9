"""Flow `restore-production`: put a known-good image back into production.

Started by hand, or by the (disabled by default) automation on `canary.reanalysis.regressed`
with the image that production ran before the last promotion.
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from canary.release import check_app_name
from tasks.platform import promote_image, read_production_image, roll_back_traffic
from tasks.publish import emit
from tasks.setup import load_block


@flow(name="restore-production", flow_run_name="restore-production-{app}")
def restore_production(app: str, image: str, platform: str = "local-platform/local") -> str:
    app = check_app_name(app)
    plat = load_block(platform)
    previous = read_production_image(plat, app)
    promote_image(plat, app, image)
    roll_back_traffic(plat, app)
    get_run_logger().info("%s production restored to %s", app, image)
    emit("canary.production.restored", app, {"image": image, "previous_image": previous})
    return image
