"""Seeded simulations of the sequential judge's claims, each one a test that fails if the
claim is false:

* under H0 (the canary no worse than the tolerance) the chance that *any* look says High
  is <= alpha, however many looks (Ville's inequality), whatever the traffic does;
* the rate ratio's confidence sequence covers the true ratio at all looks at once with
  probability >= 1 - 2 alpha, each quantile band its true quantile with >= 1 - alpha;
* a false "decided" Pass (the canary in truth worse than the tolerance) has chance <= alpha.

How the margin is chosen (every `assert_at_most` below). A claim "rate <= a" is checked on
N seeded releases by asserting that the count of events k is at most the binomial ceiling
c = min{c : P(Binomial(N, a) > c) <= 1e-6} (`binomial_ceiling`, scipy's binom.isf). If the
claim holds, the test fails with chance <= 1e-6 for *any* seed, so it cannot flake when
seeds or unrelated code change; if the claim is false by a clear margin, it fails. For
example, N = 600, a = 0.05: c = 58 (9.7 %), so a true rate of 10 % fails the test about
half the time and one of 14 % almost surely (measured rates are 0-3 %). Simulations use
alpha = 0.05 (the claims hold for every alpha): at 0.01 the counts would be too small to
say much in the time allowed; three tests run at 0.01 as well.

The judge is called after every look with the counts cumulative since the start (and, for
histograms, the release's earlier looks as `history`, as the flow calls it), and a release
counts as a false alarm if any look says High. The constructions that learn from earlier
looks (the rank bet, the plug-in e-process, the required bounds, `safe_rate`) have their
own simulations, on many releases at once, in test_adaptive_validity.py. Each test takes a few seconds on
the 2-core VM; the measured rates are printed (pytest -s) and quoted in the report.
"""

from __future__ import annotations

import numpy as np
import pytest

from canary.judge.classify import Classification
from canary.judge.sequential import compare_counts, compare_histograms
from tests.judge.sim import (
    LOGNORMAL,
    PARETO,
    PROMETHEUS_DEFAULT_BOUNDS,
    SHIFTED_EXPONENTIAL,
    Latency,
    assert_at_most,
    binomial_ceiling,
    budget,
    geometric_bounds,
    kayenta_release,
    run_counts,
    run_histograms,
    simulate_track,
)

ALPHA = 0.05
TAIL = 1e-6
LOOKS = 10
GEOMETRIC = geometric_bounds(0.001, 1.25, 20.0)  # 45 finite bounds, 25 % apart


# -- counts ------------------------------------------------------------------------------


def test_evidence_depends_on_the_event_counts_only() -> None:
    for ce, ee in ((0, 0), (3, 9), (40, 41), (200, 90)):
        results = [compare_counts(ce, ct, ee, et, tolerance=0.2, alpha=ALPHA)
                   for ct, et in ((1000, 1000), (700, 1400), (5e5, 4e5))]  # fmt: skip
        keys = {(r.classification, r.decided, r.evidence, r.safety, r.ratio_lower, r.ratio_upper)
                for r in results}  # fmt: skip
        assert len(keys) == 1, results


COUNT_CASES = {
    # tolerance: [(error rate, requests per look per track)], 3 to 12 errors per look
    0.0: [(0.005, 600), (0.001, 5000), (0.02, 600), (0.05, 200)],
    0.2: [(0.005, 600), (0.02, 600)],
}


@pytest.mark.parametrize("tolerance", [0.0, 0.2])
def test_counts_aa_false_alarms_over_many_looks(tolerance: float) -> None:
    """A/A at tolerance 0, and the canary exactly at the boundary (rate = 1.2 x) at 0.2;
    12 looks, the judge after each."""
    rng = np.random.default_rng(101 + int(10 * tolerance))
    total = high = 0
    with budget(5):
        for rate, per_look in COUNT_CASES[tolerance]:
            run = run_counts(rng, 600, np.full(12, per_look), rate, 1 + tolerance,
                             alpha=ALPHA, tolerance=tolerance)  # fmt: skip
            assert_at_most(run.high, run.trials, ALPHA,
                           f"counts, errors {rate:.1%}, {per_look}/look x 12 looks, canary x{1 + tolerance:g}")  # fmt: skip
            total, high = total + run.trials, high + run.high
        assert_at_most(high, total, ALPHA, f"counts, all cases at tolerance {tolerance:g}")


