"""A bounded, fixed-schedule load driver for loopback HTTP services (goldengoose first).

Request k is sent at t0 + k/rate whatever the answers do (no closed loop that slows down
with the server), exactly round(rate * duration) requests, at most ``concurrency`` in
flight, and nothing survives the hard deadline. It only ever talks to 127.0.0.1, localhost
or ::1. Latency is measured per request from its actual send to the end of its body.

    python -m examples.goldengoose.load --url http://127.0.0.1:8080/ --rate 50 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
TRACK_HEADER = "X-Goldengoose-Track"
VERSION_HEADER = "X-Goldengoose-Version"
MISSING = "(none)"  # the tally key for answers without the header


def check_loopback(url: str) -> None:
    """Raise ValueError unless ``url`` is http(s) to a loopback host: load never leaves the box."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018  (raises ValueError on a malformed port)
    except ValueError:
        raise ValueError(f"refusing to send load to {url!r}: not a valid URL") from None
    if parts.scheme not in ("http", "https") or host not in LOOPBACK_HOSTS:
        raise ValueError(
            f"refusing to send load to {url!r}: only http(s) to 127.0.0.1, localhost or ::1 "
            f"is allowed (host is {host!r})"
        )


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of already sorted values; NaN if empty."""
    if not sorted_values:
        return math.nan
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


@dataclass(frozen=True)
class LoadResult:
    url: str
    rate: float
    duration: float
    planned: int  # round(rate * duration)
    sent: int  # requests actually started (< planned only if the deadline hit first)
    ok: int  # 2xx answers
    errors: dict[int, int]  # non-2xx answers by status
    transport_errors: dict[str, int]  # no answer (timeout, reset, refused) by exception name
    cancelled: int  # still outstanding at the hard deadline, cancelled
    elapsed: float  # seconds from the first scheduled send to the last completion
    send_span: float  # seconds from the first scheduled send to the last actual send
    max_send_lag: float  # worst lateness of a send versus its schedule (in-flight cap, slow loop)
    latencies: tuple[float, ...] = field(repr=False)  # seconds, every answer (any status)
    tracks: dict[str, int] = field(default_factory=dict)  # answers by X-Goldengoose-Track
    versions: dict[str, int] = field(default_factory=dict)  # answers by X-Goldengoose-Version

    @property
    def answered(self) -> int:
        return self.ok + sum(self.errors.values())

    @property
    def achieved_rate(self) -> float:
        """Requests sent per second over the schedule (1/rate added: k starts at 0)."""
        span = self.send_span + 1.0 / self.rate
        return self.sent / span if self.sent else 0.0

    def percentile(self, q: float) -> float:
        """Latency percentile in seconds (q in 0..100) over all answers."""
        return percentile(sorted(self.latencies), q)

    @property
    def p50(self) -> float:
        return self.percentile(50)

    @property
    def p90(self) -> float:
        return self.percentile(90)

    @property
    def p99(self) -> float:
        return self.percentile(99)

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly digest (latencies in ms, no raw samples)."""
        ordered = sorted(self.latencies)
        return {
            "url": self.url, "rate": self.rate, "duration": self.duration,
            "planned": self.planned, "sent": self.sent, "ok": self.ok,
            "errors": {str(k): v for k, v in sorted(self.errors.items())},
            "transport_errors": self.transport_errors, "cancelled": self.cancelled,
            "elapsed_s": round(self.elapsed, 4), "achieved_rate": round(self.achieved_rate, 2),
            "max_send_lag_ms": round(self.max_send_lag * 1000, 3),
            "latency_ms": {
                f"p{q}": round(percentile(ordered, q) * 1000, 3) if ordered else None
                for q in (10, 50, 90, 99)
            } | {"max": round(ordered[-1] * 1000, 3) if ordered else None},
            "tracks": self.tracks, "versions": self.versions,
        }  # fmt: skip


def _check_args(rate: float, duration: float, concurrency: int, timeout: float) -> None:
    for name, value in (("rate", rate), ("duration", duration), ("timeout", timeout)):
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    if not (isinstance(concurrency, int) and concurrency >= 1):
        raise ValueError(f"concurrency must be an integer >= 1, got {concurrency!r}")


