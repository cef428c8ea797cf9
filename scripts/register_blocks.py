"""Register our block types and (re)create the block documents the flows use. Re-runnable.

    PREFECT_API_URL=http://127.0.0.1:4200/api python scripts/register_blocks.py \
        [--state-dir .state/local] [--app goldengoose] [--app-port 18080] [--prometheus-port 19090]
        [--app gg01=18081 --app gg02=18082 ...]
        [--notify none|slack|teams|webhook [--notify-url-env CANARY_NOTIFY_URL |
         --notify-url-file PATH] [--stuck-after 3600]]

`--app NAME[=PORT]` is repeatable: the first names the block's `app` (its port from `=PORT`,
else `--app-port`), every further one is another app of the same platform
(`LocalPlatform.apps`, its own HAProxy frontend port, so `=PORT` is required there).

Creates `local-platform/local` and `prometheus-source/local` (pointing at the local stack's
Prometheus) with overwrite, registers the `canary-kubernetes-cluster` type for cluster users
(its documents hold a token, so they are created by the operator, not by this script), and
the process work pool `canary-local` when it is missing.

`--notify KIND` sends every release end (promoted, rolled back, aborted, stuck, build failed,
production restored by hand) to a Slack, Microsoft Teams or generic webhook receiver through
Prefect's notification blocks and automations (store/notify.py), replacing an earlier setup;
`--notify none` removes them; without `--notify` they stay as they are. The receiver's URL is
a secret: it is read from the environment variable `--notify-url-env` names (default
CANARY_NOTIFY_URL) or from `--notify-url-file`, never from the command line, and is never
printed. `--stuck-after` is how long after a release's start no end means stuck: the longest
lifetime of the chain's releases plus a margin (docs/operations.md, "Notifications").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prefect.client.orchestration import get_client  # noqa: E402
from prefect.client.schemas.actions import WorkPoolCreate  # noqa: E402
from prefect.exceptions import ObjectAlreadyExists  # noqa: E402

import store.notify as notify  # noqa: E402
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


def notify_url(env_name: str, file: str | None) -> str:
    """The receiver's URL from the file, else the environment variable (never from argv)."""
    url = Path(file).read_text().strip() if file else os.environ.get(env_name, "").strip()
    if not url:
        where = f"the file {file}" if file else f"the environment variable {env_name}"
        raise ValueError(f"--notify: no receiver URL in {where}")
    return url


def notifications(args: argparse.Namespace) -> dict[str, object]:
    """Configure, remove or leave the notification automations; what is set up (no URL)."""
    if args.notify is None:
        return {"notify": "unchanged", "automations": notify.configured()}
    if args.notify == "none":
        notify.remove()
        return {"notify": "none", "automations": notify.configured()}
    made = notify.configure(args.notify, notify_url(args.notify_url_env, args.notify_url_file),
                            stuck_after=timedelta(seconds=args.stuck_after))  # fmt: skip
    return {"notify": args.notify, "automations": made, "stuck_after_seconds": args.stuck_after}


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
    parser.add_argument("--notify", choices=("none", *notify.KINDS), default=None,
                        help="send every release end to this receiver (none: stop) [unchanged]")
    parser.add_argument("--notify-url-env", default="CANARY_NOTIFY_URL",
                        help="the environment variable holding the receiver's URL")
    parser.add_argument("--notify-url-file", default=None,
                        help="a file holding the receiver's URL (instead of the variable)")
    parser.add_argument("--stuck-after", type=float, default=3600.0,
                        help="seconds after a release's start with no end: stuck [3600]")
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
    try:
        notified = notifications(args)
    except (OSError, ValueError) as exc:  # the messages name the variable or file, not the URL
        parser.error(str(exc))
    print(json.dumps({
        "blocks": [f"local-platform/{args.name}", f"prometheus-source/{args.name}"],
        "types": ["local-platform", "prometheus-source", "canary-kubernetes-cluster"],
        "work_pool": {WORK_POOL: pool},
        "prometheus": platform.prometheus_url, "app": platform.app_url,
        "apps": platform.frontends(), "notifications": notified,
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
