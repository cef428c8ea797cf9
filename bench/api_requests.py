"""What a lone release asks of the Prefect server: its HTTP requests and websocket events,
counted by route, with the idle polls apart.

    PYTHONPATH=$PWD .venv/bin/python bench/api_requests.py [--db sqlite|postgres]
        [--lifetime 30] [--interval 10] [--begin-after 10] [--rate 10] [--json] [--keep-logs]

The release is concurrent_releases.py's lone release (the same chain with one app, `gg01`,
the same short release config and steady load: its ChainRun), with one difference: every
client of the chain (worker, flow runs, relay, scripts) reaches the server through a
counting proxy on 127.0.0.1 (bench/_api_proxy.py: PREFECT_API_URL points at it; the server
itself, the bench's reads and its latency probe go straight to the server, uncounted).

Counted, in two phases of the same run:

- idle: the chain under load with no release (the worker's polls and heartbeats, the relay's
  event stream), for a rate per second;
- the lone release: push → its canary-release run final, its flow-run processes reaped.

The release's own requests are those of its flow-run processes (`build` and
`canary-release`: Prefect's attribution header names the flow); the others' (worker, relay,
scripts) during the release are shown beside what their idle rate accounts for. Routes are
the server's templates (its OpenAPI paths). The output ends with `name=value` lines:
`api_requests_per_release=` (the flow-run processes' HTTP requests), `..._release_flow=`,
`..._build_flow=`, `ws_events_per_release=`, `other_requests_above_idle=`,
`idle_requests_per_s=` and `server_cpu_per_release_s=` (the server's CPU in the release
phase above its idle rate, as concurrent_releases.py computes it, through the proxy).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable as a plain script

from bench._api_proxy import CountingProxy, Key, Routes  # noqa: E402
from bench._common import missing_binary, say  # noqa: E402
from bench._concurrent_report import PROMOTED  # noqa: E402
from bench.concurrent_releases import ChainRun  # noqa: E402
from demo.chain import Chain, ChainConfig  # noqa: E402

#: the flow-run processes of a release (their requests carry the flow's name)
RELEASE_FLOWS = ("build", "canary-release")


class ProxiedChain(Chain):
    """The chain with every client's PREFECT_API_URL on the proxy; the server's own stays."""

    def __init__(self, config: ChainConfig, proxy_url: str) -> None:
        super().__init__(config, say=lambda line: say(f"  chain: {line}"))
        self.proxy_url = proxy_url

    def client_env(self) -> dict[str, str]:
        """The clients' environment, their API through the proxy."""
        return {**super().client_env(), "PREFECT_API_URL": self.proxy_url}

    def server_env(self) -> dict[str, str]:
        """The server's environment: its own API URL, not the proxy's."""
        return {**super().server_env(), "PREFECT_API_URL": self.config.api_url}


def _diff(after: collections.Counter[Key], before: collections.Counter[Key]) -> collections.Counter[Key]:
    out = collections.Counter(after)
    out.subtract(before)
    return +out


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """One chain, its idle phase, its lone release; the counts of each (by route)."""
    one = ChainRun.create(1, args.db, args)
    proxy = CountingProxy(("127.0.0.1", one.chain.config.prefect_port)).start()
    one.chain = ProxiedChain(one.chain.config, proxy.url)
    ok = False
    try:
        bench = one.start()
        t0, c0 = time.monotonic(), proxy.snapshot()
        one.idle()
        t1, c1 = time.monotonic(), proxy.snapshot()
        alone = one.alone(bench)
        t2, c2 = time.monotonic(), proxy.snapshot()
        spec = httpx.get(f"{one.chain.config.api_url}/openapi.json", timeout=30).json()
        routes = Routes.from_openapi(spec)
        cpu = {name: {k: ph["cpu1"][k] - ph["cpu0"][k] for k in ("server", "t")}
               for name, ph in one.phases.items()}  # fmt: skip
        idle_rate = cpu["idle"]["server"] / cpu["idle"]["t"]
        result = {
            "db": args.db, "outcome": alone[0].outcome, "idle_s": t1 - t0, "release_s": t2 - t1,
            "idle": routes.by_route(_diff(c1, c0).items()),
            "release": routes.by_route(_diff(c2, c1).items()),
            "server_cpu_per_release_s": cpu["alone"]["server"] - idle_rate * cpu["alone"]["t"],
            "server_cpu_idle_per_s": idle_rate, "proxy_errors": proxy.errors,
            "loadavg": os.getloadavg()[0],
        }  # fmt: skip
        ok = alone[0].outcome == PROMOTED
        return result
    finally:
        one.clean_up(ok)
        proxy.stop()


