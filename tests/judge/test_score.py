"""Kayenta's WeightedSumScorer rules, the score classifier and the final pass decision."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from canary.errors import ConfigError
from canary.judge import (
    Classification,
    ScoredMetric,
    Verdict,
    classify_score,
    passes,
    round_half_up,
    score,
)


def m(label, groups=("g",), *, critical=False, muted=False, name="metric"):
    return ScoredMetric(name, label, groups, critical=critical, muted=muted)


# --- ScoredMetric ---------------------------------------------------------------------

def test_scored_metric_normalises_its_fields():
    r = ScoredMetric("cpu", "High", ["a", "b"])
    assert r.classification is Classification.HIGH
    assert r.groups == ("a", "b") and r.critical is False and r.muted is False
    assert ScoredMetric("cpu", Classification.PASS, (g for g in ["x"])).groups == ("x",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.muted = True  # type: ignore[misc]


def test_scored_metric_rejects_bad_labels_and_groups():
    with pytest.raises(ConfigError, match="classification"):
        ScoredMetric("cpu", "Fail", ["a"])
    with pytest.raises(ConfigError, match="groups"):
        ScoredMetric("cpu", "Pass", "latency")
    with pytest.raises(ConfigError, match="groups"):
        ScoredMetric("cpu", "Pass", [1])


# --- group scores -----------------------------------------------------------------------

def test_group_score_counts_pass_high_low_and_nodatafailmetric_only():
    results = [m("Pass"), m("Pass"), m("High"), m("Low"), m("NodataFailMetric"), m("Error"), m("Nodata")]
    s = score(results, {})
    assert s.group_scores["g"] == pytest.approx(40.0)  # 2 / (2 + 1 + 1 + 1)
    assert s.summary_score == 40.0 and s.reason is None


def test_group_scores_are_read_only_and_in_order():
    s = score([m("Pass", ["b"]), m("High", ["a"])], {})
    assert list(s.group_scores) == ["b", "a"]
    with pytest.raises(TypeError):
        s.group_scores["a"] = 100.0  # type: ignore[index]


def test_a_metric_counts_in_every_one_of_its_groups():
    s = score([m("High", ["a", "b"]), m("Pass", ["a"])], {})
    assert dict(s.group_scores) == {"a": 50.0, "b": 0.0}
    assert s.summary_score == 25.0  # (50 + 0) / 2


def test_no_data_group_reports_0_but_counts_as_100():
    results = [m("Pass", ["a"]), m("Nodata", ["b"]), m("Error", ["b"]), m("Pass", ["a"])]
    s = score(results, {})
    assert dict(s.group_scores) == {"a": 100.0, "b": 0.0}
    assert s.no_data_groups == ("b",)
    assert s.summary_score == 100.0


# --- weights -----------------------------------------------------------------------------

def test_unweighted_groups_share_the_rest_equally():
    results = [m("Pass", ["a"]), m("High", ["b"]), m("Pass", ["c"])]
    s = score(results, {"a": 50})
    # a: 100 x 50%, b and c share the remaining 50: 0 x 25% + 100 x 25%.
    assert s.summary_score == 75.0


def test_configured_groups_without_results_drop_out_without_renormalising():
    s = score([m("Pass", ["a"])], {"a": np.int64(50), "b": 50.0})
    assert s.summary_score == 50.0
    assert "b" not in s.group_scores


def test_weights_over_100_give_unweighted_groups_negative_weight():
    s = score([m("Pass", ["a"]), m("High", ["b"])], {"a": 120})
    assert s.summary_score == 120.0  # 100 x 1.2 + 0 x (-0.2)


def test_summary_rounds_half_up_like_bigdecimal():
    # 50 x 2.25 / 100 = 1.125 exactly in binary: round() would give 1.12 (half-even).
    s = score([m("Pass", ["a"]), m("High", ["a"]), m("Pass", ["b"])], {"a": 2.25, "b": 0})
    assert s.summary_score == 1.13
    assert round(1.125, 2) == 1.12
    # 2.675 is stored as 2.67499999...; Java rounds the decimal text "2.675" up.
    assert round_half_up(2.675) == 2.68 and round(2.675, 2) == 2.67
    assert round_half_up(100 / 3) == 33.33 and round_half_up(-1.125) == -1.13


def test_bad_weights_are_rejected():
    with pytest.raises(ConfigError, match="'a'"):
        score([m("Pass", ["a"])], {"a": "50"})
    with pytest.raises(ConfigError, match="ScoredMetric"):
        score(["Pass"], {})


# --- overrides -------------------------------------------------------------------------------

def test_critical_failure_forces_zero():
    results = [m("Pass", ["a"]) for _ in range(9)] + [m("High", ["b"], critical=True, name="p99")]
    s = score(results, {})
    assert s.summary_score == 0.0
    assert "p99" in s.reason and "High" in s.reason
    assert dict(s.group_scores) == {"a": 100.0, "b": 0.0}  # group scores are still reported


def test_critical_nodata_forces_zero_but_critical_pass_does_not():
    assert score([m("Pass"), m("Pass"), m("Nodata", critical=True)], {}).summary_score == 0.0
    assert score([m("Pass", critical=True), m("High")], {}).summary_score == 50.0


def test_half_or_more_nodata_forces_zero():
    s = score([m("Nodata"), m("Nodata"), m("Pass"), m("Pass")], {})
    assert s.summary_score == 0.0 and "no data" in s.reason
    # Below half: the Nodata results simply do not count.
    assert score([m("Nodata"), m("Pass"), m("Pass")], {}).summary_score == 100.0


def test_nodatafailmetric_does_not_count_towards_the_nodata_rule():
    s = score([m("NodataFailMetric"), m("NodataFailMetric"), m("Pass"), m("Pass")], {})
    assert s.reason is None
    assert s.summary_score == 50.0  # but it fails inside its group


def test_muted_results_are_removed_first():
    results = [
        m("Pass"),
        m("High", critical=True, muted=True),
        m("Nodata", muted=True),
        m("Nodata", muted=True),
        m("Low", muted=True),
    ]
    s = score(results, {})
    assert s.summary_score == 100.0 and s.reason is None and s.counted_results == 1
    # Muting the only real data leaves a lone Nodata: 100% Nodata -> 0.
    assert score([m("Nodata"), m("Pass", muted=True)], {}).summary_score == 0.0


def test_no_results_scores_zero_with_a_reason():
    s = score([], {"a": 100})
    assert s.summary_score == 0.0 and "no metric results" in s.reason and not s.group_scores
    s = score([m("Pass", muted=True)], None)
    assert s.summary_score == 0.0 and "muted" in s.reason


# --- score classification and the final decision --------------------------------------------

@pytest.mark.parametrize(
    ("value", "verdict"),
    [(100.0, "Pass"), (75.0, "Pass"), (74.99, "Marginal"), (50.0, "Marginal"), (49.99, "Fail"), (0.0, "Fail")],
)
def test_classify_score(value, verdict):
    assert classify_score(value, pass_threshold=75.0, marginal_threshold=50.0) == Verdict(verdict)


@pytest.mark.parametrize(
    ("value", "pass_t", "marginal_t", "verdict"),
    [
        (0.0, None, None, "Pass"),  # no thresholds, nothing to fail (as passes())
        (50.0, None, 50.0, "Pass"),
        (49.0, None, 50.0, "Fail"),
        (75.0, 75.0, None, "Pass"),
        (74.0, 75.0, None, "Fail"),  # no marginal band
    ],
)
def test_classify_score_with_missing_thresholds(value, pass_t, marginal_t, verdict):
    assert classify_score(value, pass_threshold=pass_t, marginal_threshold=marginal_t) == verdict


def test_classify_score_rejects_non_numbers():
    with pytest.raises(ConfigError, match="pass_threshold"):
        classify_score(80.0, pass_threshold="75", marginal_threshold=50.0)


@pytest.mark.parametrize(
    ("final", "pass_t", "marginal_t", "expected"),
    [
        (None, 75.0, 50.0, False),  # no successful judgement at all
        (None, None, None, False),
        (0.0, None, None, True),  # no thresholds: pass
        (50.0, 75.0, 50.0, False),  # at the marginal threshold: fail
        (50.01, 75.0, 50.0, False),  # between marginal and pass: fail
        (75.0, 75.0, 50.0, True),  # at the pass threshold: pass
        (90.0, 75.0, 50.0, True),
        (50.01, None, 50.0, True),  # no pass threshold: anything above marginal passes
        (50.0, None, 50.0, False),
        (74.0, 75.0, None, False),  # no marginal threshold: only the pass threshold applies
        (75.0, 75.0, None, True),
    ],
)
def test_passes_truth_table(final, pass_t, marginal_t, expected):
    assert passes(final, pass_threshold=pass_t, marginal_threshold=marginal_t) is expected