def test_counts_aa_false_alarms_at_alpha_one_percent() -> None:
    rng = np.random.default_rng(102)
    with budget(1):
        run = run_counts(rng, 6000, np.full(10, 600), 0.005, 1.0, alpha=0.01)
        assert_at_most(run.high, run.trials, 0.01, "counts, errors 0.5%, 600/look x 10 looks, alpha 0.01")


def test_counts_either_direction_false_alarms() -> None:
    rng = np.random.default_rng(103)
    with budget(3):
        run = run_counts(rng, 600, np.full(10, 600), 0.02, 1.0, alpha=ALPHA, direction="either")
        assert_at_most(run.high + run.low, run.trials, ALPHA, "counts, direction either, High or Low")
        run = run_counts(rng, 600, np.full(10, 600), 0.02, 0.8, alpha=ALPHA, direction="decrease",
                         tolerance=0.2)  # fmt: skip
        assert_at_most(run.low, run.trials, ALPHA, "counts, decrease, canary at x0.8 (the boundary)")


def test_counts_time_varying_traffic_and_error_rate() -> None:
    """Diurnal traffic (x10 between trough and peak) and a baseline error rate that moves
    out of phase with it (0.2 % .. 2 %), the ratio constant; then an incident that triples
    both tracks' error rate half way: still <= alpha."""
    rng = np.random.default_rng(104)
    looks = np.arange(12)
    diurnal = 100 + 900 * (0.5 - 0.5 * np.cos(2 * np.pi * looks / 12))  # 100 .. 1000 per look
    error = 0.002 + 0.018 * (0.5 - 0.5 * np.cos(2 * np.pi * (looks + 4) / 12))
    with budget(3):
        for tolerance in (0.0, 0.2):
            run = run_counts(rng, 600, diurnal, error, 1 + tolerance, alpha=ALPHA, tolerance=tolerance)
            assert_at_most(run.high, run.trials, ALPHA, f"counts, diurnal traffic and error rate, canary x{1 + tolerance:g}")
        step = np.where(looks < 6, 0.005, 0.015)
        run = run_counts(rng, 600, np.full(12, 600), step, 1.0, alpha=ALPHA)
        assert_at_most(run.high, run.trials, ALPHA, "counts, baseline error rate x3 half way")


@pytest.mark.parametrize("ratio", [1.0, 2.0, 0.5])
def test_rate_ratio_confidence_sequence_covers_at_all_looks(ratio: float) -> None:
    rng = np.random.default_rng(105 + int(10 * ratio))
    with budget(2):
        run = run_counts(rng, 600, np.full(10, 1000), 0.01, ratio, alpha=ALPHA)
        assert_at_most(run.cs_miss, run.trials, 2 * ALPHA, f"rate-ratio CS misses the true ratio {ratio:g} at some look")


def test_counts_false_decided_pass_when_worse_than_the_tolerance() -> None:
    """A canary at 1.3 x (and at 1.55 x, just past the boundary) with tolerance 0.2 (0.5):
    "decided" within tolerance has chance <= alpha."""
    rng = np.random.default_rng(106)
    with budget(4):
        for ratio, tolerance in ((1.3, 0.2), (1.55, 0.5)):
            run = run_counts(rng, 400, np.full(10, 3000), 0.02, ratio, alpha=ALPHA, tolerance=tolerance)
            assert_at_most(run.safe, run.trials, ALPHA, f"counts, canary x{ratio:g}, tolerance {tolerance:g}: decided Pass")


def test_counts_drifting_split_raises_false_alarms() -> None:
    """The judge assumes the canary gets half the pair's traffic. At 52 % an increase test
    sees more canary errors than it expects: false alarms rise (and the sample-ratio guard,
    canary.judge.guards, exists to catch that). The ratio test's alternatives are large
    (odds x1.5 .. x3), so a 52/48 split (odds x1.08) adds only a point or two, and more
    events do not make it much worse. Measured at the bench's traffic (20/s per track, 10
    looks of 30 s, errors 0.5 %: ~60 errors per release; the rise, ~1 point, is within the
    noise of 1000 releases, so it is printed only) and at 5 x that traffic (measured
    1.5 % -> 4.7 % at alpha 0.05, asserted: > +0.5 point, still < alpha)."""
    rng = np.random.default_rng(107)
    with budget(5):
        rates = {}
        for per_look, reps in ((600, 1000), (3000, 1500)):
            for share in (0.5, 0.52):
                run = run_counts(rng, reps, np.full(10, per_look), 0.005, 1.0, canary_share=share, alpha=ALPHA)
                rates[per_look, share] = run.high / run.trials
                print(f"counts, canary share {share:.0%}, {per_look}/look: false alarms {run.high}/{run.trials}")
        assert rates[3000, 0.52] > rates[3000, 0.5] + 0.005
        assert rates[3000, 0.52] < ALPHA


