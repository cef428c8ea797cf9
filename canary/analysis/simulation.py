"""Simulated releases for planning: each side's requests look by look, judged with the
sequential judge's own evidence functions on arrays of all releases and looks at once.

A release ends at its first decision. A histogram's evidence at a look depends on the looks
before it (its e-processes bet on each look's new requests with what the earlier looks
taught them), so it is always evaluated on the releases' whole paths from look 1. The
canary's latencies are the baseline's scaled by the effect, the baseline's distribution
read from production's buckets with linear interpolation inside each bucket (as
histogram_quantile): that affects the estimate, never the test's validity.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypedDict

import numpy as np

from canary.analysis.plan_text import _rate
from canary.analysis.plans import HistogramLike
from canary.judge.sequential import compare_histograms, histogram_log_evidence, ratio_log_evidence

__all__ = ["Draw", "Judge", "Model", "histogram_model", "ratio_model", "run_looks", "scaled_probs"]

_BLOCK = 10  # looks simulated at once at first; the plan stops once it has its answer
_CHUNK = 40_000  # looks x releases x bounds judged per call (work arrays that fit in cache)

Draw = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
#: judge(control paths, experiment paths, live, safe, first): the evidence at looks first + 1
#: .. of the releases `live` (column indices) of the paths given (axis 0: every look from
#: look 1, counts cumulative since the start; axis 1: every simulated release)
Judge = Callable[[np.ndarray, np.ndarray, np.ndarray, bool, int], tuple[np.ndarray, np.ndarray | None]]


class Shown(TypedDict, total=False):
    """What a metric's plan shows of its model: production's value (error rate, or p90),
    the canary's, and production's quantiles (histograms)."""

    baseline: float
    canary: float
    quantiles: tuple[tuple[float, float], ...]


#: (draw with the regression, draw without, the judge's rule, what the plan shows)
Model = tuple[Draw, Draw, Judge, Shown]


def _arrivals(lam: np.ndarray, sims: int, how: str, rng: np.random.Generator) -> np.ndarray:
    if how == "fixed":
        return np.broadcast_to(np.round(lam)[:, None], (lam.size, sims)).astype(np.int64)
    return rng.poisson(lam[:, None], size=(lam.size, sims))


def run_looks(draw: Draw, judge: Judge, lam: np.ndarray, *, looks: int, stop: float | None,
         min_looks: int, sims: int, how: str, threshold: float,
         rng: np.random.Generator) -> tuple[list[float], list[float]]:  # fmt: skip
    """(P(regression proven by look k), P(decided within tolerance first by look k)).

    Simulates blocks of looks until `looks`, or earlier once `min_looks` are done and the
    detection chance reached `stop` (then "within tolerance" is not evaluated). Each side's
    counts are cumulative (`draw` adds a block's new requests to the state it returns). The
    evidence at a look depends on the looks before it (the e-processes bet on each look's
    new requests with what the earlier ones taught them), so every block is judged on the
    releases' whole paths from look 1; blocks double in length, so re-judging the earlier
    looks costs at most about as much again."""
    detected, safe = np.zeros(sims, bool), np.zeros(sims, bool)
    paths: list[np.ndarray] = []  # each side's whole paths, written block by block
    curve, safe_curve = [], []
    look = 0
    while look < looks:
        end = min(looks, max(look + _BLOCK, 2 * look, min_looks))
        block = lam[look:end]
        n_c, n_e = _arrivals(block, sims, how, rng), _arrivals(block, sims, how, rng)
        for side, new in enumerate(draw(n_c, n_e)):
            if not paths:  # untouched rows take no memory: a plan that stops early is small
                paths = [np.empty((looks, *new.shape[1:])) for _ in range(2)]
            if look:
                new += paths[side][look - 1]
            paths[side][look:end] = new
        # a release ends at its first decision: judge only those still undecided (the
        # judge reads their columns of the paths so far, a few releases at a time)
        live = np.nonzero(~(detected | safe))[0]
        if live.size:
            reg, within = judge(paths[0][:end], paths[1][:end], live, stop is None, look)
        for r in range(block.size):
            if live.size:
                open_ = ~(detected[live] | safe[live])
                if within is not None:
                    safe[live] |= (within[r] >= threshold) & (reg[r] < threshold) & open_
                detected[live] |= (reg[r] >= threshold) & open_
            curve.append(float(detected.mean()))
            safe_curve.append(float(safe.mean()))
        look = end
        if stop is not None and look >= min_looks and curve[-1] >= stop:
            break
    return curve, safe_curve


def _ratio_draw(p_base: float, p_canary: float, rng: np.random.Generator) -> Draw:
    def draw(n_c: np.ndarray, n_e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ev_c, ev_e = rng.binomial(n_c, p_base), rng.binomial(n_e, p_canary)
        def stack(ev: np.ndarray, n: np.ndarray) -> np.ndarray:
            return np.stack([ev, n], axis=-1).cumsum(axis=0).astype(float)

        return stack(ev_c, n_c), stack(ev_e, n_e)

    return draw


def _histogram_draw(p_base: np.ndarray, p_canary: np.ndarray, rng: np.random.Generator) -> Draw:
    def draw(n_c: np.ndarray, n_e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        def side(n: np.ndarray, p: np.ndarray) -> np.ndarray:
            return rng.multinomial(n, p).cumsum(axis=-1).cumsum(axis=0).astype(float)

        return side(n_c, p_base), side(n_e, p_canary)

    return draw


def _cdf(bounds: np.ndarray, cumulative: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Production's CDF as points for linear interpolation (0 below the first bucket's
    lower end, which is 0 for positive bounds, as in histogram_quantile)."""
    finite, shares = bounds[:-1], cumulative[:-1] / cumulative[-1]
    if finite[0] > 0:
        return np.concatenate([[0.0], finite]), np.concatenate([[0.0], shares])
    return finite, shares


def scaled_probs(bounds: np.ndarray, cumulative: np.ndarray, factor: float) -> np.ndarray:
    """Bucket probabilities of latencies factor x production's (beyond the last finite
    bound nothing moves: the +Inf bucket keeps its share)."""
    xs, fs = _cdf(bounds, cumulative)
    scaled = np.interp(bounds[:-1] / factor, xs, fs, left=0.0, right=fs[-1])
    return np.diff(np.concatenate([[0.0], scaled, [1.0]])).clip(min=0.0)


def _quantile(bounds: np.ndarray, cumulative: np.ndarray, q: float) -> float:
    """histogram_quantile's estimate (the highest finite bound when in the +Inf bucket)."""
    xs, fs = _cdf(bounds, cumulative)
    i = int(np.searchsorted(fs, q, side="left"))
    if i >= fs.size:
        return float(xs[-1])
    if i == 0:
        return float(xs[0])
    width = fs[i] - fs[i - 1]
    frac = (q - fs[i - 1]) / width if width > 0 else 1.0
    return float(xs[i - 1] + frac * (xs[i] - xs[i - 1]))



def ratio_model(p_base: float, factor: float, direction: str, tol: float, safe_rate: float | None,
                rng: np.random.Generator, warnings: list[str]) -> Model:  # fmt: skip
    """(draw with the regression, draw without, the rule, what the plan shows)."""
    p_canary = p_base * factor
    if p_canary > 1:
        warnings.append(f"the canary's rate {_rate(p_base)} x {factor:g} exceeds 100%; simulated at 100%")
        p_canary = 1.0

    def judge(c: np.ndarray, e: np.ndarray, live: np.ndarray, _safe: bool,
              first: int) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """compare_counts' evidence at looks first + 1 .. of the live (events, total) paths."""
        # a rate's evidence rests on the cumulative counts of the look alone: no path needed
        c, e = c[first:, live], e[first:, live]
        reg, within, _, _ = ratio_log_evidence(c[..., 0], c[..., 1], e[..., 0], e[..., 1],
                                               direction=direction, tolerance=tol,
                                               safe_rate=safe_rate)  # fmt: skip
        return reg, within

    return (_ratio_draw(p_base, p_canary, rng), _ratio_draw(p_base, p_base, rng), judge,
            {"baseline": p_base, "canary": p_canary})  # fmt: skip


def histogram_model(counts: HistogramLike, factor: float, direction: str, alpha: float, tol: float, unit: str,
                    tolerance_on: str, planned_looks: int, rng: np.random.Generator,
                    warnings: list[str]) -> Model:  # fmt: skip
    """(draw with the regression, draw without, the rule, what the plan shows) of a
    histogram metric from production's buckets."""
    bounds = np.asarray(counts.upper_bounds, dtype=float)
    cumulative = np.asarray(counts.buckets, dtype=float)
    compare_histograms(cumulative, cumulative, bounds, direction=direction, alpha=alpha,
                       tolerance=tol, unit=unit, tolerance_on=tolerance_on,
                       planned_looks=planned_looks)  # the judge's checks of the buckets
    p_base = np.diff(np.concatenate([[0.0], cumulative])) / cumulative[-1]
    if np.count_nonzero(p_base) < 2:
        warnings.append("production's requests all fall into one bucket: the buckets cannot "
                        "show a latency change; add bucket bounds around it")  # fmt: skip
    finite = bounds[:-1]

    def judge(c: np.ndarray, e: np.ndarray, live: np.ndarray, safe: bool,
              first: int) -> tuple[np.ndarray, np.ndarray | None]:  # fmt: skip
        """compare_histograms' evidence at looks first + 1 .. of the live bucket paths."""
        # The whole path from look 1: each look's evidence rests on the looks before it
        # (`first`: only the new looks' values are computed, the path before them read).
        # A few releases at a time: the evidence's work arrays then stay in the CPU's
        # caches, several times faster than all releases at once.
        step = max(1, _CHUNK // max(1, (c.shape[0] - first) * finite.size))
        regs, withins = [], []
        for i in range(0, live.size, step):
            cols = live[i:i + step]
            reg, within, _, _ = histogram_log_evidence(
                c[:, cols], e[:, cols], finite, direction=direction, tolerance=tol,
                safe=safe, tolerance_on=tolerance_on, alpha=alpha, planned_looks=planned_looks,
                first=first)  # fmt: skip
            regs.append(reg)
            if within is not None:
                withins.append(within)
        return np.concatenate(regs, axis=1), np.concatenate(withins, axis=1) if withins else None

    quantiles = tuple((q, _quantile(bounds, cumulative, q)) for q in (0.5, 0.9, 0.99))
    p90 = quantiles[1][1]
    return (_histogram_draw(p_base, scaled_probs(bounds, cumulative, factor), rng),
            _histogram_draw(p_base, p_base, rng), judge,
            {"baseline": p90, "canary": p90 * factor, "quantiles": quantiles})  # fmt: skip

