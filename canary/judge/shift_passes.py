"""Compiled passes of the rank statistic W(d), for large samples (numba; imported lazily).

The Kayenta mode's interval (mannwhitney.py) evaluates, at each point d that R's zeroin
visits, how many y values lie below and at the *floating* value x - d for every distinct x.
In numpy that costs a few full-array operations per point (about four sorts' worth of work
at 10,000 values); compiled, one loop does it:

- `_fresh_pass` finds each position through a table of cells: a monotone function of the
  value (`_cell`) puts every y value and every x - d in one of 8 * len(y) cells, so every
  y in a lower cell is below x - d and every y in a higher cell above it. One branch-free
  step compares the usual single y value of x - d's own cell; a crowded cell is
  binary-searched. x values whose x - d lies outside y's range are counted in bulk. The
  float x - d is computed exactly as numpy computes it (IEEE subtraction, no fast-math), so
  every count equals `np.searchsorted(yu, xu - d, side="right")`.
- `_near_pass` starts from the previous point's positions: zeroin's last steps move most
  positions by nothing or by one, all in the same direction.

Both return the same three integers as the numpy path: sum(xc * ycum[c]), the weight of the
coinciding (x - d, y) pairs, and their tie term 3 ab(a + b). This module imports numba at
the top, so only `mannwhitney._compiled` imports it, for samples large enough and once the
process has spent enough time on them to pay for it; numba's on-disk cache (`cache=True`)
keeps a new process from compiling again.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["CompiledCounts"]

_CELLS_PER_VALUE = 8


@njit(cache=True, nogil=True)
def _cell(v: float, lo: float, scale: float, top: float) -> int:
    """Cell of a value: monotone non-decreasing in v for every float v (NaN products go to 0)."""
    u = (v - lo) * scale
    if not u >= 0.0:
        u = 0.0
    if u > top:
        u = top
    return int(u)


@njit(cache=True, nogil=True)
def _cell_starts(yu: np.ndarray, lo: float, scale: float, ncells: int) -> np.ndarray:
    """starts[k] = number of y values whose cell is below k (ncells + 1 entries)."""
    top = float(ncells - 1)
    starts = np.zeros(ncells + 1, np.int32)
    for j in range(yu.size):  # a histogram of the cells, then its running sum (no branches)
        starts[_cell(yu[j], lo, scale, top) + 1] += 1
    for k in range(1, ncells + 1):
        starts[k] += starts[k - 1]
    return starts


@njit(cache=True, nogil=True)
def _running_sum(counts: np.ndarray) -> np.ndarray:
    """[0, c0, c0 + c1, ...]: numpy's cumsum into a slice is several times slower."""
    out = np.empty(counts.size + 1, np.int64)
    total = 0
    out[0] = 0
    for i in range(counts.size):
        total += counts[i]
        out[i + 1] = total
    return out


@njit(cache=True, nogil=True)
def _search(yu_pad: np.ndarray, t: float, a: int, b: int) -> int:
    """Smallest c in [a, b] with yu_pad[c] > t, given yu_pad[b] > t (or b the padding)."""
    while a < b:
        mid = (a + b) >> 1
        if yu_pad[mid] <= t:
            a = mid + 1
        else:
            b = mid
    return a


@njit(cache=True, nogil=True)
def _in_range(xu: np.ndarray, d: float, yu_pad: np.ndarray) -> tuple[int, int]:
    """(i0, i1): x - d is below every y value for i < i0 and above all of them for i >= i1.

    x - d rounds monotonically in x, so both sets are runs at the ends, found by bisection
    with the same float comparisons the passes make.
    """
    lo_y = yu_pad[0]
    hi_y = yu_pad[yu_pad.size - 2]
    a = 0
    b = xu.size
    while a < b:
        mid = (a + b) >> 1
        if xu[mid] - d < lo_y:
            a = mid + 1
        else:
            b = mid
    i0 = a
    b = xu.size
    while a < b:
        mid = (a + b) >> 1
        if xu[mid] - d > hi_y:
            b = mid
        else:
            a = mid + 1
    return i0, a


@njit(cache=True, nogil=True)
def _fresh_pass(xu: np.ndarray, xc: np.ndarray, xcum: np.ndarray, d: float, yu_pad: np.ndarray,
                ycum: np.ndarray, ycount: np.ndarray, starts: np.ndarray, lo: float, scale: float,
                pos: np.ndarray, unit: bool) -> tuple[int, int, int]:
    """pos[i] = number of distinct y values <= xu[i] - d, through the cell table, and the sums.

    The sums: sum(xc * ycum[pos]), and the weight and tie term 3ab(a + b) of the pairs where
    x - d equals a y value. Below i0 x - d is under every y value (position 0); from i1 on it
    is above all of them (position m, no pair coincides).

    starts[k] is the first y value whose cell is k or above; every y in a higher cell is
    above t, so a step past a y value <= t never leaves t's cell, and the padding (NaN,
    never <= t) ends every walk. One step without a branch covers the usual cell of at most
    one y value; the rare crowded cell is binary-searched up to the next cell's first value.
    """
    i0, i1 = _in_range(xu, d, yu_pad)
    m = yu_pad.size - 1
    pos[:i0] = 0
    pos[i1:] = m
    top = float(starts.size - 2)
    below = ycum[m] * (xcum[xu.size] - xcum[i1])
    eq = 0
    cross = 0
    for i in range(i0, i1):
        t = xu[i] - d
        k = _cell(t, lo, scale, top)
        c = starts[k]
        v = yu_pad[c]
        step = v <= t
        c += step
        # y value c - 1 equals t only if the step was taken onto it (every y value of a lower
        # cell is below t), or after a search: no second load in the usual case.
        tie = step and v == t
        if yu_pad[c] <= t:
            c = _search(yu_pad, t, c + 1, starts[k + 1])
            tie = yu_pad[c - 1] == t
        pos[i] = c
        if unit:
            below += c
            a = 1
        else:
            a = xc[i]
            below += a * ycum[c]
        if tie:
            b = ycount[c - 1]
            eq += a * b
            cross += a * b * (a + b)
    return below, eq, 3 * cross


