"""The sequential judge's contract: validated arguments, labels and `decided` on clear cases,
each direction, readable reasons, quantile estimates, frozen results.

Validity and power (the statistical claims) are simulated in test_sequential_validity.py
and test_sequential_power.py.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from canary.errors import ConfigError
from canary.judge.classify import Classification
from canary.judge.sequential import (
    QUANTILES,
    CountsResult,
    HistogramResult,
    compare_counts,
    compare_histograms,
    format_value,
)
from tests.judge.sim import LOGNORMAL, PROMETHEUS_DEFAULT_BOUNDS, geometric_bounds

INF = math.inf
BOUNDS = [0.1, 0.2, INF]
FINE = geometric_bounds(0.001, 1.1, 5.0)


def buckets(values: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Cumulative `le` counts of raw values, as Prometheus exposes a histogram."""
    idx = np.searchsorted(bounds, values, side="left")
    return np.cumsum(np.bincount(idx, minlength=bounds.size)).astype(float)


@pytest.fixture(scope="module")
def samples() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {
        "control": LOGNORMAL.sample(rng, 20_000),
        "same": LOGNORMAL.sample(rng, 20_000),
        "slower": LOGNORMAL.scaled(1.5).sample(rng, 20_000),
        "faster": LOGNORMAL.scaled(0.6).sample(rng, 20_000),
    }


def hist(samples: dict[str, np.ndarray], control: str, canary: str, bounds: np.ndarray = FINE,
         looks: int = 2, **kwargs: object) -> HistogramResult:
    """The judge at the last of `looks` equal looks over the two samples, the earlier looks
    as `history` (as the flow calls it): "within tolerance" can only be decided from look 2."""
    cuts = [len(samples[control]) * (i + 1) // looks for i in range(looks)]
    c = [buckets(samples[control][:n], bounds) for n in cuts]
    e = [buckets(samples[canary][:n], bounds) for n in cuts]
    return compare_histograms(c[-1], e[-1], bounds, unit="s", history=list(zip(c[:-1], e[:-1], strict=True)),
                              **kwargs)  # fmt: skip


# -- argument validation: a ConfigError that names the argument ------------------------------


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"alpha": 0}, "alpha"),
        ({"alpha": 1.0}, "alpha"),
        ({"alpha": 1.5}, "alpha"),
        ({"alpha": True}, "alpha"),
        ({"alpha": math.nan}, "alpha"),
        ({"alpha": "0.01"}, "alpha"),
        ({"tolerance": -0.1}, "tolerance"),
        ({"tolerance": math.inf}, "tolerance"),
        ({"tolerance": 1.0, "direction": "decrease"}, "tolerance"),
        ({"tolerance": 1.5, "direction": "either"}, "tolerance"),
        ({"direction": "up"}, "direction"),
        ({"direction": None}, "direction"),
        ({"split": 0.0}, "split"),
        ({"split": 1.0}, "split"),
        ({"split": -0.5}, "split"),
    ],
)
def test_common_arguments_are_checked_by_both_functions(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        compare_counts(1, 10, 1, 10, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=name):
        compare_histograms([1, 2, 3], [1, 2, 3], BOUNDS, **kwargs)  # type: ignore[arg-type]


def test_an_increase_tolerance_of_one_or_more_is_allowed() -> None:
    assert compare_counts(1, 10, 1, 10, tolerance=1.0).tolerance == 1.0
    assert compare_histograms([1, 2, 3], [1, 2, 3], BOUNDS, tolerance=2.0).tolerance == 2.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((11, 10, 1, 10), "control_events 11 exceed control_total 10"),
        ((1, 10, 11, 10), "experiment_events 11 exceed experiment_total 10"),
        ((-1, 10, 1, 10), "control_events"),
        ((1, -10, 1, 10), "control_total"),
        ((1, 10, math.nan, 10), "experiment_events"),
        ((1, 10, 1, math.inf), "experiment_total"),
        (("1", 10, 1, 10), "control_events"),
        ((1, 10, True, 10), "experiment_events"),
    ],
)
def test_counts_are_checked(args: tuple[object, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        compare_counts(*args)  # type: ignore[arg-type]


def test_events_equal_to_total_are_fine() -> None:
    assert compare_counts(10, 10, 10, 10).classification is Classification.PASS


@pytest.mark.parametrize(
    ("control", "experiment", "bounds", "message"),
    [
        ([1, 2, 3], [3, 2, 3], BOUNDS, r"experiment_buckets must be cumulative over le: the count at le=0\.2 \(2\) is below the count at le=0\.1 \(3\)"),
        ([2, 1, 3], [1, 2, 3], BOUNDS, "control_buckets must be cumulative"),
        ([1, 2, 3], [1, 2, 3], [0.1, 0.2, 0.3], r"upper_bounds must .*end with \+Inf"),
        ([1, 2, 3], [1, 2, 3], [0.2, 0.1, INF], "upper_bounds must increase strictly"),
        ([1, 2, 3], [1, 2, 3], [0.1, 0.1, INF], "upper_bounds must increase strictly"),
        ([1, 2, 3], [1, 2, 3], [0.1, INF, INF], "upper_bounds"),
        ([1, 2], [1, 2, 3], BOUNDS, r"upper_bounds \(3\), control_buckets \(2\) and experiment_buckets \(3\)"),
        ([1, 2, 3], [1, 2], BOUNDS, r"experiment_buckets \(2\)"),
        ([1, 2, 3], [1, 2, 3], [0.1, 0.2], r"upper_bounds \(2\)"),
        ([3], [3], [INF], "at least 2"),
        ([1, 2, -3], [1, 2, 3], BOUNDS, "control_buckets must hold finite counts >= 0"),
        ([1, 2, 3], [1, math.nan, 3], BOUNDS, "experiment_buckets must hold finite counts"),
        ("123", [1, 2, 3], BOUNDS, "control_buckets must be a sequence of counts"),
        ([[1, 2, 3]], [1, 2, 3], BOUNDS, "control_buckets must be 1-D"),
        ([1, 2, 3], [1, 2, 3], ["a", 0.2, INF], "upper_bounds must be numbers"),
    ],
)
def test_histograms_are_checked(control: object, experiment: object, bounds: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        compare_histograms(control, experiment, bounds)  # type: ignore[arg-type]


def test_a_relative_tolerance_needs_positive_bounds() -> None:
    with pytest.raises(ConfigError, match="positive bucket bounds"):
        compare_histograms([1, 2, 3], [1, 2, 3], [0.0, 0.2, INF], tolerance=0.1)
    # without a tolerance, a bound at 0 (or below) is just a bound
    r = compare_histograms([1, 2, 3], [1, 2, 3], [-1.0, 0.0, INF])
    assert r.classification is Classification.PASS


def test_inputs_are_not_modified() -> None:
    control, experiment = np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0])
    bounds = np.array(BOUNDS)
    compare_histograms(control, experiment, bounds)
    assert control.tolist() == [1, 2, 3] and bounds.tolist() == BOUNDS


# -- no data ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("ct", "et", "missing"), [(0, 100, "baseline"), (100, 0, "canary"),
                                                   (0, 0, "canary and baseline")])  # fmt: skip
