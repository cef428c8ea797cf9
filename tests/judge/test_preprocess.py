"""NaN strategies, Kayenta's reduced-sensitivity IQR detector, summaries and input checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from canary.errors import ConfigError
from canary.judge.preprocess import (
    as_sample,
    handle_nans,
    iqr_outlier_mask,
    preprocess,
    summarize,
)


def test_nan_remove_and_replace_keep_infinities():
    v = np.array([1.0, np.nan, np.inf, -np.inf, np.nan])
    assert handle_nans(v, "remove").tolist() == [1.0, np.inf, -np.inf]
    assert handle_nans(v, "replace").tolist() == [1.0, 0.0, np.inf, -np.inf, 0.0]


def test_reduced_sensitivity_widens_the_fences_to_the_1st_and_99th_percentiles():
    # Q1 = Q3 = 1, so the plain fences are [1, 1] and both 2 and 100 would go. The 99th
    # percentile (R-7: 2 + 0.01 * 98 = 2.98) widens the upper fence: only 100 goes.
    data = np.array([1.0] * 98 + [2.0, 100.0])
    plain = iqr_outlier_mask(data, 3.0, reduce_sensitivity=False)
    reduced = iqr_outlier_mask(data, 3.0, reduce_sensitivity=True)
    assert data[plain].tolist() == [2.0, 100.0]
    assert data[reduced].tolist() == [100.0]


def test_plain_fences_factor_1_5_textbook():
    # R-7 on 1..9 plus 30: Q1 = 3.25, Q3 = 7.75, IQR 4.5, fences [-3.5, 14.5]; 30 is out.
    data = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 30], dtype=float)
    q1, q3 = np.percentile(data, [25, 75])
    assert (q1, q3) == (3.25, 7.75)
    assert data[iqr_outlier_mask(data, 1.5, reduce_sensitivity=False)].tolist() == [30.0]


def test_small_samples_can_only_lose_their_extremes():
    data = np.array([1.0, 2.0, 3.0, 50.0, 1000.0])
    kept = preprocess(data, nan_strategy="remove", outlier_strategy="remove", outlier_factor=3.0)
    assert kept.tolist() == [1.0, 2.0, 3.0, 50.0]


def test_outliers_keep_does_nothing_and_empty_is_fine():
    data = np.array([1.0, 1.0, 1e9])
    assert preprocess(data, nan_strategy="remove", outlier_strategy="keep", outlier_factor=3.0).tolist() == data.tolist()
    assert iqr_outlier_mask(np.array([]), 3.0).size == 0


def test_summary_statistics():
    s = summarize(np.array([1.0, 2.0, 3.0, 4.0]))
    assert (s.count, s.min, s.max, s.mean) == (4, 1.0, 4.0, 2.5)
    assert s.std == pytest.approx(math.sqrt(5 / 3))  # n - 1
    assert summarize(np.array([7.0])).std == 0.0
    empty = summarize(np.array([]))
    assert (empty.count, empty.min, empty.max, empty.mean, empty.std) == (0, 0.0, 0.0, 0.0, 0.0)


def test_as_sample_copies_and_rejects_non_vectors():
    src = np.array([1.0, 2.0])
    out = as_sample(src, "control")
    out[0] = 99.0
    assert src[0] == 1.0
    assert as_sample((1, 2.5), "x").dtype == np.float64
    for bad in ([[1.0, 2.0]], "12", ["a", "b"], [1.0, [2.0]], 3.0, [True, False]):
        with pytest.raises(ConfigError, match="control"):
            as_sample(bad, "control")