# -- histograms ------------------------------------------------------------------------------


LAYOUTS = {"Prometheus default": PROMETHEUS_DEFAULT_BOUNDS, "geometric x1.25": GEOMETRIC}


@pytest.mark.parametrize("latency", [SHIFTED_EXPONENTIAL, LOGNORMAL, PARETO], ids=lambda d: d.name)
def test_histogram_aa_false_alarms_and_quantile_bands(latency: Latency) -> None:
    """A/A at tolerance 0, and the canary exactly (1 + tolerance) x the baseline at 0.25,
    on two bucket layouts; 10 looks of 600 requests per track. The quantile bands of both
    sides are checked at every look of the same releases."""
    rng = np.random.default_rng(201)
    reps, total, high = 120, 0, 0
    with budget(4):
        for layout, bounds in LAYOUTS.items():
            for tolerance in (0.0, 0.25):
                run = run_histograms(rng, reps, np.full(LOOKS, 600), latency, latency.scaled(1 + tolerance),
                                     bounds, alpha=ALPHA, tolerance=tolerance, stop_at_high=False)  # fmt: skip
                what = f"histogram {latency.name}, {layout}, canary x{1 + tolerance:g}"
                assert_at_most(run.high, run.trials, ALPHA, what)
                for (side, q), misses in run.band_miss.items():
                    assert misses <= binomial_ceiling(run.trials, ALPHA, TAIL), (what, side, q, misses)
                print(f"  band misses (of {run.trials}): {dict((f'{s} p{100 * q:g}', m) for (s, q), m in run.band_miss.items())}")
                total, high = total + run.trials, high + run.high
        assert_at_most(high, total, ALPHA, f"histogram {latency.name}, all layouts and tolerances")


def test_histogram_false_alarms_at_alpha_one_percent_on_fine_buckets() -> None:
    rng = np.random.default_rng(202)
    bounds = geometric_bounds(0.001, 1.1, 5.0)
    with budget(4):
        run = run_histograms(rng, 300, np.full(LOOKS, 600), SHIFTED_EXPONENTIAL, SHIFTED_EXPONENTIAL.scaled(1.1),
                             bounds, alpha=0.01, tolerance=0.1)  # fmt: skip
        assert_at_most(run.high, run.trials, 0.01, "histogram, buckets x1.1, canary x1.1 at tolerance 0.1, alpha 0.01")


def test_histogram_either_and_decrease() -> None:
    rng = np.random.default_rng(203)
    with budget(4):
        run = run_histograms(rng, 200, np.full(LOOKS, 600), LOGNORMAL, LOGNORMAL, GEOMETRIC,
                             alpha=ALPHA, direction="either")  # fmt: skip
        assert_at_most(run.alarm, run.trials, ALPHA, "histogram A/A, direction either (High or Low)")
        # canary = 0.8 x baseline = (1 - 0.2) x: exactly at the boundary of "decrease" at 0.2
        # (the baseline 1.25 x the canary; the layout's bounds are 1.25 apart, so no rounding)
        run = run_histograms(rng, 200, np.full(LOOKS, 600), LOGNORMAL, LOGNORMAL.scaled(0.8), GEOMETRIC,
                             alpha=ALPHA, direction="decrease", tolerance=0.2)  # fmt: skip
        assert run.high == 0
        assert_at_most(run.alarm, run.trials, ALPHA, "histogram, decrease, canary x0.8 at tolerance 0.2")


def test_histogram_time_varying_traffic_and_latency() -> None:
    """Diurnal traffic (x10) and a latency that grows with load on both tracks alike (the
    baseline up to 1.6 x slower at the peak): still <= alpha."""
    rng = np.random.default_rng(204)
    looks = np.arange(LOOKS)
    load = 0.5 - 0.5 * np.cos(2 * np.pi * looks / LOOKS)
    requests = 100 + 900 * load
    base = [LOGNORMAL.scaled(1 + 0.6 * x) for x in load]
    with budget(3):
        for tolerance in (0.0, 0.25):
            canary = [d.scaled(1 + tolerance) for d in base]
            run = run_histograms(rng, 150, requests, base, canary, GEOMETRIC, alpha=ALPHA, tolerance=tolerance)
            assert_at_most(run.high, run.trials, ALPHA, f"histogram, diurnal traffic and latency, canary x{1 + tolerance:g}")


