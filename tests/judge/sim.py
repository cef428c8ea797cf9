"""Seeded simulations of a canary pair's requests, for the sequential judge's validity and
power tests and for bench/judge_power.py.

One simulated request stream serves every judge being compared, so differences come from the
judges, not from the data:

* the sequential judge sees what Prometheus' counters hold, cumulative since the analysis
  began (requests, errors, `le` buckets), at the end of every look;
* the Kayenta mode sees what a range query returns: one point per 1 s step of rate()[5s]
  (error ratio, success rate, 5xx increase) and histogram_quantile over the same windows,
  as in deployments/canary-configs/goldengoose-kayenta.yaml, over a window that grows from the
  start of the analysis, judged after every look with fail-fast;
* fixed-horizon yardsticks see the raw requests of the last look.

Time runs in whole seconds: second s holds the requests of (s - 1, s], and a counter is
scraped once per second, at the end of each. Randomness only through an explicit
numpy Generator.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import Histogram
from scipy import stats

from canary.judge import Classification, ScoredMetric, classify_metric, passes, score
from canary.judge.sequential import QUANTILES, CountsResult, compare_counts, compare_histograms
from examples.goldengoose.server import LATENCY_BUCKETS

ROOT = Path(__file__).resolve().parents[2]
#: The goldengoose service judged the Kayenta way (range-query points, NetflixACAJudge).
KAYENTA_CONFIG = ROOT / "deployments" / "canary-configs" / "goldengoose-kayenta.yaml"

#: Prometheus client libraries' default buckets (seconds), and the demo app's.
PROMETHEUS_DEFAULT_BOUNDS = np.array([float(b) for b in Histogram.DEFAULT_BUCKETS])
GOLDENGOOSE_BOUNDS = np.array([*LATENCY_BUCKETS, math.inf])


def geometric_bounds(start: float, factor: float, stop: float) -> np.ndarray:
    """start, start x factor, ... up to the first bound >= stop, then +Inf."""
    count = math.ceil(math.log(stop / start) / math.log(factor)) + 1
    return np.array([*(start * factor ** np.arange(count)), math.inf])


# -- latency distributions ---------------------------------------------------------------


@dataclass(frozen=True)
class Latency:
    """A latency distribution in seconds: `base` (a frozen scipy distribution) times
    `scale`; a `slow_fraction` of requests is `slow_factor` times slower still."""

    name: str
    base: Any
    scale: float = 1.0
    slow_fraction: float = 0.0
    slow_factor: float = 1.0

    def scaled(self, factor: float) -> Latency:
        return replace(self, scale=self.scale * factor)

    def with_slow(self, fraction: float, factor: float) -> Latency:
        return replace(self, slow_fraction=fraction, slow_factor=factor)

    def cdf(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        fast = self.base.cdf(x / self.scale)
        if not self.slow_fraction:
            return fast
        slow = self.base.cdf(x / (self.scale * self.slow_factor))
        return (1 - self.slow_fraction) * fast + self.slow_fraction * slow

    def quantile(self, q: float) -> float:
        """The true quantile (by bisection: mixtures have no closed form)."""
        lo, hi = 0.0, 1.0
        while self.cdf(hi) < q:
            hi *= 2
        for _ in range(80):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if self.cdf(mid) < q else (lo, mid)
        return hi

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        values = np.asarray(self.base.rvs(size=n, random_state=rng), dtype=float) * self.scale
        if self.slow_fraction:
            values[rng.random(n) < self.slow_fraction] *= self.slow_factor
        return values

    def bucket_probabilities(self, bounds: np.ndarray) -> np.ndarray:
        """P(latency in each `le` bucket), the last one (+Inf) included."""
        cdf = np.append(self.cdf(np.asarray(bounds[:-1])), 1.0)
        return np.diff(cdf, prepend=0.0).clip(0.0)


#: The bench's reference service: 20 ms + exponential jitter of mean 10 ms.
SHIFTED_EXPONENTIAL = Latency("20 ms + exp(10 ms)", stats.expon(loc=0.020, scale=0.010))
#: A lognormal with median 50 ms (sigma 0.5).
LOGNORMAL = Latency("lognormal(50 ms, 0.5)", stats.lognorm(s=0.5, scale=0.050))
#: Pareto, minimum 10 ms, tail index 1.5 (infinite variance).
PARETO = Latency("pareto(10 ms, 1.5)", stats.pareto(b=1.5, scale=0.010))


# -- fast counts-only simulation (no per-second detail) ----------------------------------


def look_counts(rng: np.random.Generator, reps: int, requests: np.ndarray,
                error_rate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative (totals, errors) at the end of every look, shape (reps, looks), for one
    track: `requests[j]` is the expected number of requests in look j (Poisson), and
    `error_rate[j]` the chance that one of them fails."""
    requests = np.asarray(requests, dtype=float)
    n = rng.poisson(np.broadcast_to(requests, (reps, requests.size)))
    errors = rng.binomial(n, np.broadcast_to(error_rate, n.shape))
    return np.cumsum(n, axis=1), np.cumsum(errors, axis=1)