@njit(cache=True, nogil=True)
def _near_pass(xu: np.ndarray, xc: np.ndarray, d: float, up: bool, yu_pad: np.ndarray, ycum: np.ndarray,
               ycount: np.ndarray, pos: np.ndarray, unit: bool) -> tuple[int, int, int]:
    """Move the previous shift's positions to shift d; the sums as in `_fresh_pass`.

    x - d rounds monotonically in d, so all positions move the same way: up when d fell
    (`up`), down when it rose. One step in that direction without a branch covers the usual
    move of zero or one y value; a longer move gallops.
    """
    m = yu_pad.size - 1
    below = 0
    eq = 0
    cross = 0
    for i in range(xu.size):
        t = xu[i] - d
        c = pos[i]
        if up:
            c += yu_pad[c] <= t
            if yu_pad[c] <= t:
                step = 1
                b = m
                while c + step < m and yu_pad[c + step] <= t:
                    c += step
                    step *= 2
                if c + step < m:
                    b = c + step
                c = _search(yu_pad, t, c + 1, b)
        else:
            c -= (c > 0) & (yu_pad[c - 1] > t)  # yu_pad[-1] is the padding: never read as c > 0
            if c > 0 and yu_pad[c - 1] > t:
                step = 1
                a = 0
                while c - step > 0 and yu_pad[c - step - 1] > t:
                    c -= step
                    step *= 2
                if c - step > 0:
                    a = c - step
                c = _search(yu_pad, t, a, c - 1)
        pos[i] = c
        if unit:
            below += c
            a = 1
        else:
            a = xc[i]
            below += a * ycum[c]
        if c > 0 and yu_pad[c - 1] == t:
            b = ycount[c - 1]
            eq += a * b
            cross += a * b * (a + b)
    return below, eq, 3 * cross


class CompiledCounts:
    """(2U, T) of (x - d) against y for fixed run-length encoded samples, compiled.

    Args:
        xu: distinct x values, sorted.
        xc: their multiplicities.
        yu: distinct y values, sorted.
        yc: their multiplicities.
        tie_xy: sum of t^3 - t over the tie groups within x and within y.
    """

    __slots__ = ("_d0", "_lo", "_pos", "_reach", "_scale", "_starts", "_tie_xy", "_unit", "_xc", "_xu",
                 "_xcum", "_ycount", "_ycum", "_yu_pad")

    def __init__(self, xu: np.ndarray, xc: np.ndarray, yu: np.ndarray, yc: np.ndarray, tie_xy: int) -> None:
        self._xu = np.ascontiguousarray(xu, dtype=np.float64)
        self._xc = np.ascontiguousarray(xc, dtype=np.int64)
        self._xcum = _running_sum(self._xc)
        self._yu_pad = np.append(yu.astype(np.float64), np.nan)  # NaN: "<= t" is false even for t = inf
        self._ycount = np.ascontiguousarray(yc, dtype=np.int64)
        self._ycum = _running_sum(self._ycount)
        self._tie_xy = tie_xy
        self._unit = bool(self._xcum[-1] == xu.size and self._ycum[-1] == yu.size)
        ncells = _CELLS_PER_VALUE * yu.size
        self._lo = float(yu[0])
        span = float(yu[-1]) - self._lo
        # A zero or subnormal span gives scale 0 or inf: _cell stays monotone, the cells are
        # just crowded (and binary-searched).
        self._scale = ncells / span if span > 0 else 0.0
        self._starts = _cell_starts(self._yu_pad[:-1], self._lo, self._scale, ncells)
        # Shifts this close to the previous one move a position by half the mean gap
        # between y values: stepping from the old positions is cheaper than the cells then.
        self._reach = 0.5 * span / yu.size
        self._pos = np.zeros(xu.size, dtype=np.int32)
        self._d0: float | None = None

    def counts(self, d: float) -> tuple[int, int]:
        """(2U, T): twice the Mann-Whitney U of (x - d) vs y, and the pooled tie sum."""
        if self._d0 is not None and abs(d - self._d0) <= self._reach:
            below, eq, cross = _near_pass(self._xu, self._xc, d, d < self._d0, self._yu_pad, self._ycum,
                                          self._ycount, self._pos, self._unit)
        else:
            below, eq, cross = _fresh_pass(self._xu, self._xc, self._xcum, d, self._yu_pad, self._ycum,
                                           self._ycount, self._starts, self._lo, self._scale, self._pos,
                                           self._unit)
        self._d0 = d
        return 2 * int(below) - int(eq), self._tie_xy + int(cross)