def test_histogram_false_decided_pass_when_worse_than_the_tolerance() -> None:
    """Canary 1.3 x (and 1.22 x: just past the boundary) slower with tolerance 0.2, on fine
    buckets where "within tolerance" can be proven, and lots of traffic to give it every
    chance: decided Pass has chance <= alpha."""
    rng = np.random.default_rng(205)
    bounds = geometric_bounds(0.001, 1.1, 5.0)
    with budget(5):
        for factor in (1.3, 1.22):
            run = run_histograms(rng, 150, np.full(LOOKS, 3000), LOGNORMAL, LOGNORMAL.scaled(factor), bounds,
                                 alpha=ALPHA, tolerance=0.2, stop_at_high=False)  # fmt: skip
            assert_at_most(run.safe, run.trials, ALPHA, f"histogram, canary x{factor:g}, tolerance 0.2: decided Pass")
            print(f"  (High, i.e. beyond x1.2 proven: {run.high}/{run.trials})")
            if factor == 1.3:
                assert run.high > 0.5 * run.trials  # the regression is seen, too


def test_histogram_drifting_split_raises_false_alarms() -> None:
    """52 % of the pair's traffic to the canary: every bound sees more canary requests than
    the judge expects, so an increase test's false alarms rise, the more requests the more.
    Measured at the bench's traffic (20/s per track, 10 looks of 30 s)."""
    rng = np.random.default_rng(206)
    with budget(3):
        rates = {}
        for share in (0.5, 0.52):
            run = run_histograms(rng, 150, np.full(LOOKS, 600), SHIFTED_EXPONENTIAL, SHIFTED_EXPONENTIAL,
                                 GEOMETRIC, canary_share=share, alpha=ALPHA)  # fmt: skip
            rates[share] = run.high / run.trials
            print(f"histogram, canary share {share:.0%}, 600/look: false alarms {run.high}/{run.trials}")
        assert rates[0.52] > rates[0.5] + 0.1


# -- the Kayenta mode on the same requests ---------------------------------------------------


def test_kayenta_mode_false_alarms_far_above_its_nominal_rate() -> None:
    """Why the new judge exists: the same A/A requests, judged by Kayenta's Mann-Whitney
    (98 %, 25 % margin) on the points a range query gives (rate()[5s] at a 1 s step, so
    points overlap), after every look with fail-fast, against the sequential judge on the
    counters, at its production alpha 0.01. 20 req/s per track, 10 looks of 30 s."""
    rng = np.random.default_rng(301)
    reps, seconds = 100, 10 * 30
    bounds = geometric_bounds(0.001, 1.1, 5.0)
    fails = {"kayenta errors": 0, "kayenta latency": 0, "new errors": 0, "new latency": 0}
    with budget(5):
        for _ in range(reps):
            rate = np.full(seconds, 20.0)
            control = simulate_track(rng, rate, 0.005, SHIFTED_EXPONENTIAL, bounds)
            canary = simulate_track(rng, rate, 0.005, SHIFTED_EXPONENTIAL, bounds)
            for group in ("errors", "latency"):
                fails[f"kayenta {group}"] += kayenta_release(control, canary, looks=10, look_seconds=30,
                                                             group=group) is not None  # fmt: skip
            high = {"errors": False, "latency": False}
            for look in range(1, 11):
                (ct, ce, cb), (et, ee, eb) = control.counts_at(30 * look), canary.counts_at(30 * look)
                high["errors"] |= compare_counts(ce, ct, ee, et, alpha=0.01).classification is Classification.HIGH
                high["latency"] |= compare_histograms(cb, eb, bounds, alpha=0.01).classification is Classification.HIGH
            for group, value in high.items():
                fails[f"new {group}"] += value
    print({k: f"{v}/{reps} = {v / reps:.1%}" for k, v in fails.items()})
    for group in ("errors", "latency"):
        assert_at_most(fails[f"new {group}"], reps, 0.01, f"sequential judge, {group}, alpha 0.01")
        # Kayenta's nominal 2 % (98 % intervals): measured 20-35 % per group on this setup
        assert fails[f"kayenta {group}"] >= 0.10 * reps, (group, fails)
        assert fails[f"kayenta {group}"] >= 5 * max(1, fails[f"new {group}"]), (group, fails)