async def run_load(
    url: str,
    *,
    rate: float,
    duration: float,
    concurrency: int = 64,
    deadline: float | None = None,
    timeout: float = 5.0,
) -> LoadResult:
    """Send round(rate*duration) GETs to ``url`` on a fixed schedule; stop hard at ``deadline``.

    ``deadline`` is seconds after the start (default duration + timeout + 1): outstanding
    requests are cancelled then and counted in ``cancelled``. ``timeout`` bounds each request.
    """
    check_loopback(url)
    _check_args(rate, duration, concurrency, timeout)
    hard = duration + timeout + 1.0 if deadline is None else deadline
    if not (math.isfinite(hard) and hard > 0):
        raise ValueError(f"deadline must be a positive finite number, got {deadline!r}")
    planned = round(rate * duration)
    loop = asyncio.get_running_loop()
    slots = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    transport: Counter[str] = Counter()
    tracks: Counter[str] = Counter()
    versions: Counter[str] = Counter()
    inflight: set[asyncio.Task[None]] = set()
    sent = 0
    max_lag = 0.0
    last_send = last_done = 0.0

    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:
        t0 = loop.time()
        stop_at = t0 + hard

        async def one() -> None:
            nonlocal last_done
            start = loop.time()
            try:
                async with session.get(url, allow_redirects=False) as resp:
                    await resp.read()
                latencies.append(loop.time() - start)
                statuses[resp.status] += 1
                tracks[resp.headers.get(TRACK_HEADER, MISSING)] += 1
                versions[resp.headers.get(VERSION_HEADER, MISSING)] += 1
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                transport[type(exc).__name__] += 1
            finally:
                last_done = loop.time()
                slots.release()

        async def schedule() -> None:
            nonlocal sent, max_lag, last_send
            for k in range(planned):
                due = t0 + k / rate
                if due >= stop_at:
                    return  # a send due at or after the deadline would only be cancelled
                if (wait := due - loop.time()) > 0:
                    await asyncio.sleep(wait)
                await slots.acquire()
                if loop.time() >= stop_at:
                    slots.release()
                    return
                last_send = loop.time()
                max_lag = max(max_lag, last_send - due)
                sent += 1
                task = asyncio.create_task(one())
                inflight.add(task)
                task.add_done_callback(inflight.discard)

        scheduler = asyncio.create_task(schedule())
        with contextlib.suppress(TimeoutError):  # on timeout wait_for cancels the scheduler
            await asyncio.wait_for(scheduler, timeout=max(0.0, stop_at - loop.time()))
        cancelled = 0
        if inflight:
            _, pending = await asyncio.wait(set(inflight), timeout=max(0.0, stop_at - loop.time()))
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            cancelled = len(pending)
        end = loop.time() if cancelled or sent < planned else max(last_done, last_send)

    ok = sum(n for code, n in statuses.items() if 200 <= code < 300)
    return LoadResult(
        url=url, rate=rate, duration=duration, planned=planned, sent=sent, ok=ok,
        errors={code: n for code, n in sorted(statuses.items()) if not 200 <= code < 300},
        transport_errors=dict(transport), cancelled=cancelled, elapsed=max(0.0, end - t0),
        send_span=max(0.0, last_send - t0), max_send_lag=max_lag, latencies=tuple(latencies),
        tracks=dict(tracks), versions=dict(versions),
    )  # fmt: skip


def drive(
    url: str,
    *,
    rate: float,
    duration: float,
    concurrency: int = 64,
    deadline: float | None = None,
    timeout: float = 5.0,
) -> LoadResult:
    """Synchronous ``run_load`` for callers without an event loop (tests, flows, benchmarks)."""
    return asyncio.run(
        run_load(
            url, rate=rate, duration=duration, concurrency=concurrency,
            deadline=deadline, timeout=timeout,
        )
    )  # fmt: skip


def _format(result: LoadResult) -> str:
    s = result.summary()
    lat = " ".join(f"{k} {v}" for k, v in s["latency_ms"].items())
    return (
        f"sent {result.sent}/{result.planned} to {result.url} at {s['achieved_rate']} rps "
        f"(target {result.rate}), done in {s['elapsed_s']} s\n"
        f"ok {result.ok}  errors {s['errors']}  transport errors {result.transport_errors}  "
        f"cancelled {result.cancelled}  max send lag {s['max_send_lag_ms']} ms\n"
        f"latency ms: {lat}\n"
        f"tracks {result.tracks}  versions {result.versions}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m examples.goldengoose.load", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--url", default="http://127.0.0.1:8080/", help="loopback URL to load")
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of schedule")
    parser.add_argument("--concurrency", type=int, default=64, help="max requests in flight")
    parser.add_argument("--timeout", type=float, default=5.0, help="per-request timeout (s)")
    parser.add_argument("--deadline", type=float, default=None,
                        help="hard stop, seconds after start (default duration + timeout + 1)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    try:
        result = drive(
            args.url, rate=args.rate, duration=args.duration, concurrency=args.concurrency,
            deadline=args.deadline, timeout=args.timeout,
        )  # fmt: skip
    except ValueError as exc:
        print(f"load: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result.summary()) if args.json else _format(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
