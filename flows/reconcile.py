"""Flow `reconcile`: repair what a crashed release left behind, and say what was fixed.

Also run at the start of every canary release (inside its lock); run on its own, it takes
the same per-app lock, so it waits for a live release instead of tearing it down. Restores 100 % primary (verified by reading
back), removes baseline and canary, restores the user's routes.
"""

from __future__ import annotations

import json
from typing import Any

from prefect import flow
from prefect.concurrency.sync import concurrency

from canary.release import check_app_name
from tasks.platform import reconcile_app
from tasks.publish import publish_report
from tasks.setup import LOCK_LEASE_SECONDS, ensure_release_lock, load_block


@flow(name="reconcile", flow_run_name="reconcile-{app}")
def reconcile(app: str, platform: str = "local-platform/local") -> dict[str, Any]:
    app = check_app_name(app)
    # Take the release lock: repairing while a live release runs would tear it down.
    with concurrency(ensure_release_lock(app), occupy=1, strict=True,
                     lease_duration=LOCK_LEASE_SECONDS):  # fmt: skip
        report = reconcile_app(load_block(platform), app)
    publish_report(app, f"# Reconcile of `{app}`\n\n```json\n{json.dumps(report, indent=2, default=str)}\n```\n",
                   f"{app}: reconcile")  # fmt: skip
    return report
