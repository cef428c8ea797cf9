"""Put the first version of an app into production on the local platform (no canary).

    PREFECT_API_URL=... python scripts/bootstrap_production.py --repo PATH --commit SHA [--app NAME]

A canary release needs a production to compare against; this builds `commit` and starts it
as production behind HAProxy (100 % primary, read back). Idempotent: the same commit
already in production is left alone. `--app` names one of the block's apps (its `app` or
one of its `apps`); the default is the block's `app`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from blocks.local import LocalPlatform  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", required=True)
    parser.add_argument("--commit", required=True)
    parser.add_argument("--block", default="local", help="LocalPlatform document name")
    parser.add_argument("--app", default=None, help="which of the block's apps [its `app`]")
    args = parser.parse_args(argv)
    platform = LocalPlatform.load(args.block)
    frontends = platform.frontends()
    app = args.app or platform.app
    if app not in frontends:
        parser.error(f"--app {app}: the block {args.block!r} has the apps {', '.join(frontends)}")
    platform.start()
    bound = platform.for_app(app, None)
    image = bound.builder().build(args.repo, args.commit)
    if bound.production_image() != image:
        bound.workloads().promote(app, image)
    bound.router().rollback(app)
    print(json.dumps({"app": app, "production": image, "url": f"http://127.0.0.1:{frontends[app]}"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