def test_counts_with_an_empty_side_are_nodata(ct: float, et: float, missing: str) -> None:
    r = compare_counts(0, ct, 0, et)
    assert r.classification is Classification.NODATA and not r.decided
    assert r.reason == f"no requests for the {missing} yet"
    assert (r.evidence, r.safety) == (1.0, 1.0)
    assert math.isnan(r.ratio)


@pytest.mark.parametrize(("c", "e", "missing"), [([0, 0, 0], [1, 2, 3], "baseline"),
                                                 ([1, 2, 3], [0, 0, 0], "canary"),
                                                 ([0, 0, 0], [0, 0, 0], "canary and baseline")])  # fmt: skip
def test_histograms_with_an_empty_side_are_nodata(c: list[int], e: list[int], missing: str) -> None:
    r = compare_histograms(c, e, BOUNDS, direction="either")
    assert r.classification is Classification.NODATA and not r.decided
    assert r.reason == f"no requests for the {missing} yet"
    empty = r.control_quantiles if missing == "baseline" else r.experiment_quantiles
    assert all(b.estimate is None and b.lower is None and b.upper is None for b in empty)


def test_requests_without_events_are_an_undecided_pass() -> None:
    r = compare_counts(0, 500, 0, 500)
    assert r.classification is Classification.PASS and not r.decided
    assert "no events on either side yet" in r.reason and "0/500" in r.reason
    assert (r.ratio_lower, r.ratio_upper) == (0.0, math.inf)


# -- counts: labels, decided, directions, reasons ----------------------------------------------