def look_buckets(rng: np.random.Generator, reps: int, requests: np.ndarray,
                 probabilities: np.ndarray) -> np.ndarray:
    """Cumulative `le` bucket counts at the end of every look, shape (reps, looks, buckets):
    Poisson requests per look, bucketed by `probabilities` (Latency.bucket_probabilities)."""
    requests = np.asarray(requests, dtype=float)
    n = rng.poisson(np.broadcast_to(requests, (reps, requests.size)))
    per_look = rng.multinomial(n, probabilities)  # (reps, looks, buckets)
    return np.cumsum(np.cumsum(per_look, axis=1), axis=2)


def look_paths(rng: np.random.Generator, reps: int, requests: np.ndarray,
               probabilities: np.ndarray) -> np.ndarray:
    """look_buckets with the looks first, shape (looks, reps, buckets), as
    histogram_log_evidence takes paths: one track of `reps` releases."""
    return np.moveaxis(look_buckets(rng, reps, requests, probabilities), 1, 0).astype(float)


def release_paths(rng: np.random.Generator, reps: int, requests: np.ndarray, control: np.ndarray,
                  canary: np.ndarray, *, canary_share: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Both tracks of `reps` releases, (looks, reps, buckets) each: per look, Poisson requests
    (the pair's 2 x `requests`, a share `canary_share` to the canary, so each request's
    track is a coin flip), bucketed by `control` and `canary` bucket probabilities (one row
    per look, or one for all looks)."""
    requests = np.asarray(requests, dtype=float)
    c = look_paths(rng, reps, 2 * requests * (1 - canary_share), np.asarray(control, dtype=float))
    e = look_paths(rng, reps, 2 * requests * canary_share, np.asarray(canary, dtype=float))
    return c, e


def share_boundary(probabilities: np.ndarray, factor: float) -> np.ndarray:
    """Bucket probabilities whose share above every bound is `factor` x that of
    `probabilities` (capped at 1 where that would exceed it): a canary exactly at the
    boundary of a `tolerance_on="share"` tolerance factor - 1 wherever it can be."""
    p = np.asarray(probabilities, dtype=float)
    survival = np.minimum(1.0, factor * (1.0 - np.cumsum(p, axis=-1)[..., :-1]))
    cdf = np.concatenate([1.0 - survival, np.ones(p.shape[:-1] + (1,))], axis=-1)
    return np.diff(cdf, axis=-1, prepend=0.0).clip(0.0)


def first_decisions(regression: np.ndarray, within: np.ndarray | None, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Per release (paths with the looks on axis 0, from histogram_log_evidence or
    ratio_log_evidence): the first look (1-based) whose regression evidence reaches 1/alpha
    and the first whose "within tolerance" evidence does, 0 where none does."""
    threshold = math.log(1.0 / alpha)

    def first(log_e: np.ndarray) -> np.ndarray:
        hit = log_e >= threshold
        return np.where(hit.any(axis=0), hit.argmax(axis=0) + 1, 0)

    return first(regression), (first(within) if within is not None else np.zeros(regression.shape[1:], dtype=int))


# -- a request stream, second by second ----------------------------------------------------


@dataclass(frozen=True)
class Track:
    """One track's requests: per second, how many, how many failed, and their `le` bucket
    counts (not cumulative over le); `latencies` (raw, if kept) in arrival order."""

    requests: np.ndarray  # (seconds,)
    errors: np.ndarray  # (seconds,)
    buckets: np.ndarray  # (seconds, len(bounds))
    bounds: np.ndarray
    latencies: np.ndarray | None = field(default=None, repr=False)

    def counts_at(self, second: int) -> tuple[float, float, np.ndarray]:
        """Counters at the end of `second`: (requests, errors, cumulative le buckets)."""
        return (float(self.requests[:second].sum()), float(self.errors[:second].sum()),
                np.cumsum(self.buckets[:second].sum(axis=0)).astype(float))  # fmt: skip

    def raw_until(self, second: int) -> np.ndarray:
        assert self.latencies is not None, "simulate the track with keep_raw=True"
        return self.latencies[: int(self.requests[:second].sum())]


def simulate_track(rng: np.random.Generator, rate: np.ndarray, error_rate: np.ndarray | float,
                   latency: Latency, bounds: np.ndarray, *, keep_raw: bool = False) -> Track:
    """Poisson arrivals at `rate[s]` requests per second; each fails with `error_rate`
    (per second, or one number) and takes a latency drawn from `latency`."""
    rate = np.asarray(rate, dtype=float)
    n = rng.poisson(rate)
    errors = rng.binomial(n, np.broadcast_to(error_rate, n.shape))
    values = latency.sample(rng, int(n.sum()))
    second = np.repeat(np.arange(n.size), n)
    idx = np.searchsorted(bounds, values, side="left")  # le: value <= bound
    flat = np.bincount(second * bounds.size + idx, minlength=n.size * bounds.size)
    return Track(n, errors, flat.reshape(n.size, bounds.size), bounds,
                 values if keep_raw else None)  # fmt: skip


# -- what a Prometheus range query returns --------------------------------------------------


def histogram_quantile(q: float, cumulative: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """PromQL's histogram_quantile, per row of cumulative `le` counts: linear within the
    bucket holding rank q x total; the highest finite bound in the +Inf bucket; NaN for
    no requests."""
    total = cumulative[:, -1]
    rank = q * total
    b = np.minimum((cumulative < rank[:, None]).sum(axis=1), bounds.size - 1)
    rows = np.arange(cumulative.shape[0])
    start = np.where(b > 0, bounds[np.maximum(b - 1, 0)], 0.0)
    below = np.where(b > 0, cumulative[rows, np.maximum(b - 1, 0)], 0.0)
    inside = cumulative[rows, b] - below
    end = np.where(b < bounds.size - 1, bounds[np.minimum(b, bounds.size - 2)], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = start + (end - start) * np.where(inside > 0, (rank - below) / inside, 1.0)
    value = np.where(b == bounds.size - 1, bounds[-2], value)
    return np.where(total > 0, value, np.nan)


def range_query(track: Track, end: int, *, window: int = 5) -> dict[str, np.ndarray]:
    """The goldengoose config's series for one track, one point per second t = window..end.

    With a 1 s scrape, rate()[5s] at t sees the samples at t-4 .. t: the delta of 4 s of
    requests, extrapolated to 5 s (x 5/4). Ratios do not depend on the extrapolation;
    the 5xx count (increase) does. Consecutive points share 3 of their 4 seconds.
    """
    span = window - 1
    steps = np.arange(window, end + 1)
    c_req = np.concatenate([[0], np.cumsum(track.requests[:end])])
    c_err = np.concatenate([[0], np.cumsum(track.errors[:end])])
    c_bkt = np.vstack([np.zeros(track.bounds.size), np.cumsum(track.buckets[:end], axis=0)])
    req = c_req[steps] - c_req[steps - span]
    err = c_err[steps] - c_err[steps - span]
    bkt = np.cumsum(c_bkt[steps] - c_bkt[steps - span], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(req > 0, err / np.where(req > 0, req, 1), np.nan)
    return {
        "success-rate": 100 * (1 - ratio),
        "error-ratio": ratio,
        "5xx-count": err * window / span,
        "latency-p50": histogram_quantile(0.5, bkt, track.bounds),
        "latency-p99": histogram_quantile(0.99, bkt, track.bounds),
    }


# -- the Kayenta mode over a release ----------------------------------------------------------


@dataclass(frozen=True)
class KayentaMetric:
    name: str
    group: str
    direction: str
    critical: bool


@cache
def goldengoose_metrics() -> tuple[KayentaMetric, ...]:
    """The scored (not muted) metrics of goldengoose's Kayenta-mode config, as it says."""
    from canary.config import CanaryConfig

    config = CanaryConfig.load(KAYENTA_CONFIG)
    assert config.judge.name.startswith("NetflixACAJudge"), f"{KAYENTA_CONFIG} is not Kayenta-mode"
    return tuple(KayentaMetric(m.name, m.groups[0], m.canary.direction, bool(m.canary.critical))
                 for m in config.metrics if not m.canary.muted)  # fmt: skip


def kayenta_metrics(group: str | None = None) -> tuple[KayentaMetric, ...]:
    return tuple(m for m in goldengoose_metrics() if group is None or m.group == group)


def kayenta_score(control: Mapping[str, np.ndarray], experiment: Mapping[str, np.ndarray],
                  metrics: tuple[KayentaMetric, ...], weights: Mapping[str, float]) -> float:
    """Kayenta's judge on one look: classify each pair at the judge's 98% / 25%, score."""
    scored = []
    for m in metrics:
        r = classify_metric(control[m.name], experiment[m.name], direction=m.direction,
                            critical=m.critical)  # fmt: skip
        scored.append(ScoredMetric(m.name, r.classification, (m.group,), critical=r.critical))
    return score(scored, weights).summary_score


def kayenta_release(control: Track, canary: Track, *, looks: int, look_seconds: int,
                    group: str | None = None, thresholds: tuple[float, float] = (95.0, 75.0)) -> int | None:
    """The look at which a Kayenta-mode release fails, or None if it is promoted.

    Growing windows from the start; after each look fail fast at score <= marginal; the
    last score must reach `pass`. `group` judges only that group's metrics (weight 100),
    so errors and latency can be told apart; None judges the whole config (errors 50,
    latency 50).
    """
    metrics = kayenta_metrics(group)
    weights = {group: 100.0} if group else {"errors": 50.0, "latency": 50.0}
    pass_, marginal = thresholds
    for look in range(1, looks + 1):
        end = look * look_seconds
        s = kayenta_score(range_query(control, end), range_query(canary, end), metrics, weights)
        if not passes(s, pass_threshold=None, marginal_threshold=marginal):
            return look
        if look == looks and not passes(s, pass_threshold=pass_, marginal_threshold=marginal):
            return look
    return None


def first_look(judge: Callable[[int], Any], looks: int, *, stop: Callable[[Any], bool]) -> int | None:
    """Call `judge(look)` after every look; the first look where `stop(result)`, or None."""
    for look in range(1, looks + 1):
        if stop(judge(look)):
            return look
    return None


def is_high(result: Any) -> bool:
    return result.classification is Classification.HIGH


def is_safe(result: Any) -> bool:
    return result.classification is Classification.PASS and result.decided


def binomial_ceiling(trials: int, rate: float, tail: float = 1e-6) -> int:
    """The largest count of successes that is still compatible with a true rate <= `rate`:
    P(Binomial(trials, rate) > ceiling) <= tail. A seeded test that asserts `count <=
    ceiling` fails only when the rate is in truth above `rate` (or with chance `tail`)."""
    return int(stats.binom.isf(tail, trials, rate))


def binomial_floor(trials: int, rate: float, tail: float = 1e-6) -> int:
    """The smallest count compatible with a true rate >= `rate`, at the same tail."""
    return int(stats.binom.ppf(tail, trials, rate))


def assert_at_most(count: int, trials: int, rate: float, what: str, tail: float = 1e-6) -> None:
    """Assert a claim "rate <= `rate`" on `count` events in `trials` seeded releases: fails
    only if the count exceeds the binomial ceiling (test_sequential_validity.py explains the
    margin). Prints the measured rate."""
    ceiling = binomial_ceiling(trials, rate, tail)
    print(f"{what}: {count}/{trials} = {count / trials:.2%} (claim <= {rate:.3g}, "
          f"ceiling {ceiling})")  # fmt: skip
    assert count <= ceiling, (
        f"{what}: {count} of {trials} = {count / trials:.2%}, above the ceiling {ceiling} that a "
        f"true rate <= {rate:g} exceeds with chance < {tail:g}"
    )


@contextmanager
def budget(seconds: float) -> Iterator[None]:
    """Print the time a simulation took next to what it was sized for (on the 2-core VM);
    the sizes are fixed, so the time is bounded, and a busy machine never fails a test."""
    start = time.perf_counter()
    yield
    print(f"  ({time.perf_counter() - start:.1f} s, sized for ~{seconds:g} s)")


# -- the sequential judge after every look, over many seeded releases -------------------------


class CountsJudge:
    """compare_counts, memoised on the event counts: its evidence and interval depend on
    them only (canary-labelled events among all events; the totals say whether there is
    data), and on the canary's total with a `safe_rate` (its own rate is judged too).
    test_sequential_validity.test_evidence_depends_on_the_event_counts_only checks it."""

    def __init__(self, **settings: object) -> None:
        self.settings = settings
        self.cache: dict[tuple[float, float, float | None, bool], CountsResult] = {}

    def __call__(self, ce: float, ct: float, ee: float, et: float) -> CountsResult:
        key = (ce, ee, et if self.settings.get("safe_rate") is not None else None, ct > 0 and et > 0)
        result = self.cache.get(key)
        if result is None:
            result = self.cache[key] = compare_counts(ce, ct, ee, et, **self.settings)  # type: ignore[arg-type]
        return result


@dataclass
class CountsRun:
    high: int = 0
    low: int = 0
    safe: int = 0
    cs_miss: int = 0
    trials: int = 0
    first_looks: list[int] = field(default_factory=list)


def run_counts(rng: np.random.Generator, reps: int, requests: np.ndarray, base_rate: np.ndarray,
               ratio: float, *, canary_share: float = 0.5, **settings: object) -> CountsRun:
    """`reps` releases: per look, Poisson requests (the pair's `2 x requests`, a share
    `canary_share` to the canary), errors at `base_rate` (baseline) and `ratio` x that
    (canary); the judge after every look."""
    requests = np.asarray(requests, dtype=float)
    base_rate = np.broadcast_to(np.asarray(base_rate, dtype=float), requests.shape)
    ct, ce = look_counts(rng, reps, 2 * requests * (1 - canary_share), base_rate)
    et, ee = look_counts(rng, reps, 2 * requests * canary_share, base_rate * ratio)
    judge = CountsJudge(**settings)
    run = CountsRun(trials=reps)
    for i in range(reps):
        high = low = safe = miss = False
        for j in range(requests.size):
            r = judge(ce[i, j], ct[i, j], ee[i, j], et[i, j])
            if r.classification is Classification.HIGH and not high:
                high = True
                run.first_looks.append(j + 1)
            low |= r.classification is Classification.LOW
            safe |= r.classification is Classification.PASS and r.decided
            miss |= not (r.ratio_lower <= ratio <= r.ratio_upper)
        run.high += high
        run.low += low
        run.safe += safe
        run.cs_miss += miss
    return run


@dataclass
class HistRun:
    trials: int = 0
    high: int = 0
    alarm: int = 0  # High or Low
    safe: int = 0
    band_miss: dict[tuple[str, float], int] = field(default_factory=dict)
    first_alarm: list[int] = field(default_factory=list)  # the look of each release's first High/Low
    first_safe: list[int] = field(default_factory=list)  # ... and of its first decided Pass


def run_histograms(rng: np.random.Generator, reps: int, requests: np.ndarray, control: Latency | list[Latency],
                   canary: Latency | list[Latency], bounds: np.ndarray, *, canary_share: float = 0.5,
                   stop_at_high: bool = True, **settings: object) -> HistRun:
    """`reps` releases with Poisson requests per look and latencies bucketed by `bounds`
    (one Latency per look if given a list); the judge after every look, as the flow calls
    it: with the release's earlier looks as `history` and `planned_looks` the number of
    looks (unless `settings` say otherwise). Band misses are counted against the first
    look's distributions."""
    requests = np.asarray(requests, dtype=float)
    settings = {"planned_looks": int(requests.size), **settings}

    def probabilities(latency: Latency | list[Latency]) -> np.ndarray:
        if isinstance(latency, Latency):
            return latency.bucket_probabilities(bounds)
        return np.array([d.bucket_probabilities(bounds) for d in latency])

    c = look_buckets(rng, reps, 2 * requests * (1 - canary_share), probabilities(control))
    e = look_buckets(rng, reps, 2 * requests * canary_share, probabilities(canary))
    truth = {side: {q: (d if isinstance(d, Latency) else d[0]).quantile(q) for q in QUANTILES}
             for side, d in (("control", control), ("canary", canary))}  # fmt: skip
    run = HistRun(trials=reps, band_miss={(s, q): 0 for s in truth for q in QUANTILES})
    for i in range(reps):
        high = alarm = safe = False
        missed: set[tuple[str, float]] = set()
        for j in range(requests.size):
            history = list(zip(c[i, :j], e[i, :j], strict=True))
            r = compare_histograms(c[i, j], e[i, j], bounds, history=history, **settings)  # type: ignore[arg-type]
            high |= r.classification is Classification.HIGH
            if r.classification in (Classification.HIGH, Classification.LOW) and not alarm:
                alarm = True
                run.first_alarm.append(j + 1)
            if r.classification is Classification.PASS and r.decided and not safe:
                safe = True
                run.first_safe.append(j + 1)
            for side, bands in (("control", r.control_quantiles), ("canary", r.experiment_quantiles)):
                for band in bands:
                    t = truth[side][band.quantile]
                    if (band.lower is not None and band.lower > t) or (band.upper is not None and band.upper < t):
                        missed.add((side, band.quantile))
            if stop_at_high and alarm:
                break
        run.high += high
        run.alarm += alarm
        run.safe += safe
        for key in missed:
            run.band_miss[key] += 1
    return run
