"""``python -m webhook --host 127.0.0.1 --port 8088``: serve the relay with uvicorn.

Environment: GITHUB_WEBHOOK_SECRET (required), PREFECT_API_URL (required), WEBHOOK_BRANCHES
(optional, comma-separated globs; default: each repository's default branch),
PREFECT_API_AUTH_STRING or PREFECT_API_KEY (optional, sent to Prefect as Prefect's client would).
"""

from __future__ import annotations

import argparse
import logging
import sys

from canary.errors import ConfigError
from webhook.settings import DEFAULT_MAX_BODY_BYTES, DEFAULT_PREFECT_TIMEOUT_S, Settings


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m webhook",
        description="GitHub webhook -> Prefect event relay (POST /github, GET /healthz), and "
        "release metrics for Prometheus (GET /metrics).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8088, help="bind port (default 8088)")
    parser.add_argument(
        "--branches",
        default=None,
        help="comma-separated branch names or globs to relay (overrides WEBHOOK_BRANCHES; "
        "default: the repository's default branch from each payload)",
    )
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    parser.add_argument(
        "--prefect-timeout",
        type=float,
        default=DEFAULT_PREFECT_TIMEOUT_S,
        help="seconds to wait for Prefect before answering 503",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = Settings.from_env(
            branches=args.branches,
            max_body_bytes=args.max_body_bytes,
            prefect_timeout_s=args.prefect_timeout,
        )
    except ConfigError as exc:
        print(f"webhook relay: refusing to start: {exc}", file=sys.stderr)
        return 2

    import uvicorn  # after the config check: a refusal stays instant

    from webhook.app import create_app

    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # httpx logs every request URL at INFO; our one line per delivery says more, and a
    # PREFECT_API_URL with user:password in it must not reach the log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,  # the relay logs one line per delivery itself, with the outcome
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
