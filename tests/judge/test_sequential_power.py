"""Seeded power checks of the sequential judge at realistic traffic: 20 requests/s per track,
10 looks of 30 s (600 requests per track per look), alpha 0.01, the judge after every look.

Floors sit ~10 points below what the implementation measured on these seeds (in the
comments), so a change that costs real power fails, and noise does not: with 200 releases
the standard error of a rate near 50 % is 3.5 points. Validity is test_sequential_validity.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from canary.judge.classify import Classification
from canary.judge.sequential import compare_histograms
from tests.judge.sim import (
    LOGNORMAL,
    PROMETHEUS_DEFAULT_BOUNDS,
    SHIFTED_EXPONENTIAL,
    Latency,
    geometric_bounds,
    look_buckets,
    run_counts,
    run_histograms,
)

ALPHA = 0.01
LOOKS, PER_LOOK = 10, 600
FINE = geometric_bounds(0.001, 1.1, 5.0)  # 10 % apart, like goldengoose's (9 %)
WIDER = Latency("lognormal(50 ms, 0.6)", stats.lognorm(s=0.6, scale=0.050))


LATENCY_CASES = [
    # (name, control, canary, buckets, floor, median look at most); measured on seed 401
    # with 200 releases: 100 %, median look 3
    ("median +10%, fine buckets", LOGNORMAL, LOGNORMAL.scaled(1.10), FINE, 0.90, 4),
    # 100 %, look 3: Prometheus' 14 default buckets are enough for 10 %
    ("median +10%, default buckets", LOGNORMAL, LOGNORMAL.scaled(1.10), PROMETHEUS_DEFAULT_BOUNDS, 0.90, 4),
    # 55.5 %, look 8
    ("median +5%", LOGNORMAL, LOGNORMAL.scaled(1.05), FINE, 0.45, 9),
    # 20 ms + exp(10 ms), all of it 5 % slower: 100 %, look 2
    ("shifted exponential +5%", SHIFTED_EXPONENTIAL, SHIFTED_EXPONENTIAL.scaled(1.05), FINE, 0.90, 3),
    # same median, sigma 0.5 -> 0.6: 100 %, look 4
    ("wider spread", LOGNORMAL, WIDER, FINE, 0.90, 5),
    # 2 % of requests 5 x slower: 100 %, look 5
    ("2% of requests 5x slower", SHIFTED_EXPONENTIAL, SHIFTED_EXPONENTIAL.with_slow(0.02, 5.0), FINE, 0.90, 6),
    # 1 % of requests 4 x slower: 36 %, look 10 (hard: the evidence sits at the few bounds
    # above the p99, and the judge averages over all ~80 bounds)
    ("1% of requests 4x slower", SHIFTED_EXPONENTIAL, SHIFTED_EXPONENTIAL.with_slow(0.01, 4.0), FINE, 0.26, 10),
]


@pytest.mark.parametrize(("name", "control", "canary", "bounds", "floor", "by_look"),
                         [pytest.param(*case, id=case[0]) for case in LATENCY_CASES])  # fmt: skip
def test_latency_regressions_are_caught(name: str, control: Latency, canary: Latency, bounds: np.ndarray,
                                        floor: float, by_look: int) -> None:
    run = run_histograms(np.random.default_rng(401), 200, np.full(LOOKS, PER_LOOK), control, canary,
                         bounds, alpha=ALPHA)  # fmt: skip
    rate = run.high / run.trials
    look = float(np.median(run.first_alarm)) if run.first_alarm else float("inf")
    print(f"{name}: detected {rate:.1%}, median look {look:g} (floor {floor:.0%}, look <= {by_look})")
    assert rate >= floor, (name, rate)
    assert look <= by_look, (name, look)


def test_a_wider_spread_is_caught_as_slower_at_the_tail() -> None:
    """Same median, wider distribution: the canary is faster below the median and slower
    above; the increase test must call it High and point above the median."""
    rng = np.random.default_rng(402)
    requests = np.full(LOOKS, PER_LOOK)
    c = look_buckets(rng, 1, requests, LOGNORMAL.bucket_probabilities(FINE))[0, -1]
    e = look_buckets(rng, 1, requests, WIDER.bucket_probabilities(FINE))[0, -1]
    r = compare_histograms(c, e, FINE, alpha=ALPHA, unit="s")
    assert r.classification is Classification.HIGH, r.reason
    assert r.worst_bound is not None and r.worst_bound > LOGNORMAL.quantile(0.5)
    assert r.experiment_share_above > r.control_share_above  # type: ignore[operator]
    p99 = {side: bands[-1] for side, bands in (("canary", r.experiment_quantiles), ("baseline", r.control_quantiles))}
    assert p99["canary"].estimate > p99["baseline"].estimate  # type: ignore[operator]
    # below the median it *is* faster: a decrease test, a separate one-sided question, says so
    assert compare_histograms(c, e, FINE, alpha=ALPHA, direction="decrease").classification is Classification.LOW


@pytest.mark.parametrize(
    ("base", "ratio", "per_look", "reps", "floor", "by_look"),
    [
        # measured on seed 403
        (0.005, 2.0, 600, 2000, 0.48, 7),  # 0.5 % -> 1.0 %: 58.6 %, median look 6
        (0.02, 1.5, 600, 600, 0.48, 7),  # 2 % -> 3 %: 57.8 %, look 6
        (0.005, 2.0, 3000, 400, 0.90, 3),  # 0.5 % -> 1.0 % at 100/s: 100 %, look 2
        (0.001, 3.0, 5000, 400, 0.90, 3),  # 0.1 % -> 0.3 % at 170/s: 100 %, look 2
        (0.01, 1.5, 6000, 300, 0.90, 4),  # 1 % -> 1.5 % at 200/s: 100 %, look 3
    ],
)
def test_raised_error_rates_are_caught(base: float, ratio: float, per_look: int, reps: int, floor: float,
                                       by_look: int) -> None:
    run = run_counts(np.random.default_rng(403), reps, np.full(LOOKS, per_look), base, ratio, alpha=ALPHA)
    rate, look = run.high / run.trials, float(np.median(run.first_looks))
    print(f"errors {base:.1%} -> {base * ratio:.1%}, {per_look}/look: detected {rate:.1%}, median look {look:g}")
    assert rate >= floor and look <= by_look, (rate, look)


@pytest.mark.parametrize(
    ("latency", "floor", "by_look"),
    [
        # measured on seed 404: 95.5 %, median look 5
        pytest.param(SHIFTED_EXPONENTIAL, 0.85, 5, id="shifted exponential"),
        # 33 %, look 9: its wide tails hold few requests at the outer bounds of p2..p98
        pytest.param(LOGNORMAL, 0.23, 10, id="lognormal"),
    ],
)
def test_aa_is_decided_safe_at_tolerance_0_2_on_fine_buckets(latency: Latency, floor: float, by_look: int) -> None:
    run = run_histograms(np.random.default_rng(404), 200, np.full(LOOKS, PER_LOOK), latency, latency, FINE,
                         alpha=ALPHA, tolerance=0.2, stop_at_high=False)  # fmt: skip
    rate = run.safe / run.trials
    look = float(np.median(run.first_safe)) if run.first_safe else float("inf")
    print(f"A/A {latency.name}, tolerance 0.2: decided safe {rate:.1%}, median look {look:g}; High {run.high}")
    assert rate >= floor and look <= by_look, (rate, look)
    assert run.high == 0