def test_a_tripled_error_rate_is_high_and_decided() -> None:
    r = compare_counts(100, 10_000, 300, 10_000)
    assert r.classification is Classification.HIGH and r.decided
    assert r.ratio == pytest.approx(3.0)
    assert r.ratio_lower < 3.0 < r.ratio_upper and r.ratio_lower > 1.0
    assert r.evidence >= 1 / r.alpha
    assert r.control_rate == pytest.approx(0.01) and r.experiment_rate == pytest.approx(0.03)
    interval = f"98% CS [{r.ratio_lower:.3g}, {r.ratio_upper:.3g}]"
    for text in ("higher", "3% (300/10000)", "1% (100/10000)", "rate ratio 3", interval,
                 ">= 1/alpha = 100"):  # fmt: skip
        assert text in r.reason, (text, r.reason)


def test_too_few_events_are_undecided() -> None:
    r = compare_counts(3, 1000, 6, 1000)
    assert r.classification is Classification.PASS and not r.decided
    assert "no regression proven yet" in r.reason and "(regression)" in r.reason
    assert "6/1000" in r.reason and "rate ratio 2" in r.reason
    assert r.ratio_lower < 1 < r.ratio_upper


def test_direction_increase_ignores_a_lower_rate_but_proves_it_safe() -> None:
    r = compare_counts(300, 10_000, 100, 10_000, direction="increase")
    assert r.classification is Classification.PASS and r.decided
    assert "(decided)" in r.reason and r.safety >= 100


def test_direction_decrease_flags_a_lower_rate() -> None:
    low = compare_counts(300, 10_000, 100, 10_000, direction="decrease")
    assert low.classification is Classification.LOW and low.decided and "lower" in low.reason
    assert compare_counts(100, 10_000, 300, 10_000, direction="decrease").classification is Classification.PASS


def test_direction_either_flags_both_ways_at_half_the_evidence() -> None:
    up = compare_counts(100, 10_000, 300, 10_000, direction="either")
    down = compare_counts(300, 10_000, 100, 10_000, direction="either")
    assert up.classification is Classification.HIGH and down.classification is Classification.LOW
    one_sided = compare_counts(100, 10_000, 300, 10_000)
    assert up.evidence == pytest.approx(one_sided.evidence / 2, rel=1e-6)


def test_a_large_tolerance_is_decided_safe_on_equal_rates() -> None:
    r = compare_counts(1000, 100_000, 1000, 100_000, tolerance=0.5, direction="either")
    assert r.classification is Classification.PASS and r.decided
    assert "within the tolerance [x0.5, x1.5] (decided)" in r.reason


def test_a_tolerance_lets_a_small_increase_pass() -> None:
    strict = compare_counts(1000, 100_000, 1400, 100_000)
    lenient = compare_counts(1000, 100_000, 1400, 100_000, tolerance=0.5)
    assert strict.classification is Classification.HIGH
    assert lenient.classification is Classification.PASS
    assert "x1.5" in lenient.reason


def test_the_split_enters_the_test() -> None:
    # The canary serves 3/4 of the pair's traffic: three times the baseline's errors at an
    # equal error rate are expected, not a regression; at split 1/2 they would be High.
    r = compare_counts(100, 10_000, 300, 30_000, split=0.75)
    assert r.classification is Classification.PASS
    assert r.ratio == pytest.approx(1.0) and r.ratio_lower < 1 < r.ratio_upper
    assert compare_counts(100, 10_000, 300, 30_000, split=0.5).classification is Classification.HIGH


def test_the_rate_ratio_interval_narrows_with_events() -> None:
    results = [compare_counts(n, 100 * n, n, 100 * n) for n in (10, 100, 1000)]
    widths = [r.ratio_upper / r.ratio_lower for r in results]
    assert widths[0] > widths[1] > widths[2] > 1
    r = compare_counts(0, 1000, 20, 1000)
    assert r.ratio == math.inf and r.ratio_upper == math.inf and r.ratio_lower > 1


# -- histograms: labels, decided, directions, reasons --------------------------------------------


def test_a_slower_canary_is_high_and_the_reason_says_where(samples: dict[str, np.ndarray]) -> None:
    r = hist(samples, "control", "slower")
    assert r.classification is Classification.HIGH and r.decided
    assert r.worst_bound is not None and r.experiment_share_above > r.control_share_above  # type: ignore[operator]
    for text in ("canary is slower", "of canary requests took longer than", "ms", "e-value",
                 ">= 1/alpha = 100", "p50 canary", "p99 canary"):  # fmt: skip
        assert text in r.reason, (text, r.reason)
    assert format_value(r.worst_bound, "s") in r.reason
    assert f"{100 * r.experiment_share_above:.3g}%" in r.reason  # type: ignore[operator]


