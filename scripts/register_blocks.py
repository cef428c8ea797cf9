"""Register our block types and (re)create the block documents the flows use. Re-runnable.

    PREFECT_API_URL=http://127.0.0.1:4200/api python scripts/register_blocks.py \
        [--state-dir .state/local] [--app goldengoose] [--app-port 18080] [--prometheus-port 19090]
        [--app gg01=18081 --app gg02=18082 ...]

`--app NAME[=PORT]` is repeatable: the first names the block's `app` (its port from `=PORT`,
else `--app-port`), every further one is another app of the same platform
(`LocalPlatform.apps`, its own HAProxy frontend port, so `=PORT` is required there).

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


def parse_apps(specs: list[str], first_port: int) -> list[tuple[str, int]]:
    """[(name, port)] of `--app NAME[=PORT]` values; only the first may omit its port."""
    apps: list[tuple[str, int]] = []
    for i, spec in enumerate(specs):
        name, sep, port = spec.partition("=")
        if not sep and i > 0:
            raise ValueError(f"--app {spec}: every app after the first needs =PORT")
        try:
            apps.append((name, int(port) if sep else first_port))
        except ValueError:
            raise ValueError(f"--app {spec}: the port must be a number") from None
    if len({name for name, _ in apps}) != len(apps):
        raise ValueError(f"--app: an app is named twice in {specs}")
    return apps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="local", help="document name of both blocks")
    parser.add_argument("--state-dir", default=str(ROOT / ".state" / "local"))
    parser.add_argument("--app", action="append", default=[], metavar="NAME[=PORT]",
                        help="an app (repeatable; the first is the block's app) [goldengoose]")
    parser.add_argument("--app-port", type=int, default=18080, help="the first app's port")
    parser.add_argument("--stats-port", type=int, default=18404)
    parser.add_argument("--prometheus-port", type=int, default=19090)
    parser.add_argument("--scrape-interval", type=float, default=1.0)
    parser.add_argument("--python", default=sys.executable, help="interpreter that runs the apps")
    args = parser.parse_args(argv)
    try:
        (app, app_port), *more = parse_apps(args.app or ["goldengoose"], args.app_port)
    except ValueError as exc:
        parser.error(str(exc))

    for kind in (LocalPlatform, PrometheusSource, KubernetesCluster):
        kind.register_type_and_schema()
    platform = LocalPlatform(
        state_dir=str(Path(args.state_dir).resolve()), app=app, app_port=app_port, apps=dict(more),
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
        "apps": platform.frontends(),
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
