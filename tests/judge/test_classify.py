"""Every branch of Kayenta's metric classifier, in the order of spec section 5."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

import canary.judge.classify as classify_module
from canary.errors import ConfigError
from canary.judge import Classification, MetricResult, classify_metric, wilcoxon_interval

RNG = np.random.default_rng(42)
CONTROL = RNG.lognormal(3, 0.3, 200)
SHIFTED = RNG.lognormal(3, 0.3, 200) * 1.5  # mean ratio ~1.54, CI of the shift ~[8.6, 12.2]


def check(result: MetricResult, label: str, *, critical: bool = False) -> MetricResult:
    assert result.classification == label
    assert result.classification.value == label
    assert result.critical is critical
    assert isinstance(result.reason, str) and result.reason
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.critical = not critical  # type: ignore[misc]
    return result


def test_labels_are_exactly_kayentas():
    assert [c.value for c in Classification] == ["Pass", "High", "Low", "Nodata", "NodataFailMetric", "Error"]
    assert Classification("NodataFailMetric") is Classification.NODATA_FAIL_METRIC
    assert isinstance(Classification.PASS, str)


# --- public reference: spinnaker issue #6278 -------------------------------------------

def test_spinnaker_6278_passes_at_the_judge_defaults():
    r = check(classify_metric([1.0] * 10, [100.0] * 7 + [1.0] * 3), "Pass")
    assert r.interval is not None
    assert r.interval.confidence_level == 0.98
    assert r.interval.lower == pytest.approx(6.8e-5, rel=0.01)
    assert r.margin == pytest.approx(24.75, abs=1e-4)
    assert r.deviation == pytest.approx(70.3)
    assert "24.75" in r.reason


# --- 1. no data ----------------------------------------------------------------------

def test_no_data_is_nodata_and_keeps_the_metric_criticality():
    r = check(classify_metric([np.nan] * 5, [1.0, 2.0]), "Nodata")
    assert r.deviation == 1.0 and r.interval is None and math.isnan(r.effect_size)
    assert r.control.count == 0 and r.experiment.count == 2
    check(classify_metric([1.0, 2.0], [np.nan], critical=True), "Nodata", critical=True)


def test_must_have_data_fails_the_metric_unless_critical():
    check(classify_metric([], [1.0], must_have_data=True), "NodataFailMetric")
    # mustHaveData + critical: Nodata with critical set, which fails the whole canary instead.
    check(classify_metric([], [1.0], must_have_data=True, critical=True), "Nodata", critical=True)


def test_replace_turns_an_empty_side_into_pass_and_nans_into_zeros():
    r = check(classify_metric([], [1.0, 2.0], nan_strategy="replace", critical=True), "Pass")
    assert r.deviation == 1.0
    r = classify_metric([np.nan] * 20, [np.nan] * 20, nan_strategy="replace")
    check(r, "Pass")
    assert "identical" in r.reason and r.control.count == 20 and r.control.mean == 0.0


# --- 2./3. identical samples, a single value -------------------------------------------

def test_identical_multisets_pass():
    r = check(classify_metric([3.0, 1.0, 2.0, 2.0], [2.0, 3.0, 2.0, 1.0]), "Pass")
    assert "identical" in r.reason and r.deviation == 1.0 and r.interval is None


def test_one_distinct_value_overall_passes():
    r = check(classify_metric([5.0, 5.0, 5.0], [5.0, 5.0]), "Pass")
    assert r.deviation == 1.0 and r.interval is None and "5" in r.reason


# --- 4. both sides constant but different: noise ----------------------------------------

def test_constant_sides_get_noise_from_the_explicit_rng():
    high = check(classify_metric([3.0] * 20, [4.0] * 20, rng=np.random.default_rng(1)), "High")
    assert "noise" in high.reason and high.interval is not None
    assert high.interval.estimate == pytest.approx(1.0, abs=1e-3)
    assert high.deviation == pytest.approx(4 / 3, rel=1e-4)  # computed on the noisy data
    assert high.control.std == 0.0  # statistics describe the data before the noise
    check(classify_metric([3.0] * 20, [2.0] * 20, rng=np.random.default_rng(1)), "Low")


def test_noise_is_deterministic_without_rng_and_spares_zeros():
    a = classify_metric([0.0] * 10, [6.0] * 10)
    b = classify_metric([0.0] * 10, [6.0] * 10)
    assert a.interval == b.interval and a.reason == b.reason  # fixed seed per call
    check(a, "High")
    assert math.isnan(a.deviation)  # control mean exactly 0: noise sd 0 * 1e-5 = 0
    c = classify_metric([0.0] * 10, [6.0] * 10, rng=np.random.default_rng(5))
    assert c.interval != a.interval


# --- 5.-8. the interval, the margin and the decision ---------------------------------------

def test_high_and_low():
    r = check(classify_metric(CONTROL, SHIFTED), "High")
    ci = wilcoxon_interval(SHIFTED, CONTROL, confidence_level=0.98)
    assert r.interval == ci
    assert r.margin == 0.25 * abs(ci.estimate) and ci.lower > r.margin
    assert r.deviation == r.effect_size == pytest.approx(np.mean(SHIFTED) / np.mean(CONTROL))
    assert "canary is higher" in r.reason and "98% CI" in r.reason
    low = check(classify_metric(SHIFTED, CONTROL), "Low")
    assert "canary is lower" in low.reason


def test_overlapping_samples_pass():
    r = check(classify_metric(CONTROL, CONTROL * 1.01), "Pass")
    assert "no clear shift" in r.reason


def test_direction_suppresses_the_other_side():
    r = check(classify_metric(CONTROL, SHIFTED, direction="decrease"), "Pass")
    assert "only a decrease" in r.reason
    check(classify_metric(CONTROL, SHIFTED, direction="increase"), "High")
    r = check(classify_metric(SHIFTED, CONTROL, direction="increase"), "Pass")
    assert "only an increase" in r.reason
    check(classify_metric(SHIFTED, CONTROL, direction="decrease"), "Low")


def test_effect_size_gate_blocks_high_and_low():
    r = check(classify_metric(CONTROL, SHIFTED, allowed_increase=2.0), "Pass")
    assert "allowed_increase" in r.reason
    r = check(classify_metric(SHIFTED, CONTROL, allowed_decrease=0.5), "Pass")
    assert "allowed_decrease" in r.reason
    check(classify_metric(SHIFTED, CONTROL, allowed_decrease=0.7), "Low")


def test_nan_effect_skips_the_gate():
    control = np.array([-2.0, -1.0, 0.0, 1.0, 2.0] * 20)  # mean exactly 0
    r = check(classify_metric(control, control + 10, allowed_increase=1e9), "High")
    assert math.isnan(r.deviation) and math.isnan(r.effect_size)
    assert "gates are skipped" in r.reason


def test_zero_inflated_metrics_rarely_fail():
    # Both sides contain 0, so the lower bound is clamped at min(x) - max(y) ... = 0 here,
    # which never exceeds a positive margin (spec section 10).
    r = check(classify_metric([0.0] * 99 + [5.0], [0.0] * 90 + [5.0] * 10), "Pass")
    assert r.deviation == pytest.approx(10.0)


# --- 9. criticality ------------------------------------------------------------------

def test_critical_high_at_or_over_critical_increase_is_critical():
    check(classify_metric(CONTROL, SHIFTED, critical=True), "High", critical=True)
    check(classify_metric(SHIFTED, CONTROL, critical=True), "Low", critical=True)


def test_critical_high_below_critical_increase_is_an_ordinary_high():
    r = check(classify_metric(CONTROL, SHIFTED, critical=True, critical_increase=2.0), "High")
    assert "not critical" in r.reason
    check(classify_metric(SHIFTED, CONTROL, critical=True, critical_decrease=0.5), "Low")


def test_critical_with_nan_effect_is_critical():
    control = np.array([-2.0, -1.0, 0.0, 1.0, 2.0] * 20)
    check(classify_metric(control, control + 10, critical=True, critical_increase=1e9), "High",
          critical=True)


# --- effect size measures ---------------------------------------------------------------

def test_cles_is_scipys_u_over_nm_and_gates_with_its_thresholds():
    x, y = np.round(SHIFTED), np.round(CONTROL)  # rounded: with ties
    r = check(classify_metric(y, x, effect_size_measure="cles", allowed_increase=0.5), "High")
    u1 = mannwhitneyu(x, y, method="asymptotic").statistic
    assert r.effect_size == u1 / (x.size * y.size)
    assert r.deviation == pytest.approx(np.mean(x) / np.mean(y))  # still the mean ratio
    assert "CLES" in r.reason
    check(classify_metric(y, x, effect_size_measure="cles", allowed_increase=0.9), "Pass")


# --- outliers ---------------------------------------------------------------------------

def test_outlier_removal_reduced_sensitivity_can_empty_a_baseline_mean():
    # kayenta #420: the 99th percentile of 99 zeros and one 5 is 0.05, so the 5 goes and the
    # control mean becomes 0; the experiment's ten 5s sit at its 99th percentile and stay.
    control, experiment = [0.0] * 99 + [5.0], [0.0] * 90 + [5.0] * 10
    r = check(classify_metric(control, experiment, outlier_strategy="remove"), "Pass")
    assert r.control.count == 99 and r.control.max == 0.0
    assert r.experiment.count == 100
    assert math.isnan(r.deviation)
    kept = classify_metric(control, experiment)
    assert kept.control.count == 100 and kept.deviation == pytest.approx(10.0)


def test_statistics_describe_the_transformed_data():
    r = classify_metric([1.0, np.nan, 3.0], [2.0, 4.0, np.nan, np.nan])
    assert (r.control.count, r.control.mean, r.experiment.count, r.experiment.mean) == (2, 2.0, 2, 3.0)


# --- 10. errors -------------------------------------------------------------------------

def test_sigma_zero_is_an_error_and_never_critical():
    # Subnormal constants: the noise sd underflows to 0, so every value stays tied.
    r = check(classify_metric([5e-324] * 3, [1e-323] * 3, critical=True), "Error")
    assert "all observations are tied" in r.reason
    assert r.interval is None and math.isnan(r.deviation)


def test_infinite_values_are_an_error():
    r = check(classify_metric([1.0, 2.0, np.inf], [1.0, 5.0, 6.0]), "Error")
    assert "non-finite" in r.reason


def test_any_exception_while_classifying_is_an_error(monkeypatch):
    def boom(*_args, **_kwargs):
        raise RuntimeError("solver exploded")

    monkeypatch.setattr(classify_module, "interval_from_sorted", boom)
    r = check(classify_metric(CONTROL, SHIFTED, critical=True), "Error")
    assert "solver exploded" in r.reason


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"direction": "sideways"}, "direction"),
        ({"nan_strategy": "drop"}, "nan_strategy"),
        ({"confidence_level": 1.5}, "confidence_level"),
        ({"confidence_level": 0.0}, "confidence_level"),
        ({"tolerance": -0.1}, "tolerance"),
        ({"tolerance": float("nan")}, "tolerance"),
        ({"effect_size_measure": "cohen"}, "effect_size_measure"),
        ({"outlier_strategy": "mad"}, "outlier_strategy"),
        ({"outlier_factor": 0.0}, "outlier_factor"),
        ({"allowed_increase": "1.0"}, "allowed_increase"),
        ({"critical_decrease": None}, "critical_decrease"),
        ({"critical": "yes"}, "critical"),
        ({"must_have_data": 1}, "must_have_data"),
        ({"rng": 42}, "rng"),
        ({"control": [[1.0, 2.0], [3.0, 4.0]]}, "control"),
        ({"experiment": ["x"]}, "experiment"),
    ],
)
def test_invalid_arguments_raise_config_error_naming_them(kwargs, name):
    args = {"control": [1.0, 2.0], "experiment": [3.0, 4.0]}
    args.update(kwargs)
    control, experiment = args.pop("control"), args.pop("experiment")
    with pytest.raises(ConfigError, match=name) as info:
        classify_metric(control, experiment, **args)
    assert isinstance(info.value, ValueError)