def test_a_faster_canary_is_low_only_when_asked(samples: dict[str, np.ndarray]) -> None:
    low = hist(samples, "control", "faster", direction="decrease")
    assert low.classification is Classification.LOW and low.decided and "canary is faster" in low.reason
    assert hist(samples, "control", "slower", direction="decrease").classification is Classification.PASS
    inc = hist(samples, "control", "faster", direction="increase")
    assert inc.classification is Classification.PASS and inc.decided  # proven not slower


def test_direction_either_flags_both_ways(samples: dict[str, np.ndarray]) -> None:
    assert hist(samples, "control", "slower", direction="either").classification is Classification.HIGH
    assert hist(samples, "control", "faster", direction="either").classification is Classification.LOW


def test_an_unchanged_canary_is_proven_within_a_tolerance(samples: dict[str, np.ndarray]) -> None:
    r = hist(samples, "control", "same", tolerance=0.2)
    assert r.classification is Classification.PASS and r.decided and r.look == 2
    assert "within the tolerance x1.2 (decided at look 2) at every one of the" in r.reason
    assert "bucket bounds with enough requests (" in r.reason and r.safety >= 100
    either = hist(samples, "control", "same", tolerance=0.2, direction="either")
    assert either.decided and "[x0.8, x1.2]" in either.reason
    share = hist(samples, "control", "same", tolerance=0.2, tolerance_on="share")
    assert share.decided and share.tolerance_on == "share"
    assert "within the tolerance x1.2 in the share of slower requests (decided at look 2)" in share.reason


@pytest.mark.parametrize("tolerance_on", ["quantile", "share"])
def test_nothing_is_decided_safe_at_the_first_look(samples: dict[str, np.ndarray], tolerance_on: str) -> None:
    """The first look only fixes which bounds a decided Pass must cover (from pooled counts),
    however clear the data: 20,000 requests a side, a tolerance of 0.5."""
    for canary in ("same", "faster"):
        r = hist(samples, "control", canary, looks=1, tolerance=0.5, tolerance_on=tolerance_on)
        assert r.classification is Classification.PASS and not r.decided and r.look == 1
        assert "'within tolerance' can be decided from look 2" in r.reason
        assert hist(samples, "control", canary, looks=2, tolerance=0.5, tolerance_on=tolerance_on).decided
    # a regression is decided at the first look all the same
    r = hist(samples, "control", "slower", looks=1)
    assert r.classification is Classification.HIGH and r.decided and "decided at look 1" in r.reason


def test_the_history_is_checked() -> None:
    now = ([1, 2, 4], [1, 2, 4])
    with pytest.raises(ConfigError, match=r"history\[0\] must be a \(control_buckets, experiment_buckets\) pair"):
        compare_histograms(*now, BOUNDS, history=[5])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match=r"history\[1\] experiment_buckets has 2 buckets"):
        compare_histograms(*now, BOUNDS, history=[([0, 1, 1], [0, 1, 1]), ([1, 1, 2], [1, 2])])
    with pytest.raises(ConfigError, match="the experiment_buckets at look 2 are below those of look 1"):
        compare_histograms(*now, BOUNDS, history=[([0, 1, 1], [1, 2, 5])])
    with pytest.raises(ConfigError, match="planned_looks"):
        compare_histograms(*now, BOUNDS, planned_looks=0)
    r = compare_histograms(*now, BOUNDS, history=[([0, 1, 1], [0, 1, 1]), ([1, 1, 2], [1, 2, 2])])
    assert r.look == 3 and r.tolerance_on == "quantile"


def test_without_a_tolerance_an_unchanged_canary_stays_undecided(samples: dict[str, np.ndarray]) -> None:
    r = hist(samples, "control", "same")
    assert r.classification is Classification.PASS and not r.decided
    assert "no regression proven (e-value" in r.reason and "not yet proven within the baseline (tolerance 0) at" in r.reason
    assert r.look == 2


def test_a_tolerance_lets_a_slightly_slower_canary_pass(samples: dict[str, np.ndarray]) -> None:
    rng = np.random.default_rng(11)
    slightly = buckets(LOGNORMAL.scaled(1.1).sample(rng, 20_000), FINE)
    control = buckets(samples["control"], FINE)
    assert compare_histograms(control, slightly, FINE).classification is Classification.HIGH
    assert compare_histograms(control, slightly, FINE, tolerance=0.25).classification is Classification.PASS


