"""Register our block types and (re)create the block documents the flows use. Re-runnable.

    PREFECT_API_URL=http://127.0.0.1:4200/api python scripts/register_blocks.py \
        [--state-dir .state/local] [--app goldengoose] [--app-port 18080] [--prometheus-port 19090]

Creates `local-platform/local` and `prometheus-source/local` (pointing at the local stack's
Prometheus) with overwrite, registers the `canary-kubernetes-cluster` type for cluster users
(its documents hold a token, so they are created by the operator, not by this script), and
the process work pool `canary-local` when it is missing. No secret is read or printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prefect.client.orchestration import get_client  # noqa: E402
from prefect.client.schemas.actions import WorkPoolCreate  # noqa: E402
from prefect.exceptions import ObjectAlreadyExists  # noqa: E402

from blocks.kubernetes import KubernetesCluster  # noqa: E402
from blocks.local import LocalPlatform  # noqa: E402
from blocks.prometheus import PrometheusSource  # noqa: E402

WORK_POOL = "canary-local"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="local", help="document name of both blocks")
    parser.add_argument("--state-dir", default=str(ROOT / ".state" / "local"))
    parser.add_argument("--app", default="goldengoose")
    parser.add_argument("--app-port", type=int, default=18080)
    parser.add_argument("--stats-port", type=int, default=18404)
    parser.add_argument("--prometheus-port", type=int, default=19090)
    parser.add_argument("--scrape-interval", type=float, default=1.0)
    parser.add_argument("--python", default=sys.executable, help="interpreter that runs the apps")
    args = parser.parse_args(argv)

    for kind in (LocalPlatform, PrometheusSource, KubernetesCluster):
        kind.register_type_and_schema()
    platform = LocalPlatform(
        state_dir=str(Path(args.state_dir).resolve()), app=args.app, app_port=args.app_port,
        haproxy_stats_port=args.stats_port, prometheus_port=args.prometheus_port,
        scrape_interval_seconds=args.scrape_interval, python=args.python,
    )  # fmt: skip
    platform.save(args.name, overwrite=True)
    PrometheusSource(url=platform.prometheus_url).save(args.name, overwrite=True)
    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=WORK_POOL, type="process"))
            pool = "created"
        except ObjectAlreadyExists:
            pool = "exists"
    print(json.dumps({
        "blocks": [f"local-platform/{args.name}", f"prometheus-source/{args.name}"],
        "types": ["local-platform", "prometheus-source", "canary-kubernetes-cluster"],
        "work_pool": {WORK_POOL: pool},
        "prometheus": platform.prometheus_url, "app": platform.app_url,
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
