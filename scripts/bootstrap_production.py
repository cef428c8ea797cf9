"""Put the first version of an app into production on the local platform (no canary).

    PREFECT_API_URL=... python scripts/bootstrap_production.py --repo PATH --commit SHA

A canary release needs a production to compare against; this builds `commit` and starts it
as production behind HAProxy (100 % primary, read back). Idempotent: the same commit
already in production is left alone.
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
    args = parser.parse_args(argv)
    platform = LocalPlatform.load(args.block)
    platform.start()
    image = platform.builder_for(platform.app).build(args.repo, args.commit)
    if platform.production_image(platform.app) != image:
        platform.workloads().promote(platform.app, image)
    platform.router().rollback(platform.app)
    print(json.dumps({"app": platform.app, "production": image, "url": platform.app_url}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
