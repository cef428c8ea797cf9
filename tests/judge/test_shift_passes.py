"""The compiled passes (canary/judge/shift_passes.py) give the numpy passes' floats exactly.

Every case here forces the compiled path (the size threshold set to 0) and compares the
whole interval with tests/judge/reference.py (a straight re-ranking port, bit for bit), the
statistic with w_reference at shifts on and next to pairwise differences, and the positions
with np.searchsorted, on seeded random, tied, constant, one-point and crowded samples.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from canary.judge import IntervalError, shift_passes, wilcoxon_interval
from canary.judge import mannwhitney as mw
from tests.judge.reference import AllTied, interval_reference, w_reference


@pytest.fixture
def compiled_always(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mw, "_COMPILED_MIN_VALUES", 0)
    monkeypatch.setattr(mw, "_COMPILED_AFTER_SECONDS", 0.0)


def _both(x: np.ndarray, y: np.ndarray, level: float) -> tuple[object, object]:
    try:
        ref: object = interval_reference(x, y, level)
    except AllTied:
        ref = "tied"
    try:
        r = wilcoxon_interval(x, y, confidence_level=level)
        fast: object = (r.lower, r.upper, r.estimate)
    except IntervalError:
        fast = "tied"
    return ref, fast


def _statistic(x: np.ndarray, y: np.ndarray) -> mw._ShiftStatistic:
    xs, ys = np.sort(x), np.sort(y)
    return mw._ShiftStatistic(xs, ys, float(xs[0] - ys[-1]), float(xs[-1] - ys[0]))


def _case(rng: np.random.Generator, kind: int) -> tuple[np.ndarray, np.ndarray]:
    nx, ny = (int(v) for v in rng.integers(1, 200, size=2))
    if kind == 0:  # continuous
        return rng.normal(0, 1, nx), rng.normal(rng.normal(0, 1), 1, ny)
    if kind == 1:  # few distinct values: heavy ties on both sides
        return rng.integers(0, 6, nx).astype(float), rng.integers(0, 6, ny).astype(float)
    if kind == 2:  # rounded latencies
        return np.round(rng.lognormal(3, 0.4, nx), 1), np.round(rng.lognormal(3.1, 0.4, ny), 1)
    if kind == 3:  # one constant side
        return np.full(nx, 0.3), np.round(rng.normal(0.3, 0.2, ny), 2)
    if kind == 4:  # an outlier: nearly every y value in one cell (the binary search)
        y = np.append(rng.normal(0, 1e-3, ny), 1e9)
        return rng.normal(0, 1e-3, nx), y
    if kind == 5:  # one point per side
        return rng.normal(0, 1, 1), rng.normal(0, 1, 1)
    return rng.exponential(1.0, nx) * 1e-3, rng.exponential(1.3, ny) * 1e-3


@pytest.mark.usefixtures("compiled_always")
@pytest.mark.parametrize("kind", range(7))
def test_compiled_interval_equals_reference(kind: int) -> None:
    rng = np.random.default_rng(2400 + kind)
    for _ in range(25):
        x, y = _case(rng, kind)
        level = float(rng.choice([0.9, 0.95, 0.98, 0.99]))
        ref, fast = _both(x, y, level)
        assert ref == fast, (x.tolist(), y.tolist(), level)


@pytest.mark.usefixtures("compiled_always")
def test_compiled_path_is_taken_and_statistic_is_exact_at_jumps() -> None:
    rng = np.random.default_rng(24)
    for kind in range(7):
        for _ in range(8):
            x, y = _case(rng, kind)
            w = _statistic(x, y)
            if not w._safe:
                continue
            assert w._compiled is not None
            lo, hi = float(x.min() - y.max()), float(x.max() - y.min())
            diffs = np.subtract.outer(x, y).ravel()
            picks = rng.choice(diffs, 6)
            shifts = [*picks, *np.nextafter(picks, np.inf), *np.nextafter(picks, -np.inf),
                      *rng.uniform(lo, hi, 4), lo, hi]
            try:
                for d in shifts:  # near and far from the previous shift: both kinds of pass
                    assert w(float(d)) == w_reference(float(d), x, y)
            except (IntervalError, AllTied):
                with pytest.raises((IntervalError, AllTied)):
                    w_reference(lo, x, y)
                    w(lo)


@pytest.mark.usefixtures("compiled_always")
def test_all_tied_and_one_point_raise_like_the_numpy_path() -> None:
    with pytest.raises(IntervalError, match="all observations are tied"):
        wilcoxon_interval([5.0], [3.0])
    with pytest.raises(IntervalError):
        wilcoxon_interval([1.0, 1.0], [1.0])


def test_large_samples_take_the_compiled_path_and_equal_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    # Above the size threshold, once the process has spent its "rent" in numpy.
    monkeypatch.setattr(mw, "_COMPILED_AFTER_SECONDS", 0.0)
    rng = np.random.default_rng(5)
    for factor, decimals in ((1.0, None), (1.08, None), (1.1, 1), (0.95, 0)):
        y = rng.lognormal(np.log(80), 0.4, 2500)
        x = rng.lognormal(np.log(80 * factor), 0.4, 2200)
        if decimals is not None:
            x, y = np.round(x, decimals), np.round(y, decimals)
        w = _statistic(x, y)
        assert (w._compiled is not None) == (w._xu.size + w._yu.size >= mw._COMPILED_MIN_VALUES)
        ref, fast = _both(x, y, 0.98)
        assert ref == fast


@pytest.mark.parametrize("size", [1, 2, 3, 17, 900])
def test_positions_equal_searchsorted_next_to_every_y_value(size: int) -> None:
    rng = np.random.default_rng(size)
    y = np.sort(rng.lognormal(0, 3, size))
    t = np.sort(np.concatenate([y, np.nextafter(y, -np.inf), np.nextafter(y, np.inf),
                                [-np.inf, np.inf, 0.0, -1e308, 1e308]]))
    ones_t = np.ones(t.size, dtype=np.int64)
    counts = shift_passes.CompiledCounts(t, ones_t, y, np.ones(y.size, dtype=np.int64), 0)
    expected = np.searchsorted(y, t, side="right")
    for d in (0.0, 0.0):  # a fresh pass, then a near pass from the same positions
        counts.counts(d)
        assert counts._pos.tolist() == expected.tolist()
    counts.counts(1e-300)  # a near pass that moves nothing
    assert counts._pos.tolist() == np.searchsorted(y, t - 1e-300, side="right").tolist()


def test_numba_is_loaded_only_after_the_rent_is_spent_in_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    # A process that judges few large samples never pays numba's import and cache load.
    monkeypatch.setattr(mw, "_COMPILED_AFTER_SECONDS", 1e9)
    monkeypatch.setattr(mw, "_large_numpy_seconds", [0.0])
    monkeypatch.delitem(__import__("sys").modules, "canary.judge.shift_passes", raising=False)
    rng = np.random.default_rng(8)
    x, y = np.sort(rng.normal(0, 1, 1500)), np.sort(rng.normal(0.1, 1, 1500))
    w = mw._ShiftStatistic(x, y, float(x[0] - y[-1]), float(x[-1] - y[0]))
    assert w.large and w._compiled is None
    small = np.sort(rng.normal(0, 1, 50))
    mw.interval_from_sorted(small, small + 0.5, 0.95)
    assert mw._large_numpy_seconds[0] == 0.0  # small samples do not count
    first = mw.interval_from_sorted(x, y, 0.95)
    assert mw._large_numpy_seconds[0] > 0.0
    monkeypatch.setattr(mw, "_COMPILED_AFTER_SECONDS", mw._large_numpy_seconds[0])
    w = mw._ShiftStatistic(x, y, float(x[0] - y[-1]), float(x[-1] - y[0]))
    assert w._compiled is not None  # the rent is paid: from now on the compiled passes
    assert mw.interval_from_sorted(x, y, 0.95) == first


@pytest.mark.usefixtures("compiled_always")
def test_near_passes_in_both_directions_equal_searchsorted() -> None:
    # Small steps up and down (the near pass) and jumps (the cell pass), in crowded and
    # sparse regions, with and without ties: positions always equal np.searchsorted's.
    rng = np.random.default_rng(77)
    for x, y in ((rng.lognormal(0, 1, 3000), rng.lognormal(0, 1, 2000)),
                 (np.round(rng.normal(0, 1, 3000), 2), np.round(rng.normal(0, 1, 2000), 2))):
        xu, xc = mw._runs(np.sort(x))
        yu, yc = mw._runs(np.sort(y))
        counts = shift_passes.CompiledCounts(xu, xc, yu, yc, 0)
        gap = (yu[-1] - yu[0]) / yu.size
        d = 0.0
        for _ in range(200):
            d += float(rng.choice([-1.0, 1.0]) * rng.choice([gap * 0.01, gap * 0.3, gap * 3, 1.0]))
            counts.counts(d)
            assert counts._pos.tolist() == np.searchsorted(yu, xu - d, side="right").tolist()


_values = st.one_of(
    st.lists(st.integers(-3, 3).map(float), min_size=1, max_size=25),
    st.lists(st.sampled_from([0.0, -0.0, 0.1, 0.2, 0.3, 1.7, 2.5]), min_size=1, max_size=25),
    st.lists(st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=32), min_size=1, max_size=40),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(x=_values, y=_values, level=st.sampled_from([0.8, 0.95, 0.98]))
def test_compiled_equals_reference_hypothesis(x: list[float], y: list[float], level: float) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mw, "_COMPILED_MIN_VALUES", 0)
        patch.setattr(mw, "_COMPILED_AFTER_SECONDS", 0.0)
        ref, fast = _both(np.array(x), np.array(y), level)
    assert ref == fast