def test_buckets_without_a_bound_inside_the_distribution_cannot_decide() -> None:
    r = compare_histograms([0, 0, 50], [0, 0, 50], BOUNDS, tolerance=0.2, unit="s",
                           history=[([0, 0, 20], [0, 0, 20])])  # fmt: skip
    assert r.classification is Classification.PASS and not r.decided
    assert "no bucket bound has enough requests on both tracks" in r.reason


def test_the_histogram_reason_names_the_quantiles(samples: dict[str, np.ndarray]) -> None:
    r = hist(samples, "control", "same")
    for band, name in zip(r.experiment_quantiles, ("p50", "p90", "p99"), strict=True):
        assert f"{name} canary {format_value(band.estimate, 's')}" in r.reason


# -- quantile estimates and bands --------------------------------------------------------------


def test_quantile_estimates_follow_numpy_on_fine_buckets(samples: dict[str, np.ndarray]) -> None:
    fine = geometric_bounds(0.001, 1.02, 5.0)
    r = hist(samples, "control", "slower", bounds=fine)
    for side, bands in (("control", r.control_quantiles), ("slower", r.experiment_quantiles)):
        assert tuple(b.quantile for b in bands) == QUANTILES
        for band in bands:
            exact = float(np.quantile(samples[side], band.quantile))
            assert band.estimate == pytest.approx(exact, rel=0.02), (side, band)
            assert band.lower is not None and band.upper is not None
            assert band.lower <= exact <= band.upper
            assert band.lower <= band.estimate <= band.upper  # type: ignore[operator]
            true = LOGNORMAL.scaled(1.5 if side == "slower" else 1.0).quantile(band.quantile)
            assert band.lower <= true <= band.upper


def test_quantile_bands_narrow_with_requests() -> None:
    rng = np.random.default_rng(5)
    few, many = (buckets(LOGNORMAL.sample(rng, n), FINE) for n in (200, 20_000))
    wide = compare_histograms(few, few, FINE).control_quantiles[0]
    narrow = compare_histograms(many, many, FINE).control_quantiles[0]
    assert wide.upper - wide.lower > narrow.upper - narrow.lower  # type: ignore[operator]


def test_a_quantile_in_the_inf_bucket_is_the_highest_bound_as_in_prometheus() -> None:
    r = compare_histograms([0, 10, 100], [0, 10, 100], BOUNDS)
    p99 = r.control_quantiles[-1]
    assert p99.estimate == 0.2 and p99.upper is None  # nothing bounds it from above


def test_coarse_default_buckets_give_coarse_bands(samples: dict[str, np.ndarray]) -> None:
    r = hist(samples, "control", "same", bounds=PROMETHEUS_DEFAULT_BOUNDS)
    p50 = r.control_quantiles[0]
    # The true median (50 ms) sits exactly on a bound, so F(0.05) > 1/2 can never be proven
    # nor F(0.05) < 1/2: the band is the two neighbouring bounds, whatever the sample size.
    assert (p50.lower, p50.upper) == (0.025, 0.075)
    assert all(b.lower in PROMETHEUS_DEFAULT_BOUNDS and b.upper in PROMETHEUS_DEFAULT_BOUNDS
               for b in r.control_quantiles)  # fmt: skip


# -- results ------------------------------------------------------------------------------------


def test_results_are_frozen(samples: dict[str, np.ndarray]) -> None:
    counts = compare_counts(1, 10, 1, 10)
    histogram = hist(samples, "control", "same")
    assert isinstance(counts, CountsResult) and isinstance(histogram, HistogramResult)
    for result in (counts, histogram):
        with pytest.raises(dataclasses.FrozenInstanceError):
            result.classification = Classification.HIGH  # type: ignore[misc]
        with pytest.raises((dataclasses.FrozenInstanceError, AttributeError, TypeError)):
            result.extra = 1  # type: ignore[attr-defined]
    with pytest.raises(dataclasses.FrozenInstanceError):
        histogram.control_quantiles[0].estimate = 0.0  # type: ignore[misc]
    assert isinstance(histogram.control_quantiles, tuple)
    assert (counts.kind, histogram.kind) == ("ratio", "histogram")


def test_format_value_speaks_milliseconds() -> None:
    assert format_value(0.0123, "s") == "12.3 ms"
    assert format_value(12.3, "ms") == "12.3 ms"
    assert format_value(5, "") == "5"
    assert format_value(5, "req") == "5 req"
    assert format_value(None, "s") == "–" and format_value(math.nan, "s") == "–"
    assert format_value(math.inf, "s") == "∞"