def summary(result: dict[str, Any]) -> dict[str, float]:
    """The tail's figures from one measurement."""
    release, idle = result["release"], result["idle"]
    http = {k: n for k, n in release.items() if not k[1].startswith("WS")}
    mine = {k: n for k, n in http.items() if k[0] in RELEASE_FLOWS}
    others = sum(n for k, n in http.items() if k[0] not in RELEASE_FLOWS)
    idle_http = sum(n for k, n in idle.items() if not k[1].startswith("WS"))
    idle_rate = idle_http / result["idle_s"]
    return {
        "api_requests_per_release": sum(mine.values()),
        "api_requests_release_flow": sum(n for k, n in mine.items() if k[0] == "canary-release"),
        "api_requests_build_flow": sum(n for k, n in mine.items() if k[0] == "build"),
        "ws_events_per_release": sum(n for k, n in release.items()
                                     if k[1] == "WS" and k[0] in RELEASE_FLOWS),  # fmt: skip
        "other_requests_above_idle": others - idle_rate * result["release_s"],
        "idle_requests_per_s": idle_rate,
        "server_cpu_per_release_s": result["server_cpu_per_release_s"],
        "release_s": result["release_s"],
    }


def render(result: dict[str, Any]) -> str:
    """The tables: the release's requests by route, then the others' against their idle rate."""
    release, idle = result["release"], result["idle"]
    per_s = result["release_s"] / result["idle_s"]
    lines = [f"One lone release on {result['db']} ({result['outcome']}, {result['release_s']:.0f} s "
             f"push → reaped; load average {result['loadavg']:.1f})", "",
             "the release's flow-run processes: HTTP requests by route, websocket messages by event",
             f"{'source':<15} {'method':<8} {'route or event':<58} {'count':>5}"]  # fmt: skip
    for (source, method, route), n in sorted(release.items(), key=lambda kv: (kv[0][0], -kv[1], kv[0])):
        if source in RELEASE_FLOWS:
            lines.append(f"{source:<15} {method:<8} {route:<58} {n:>5}")
    lines += ["", "everyone else during the release (worker, relay, scripts) and what their idle "
              "rate accounts for in as long", f"{'source':<15} {'method':<8} {'route or event':<58} "
              f"{'count':>5} {'idle':>6}"]  # fmt: skip
    keys = {k for k in release if k[0] not in RELEASE_FLOWS} | set(idle)
    for key in sorted(keys, key=lambda k: (-release.get(k, 0), k)):
        source, method, route = key
        lines.append(f"{source:<15} {method:<8} {route:<58} {release.get(key, 0):>5} "
                     f"{idle.get(key, 0) * per_s:>6.1f}")  # fmt: skip
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--rate", type=float, default=10.0, help="req/s of steady load [10]")
    parser.add_argument("--lifetime", type=float, default=30.0, help="analysis lifetime, s [30]")
    parser.add_argument("--interval", type=float, default=10.0, help="one look every ... s [10]")
    parser.add_argument("--begin-after", type=float, default=10.0, help="warm-up, s [10]")
    parser.add_argument("--warmup", type=float, default=5.0, help="load before idle is counted [5]")
    parser.add_argument("--json", action="store_true", help="also print the counts as JSON")
    parser.add_argument("--keep-logs", action="store_true", help="keep the chain's home and logs")
    return parser


def main(argv: list[str] | None = None) -> int:
    """The command line; the exit code (1: the release was not promoted)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if (binary := missing_binary()) is not None:
        parser.error(f"{binary} is missing: run `make setup`")
    os.environ.pop("PREFECT_API_URL", None)  # the chain sets its own for every process
    result = measure(args)
    print(render(result), flush=True)
    if args.json:
        print(json.dumps({k: ([[*key, n] for key, n in v.items()] if isinstance(v, collections.Counter)
                              else v) for k, v in result.items()}, indent=2, default=str))  # fmt: skip
    print()
    for name, value in summary(result).items():
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"{name}={shown} db={result['db']} n=1", flush=True)
    return 0 if result["outcome"] == PROMOTED else 1


if __name__ == "__main__":
    sys.exit(main())
