"""A histogram's quantiles with confidence sequences: what every histogram result reports.

Each quantile of each side gets an interpolated estimate (as Prometheus' histogram_quantile)
and bucket bounds that provably enclose it, anytime-valid like the tests themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from canary.judge.common import _kl, format_value
from canary.judge.evalues import SPLIT_PRIOR, log_e_above, log_e_below

__all__ = ["QUANTILES", "QuantileBand", "quantile_bands", "quantile_summary"]

#: The quantiles every histogram result reports, with confidence sequences.
QUANTILES = (0.5, 0.9, 0.99)


@dataclass(frozen=True, slots=True)
class QuantileBand:
    """One quantile of one side: an interpolated estimate and a confidence sequence whose
    ends are bucket bounds (level 1 - alpha; None where the buckets cannot bound it)."""

    quantile: float
    estimate: float | None
    lower: float | None
    upper: float | None



def quantile_bands(side: np.ndarray, bounds: np.ndarray, alpha: float) -> tuple[QuantileBand, ...]:
    """Q(q) of one side for every reported q: proven <= b where F(b) > q is proven, and
    > b where F(b) < q is; each end at alpha/2, so a 1 - alpha confidence sequence."""
    n, counts = float(side[-1]), side[:-1]
    if n <= 0:
        return tuple(QuantileBand(q, None, None, None) for q in QUANTILES)
    threshold = math.log(2.0 / alpha)
    share = counts / n
    qs = np.array(QUANTILES)
    # no mixture exceeds the best likelihood ratio, exp(n KL(share, q)): only bounds that
    # reach the threshold with it can be proven, and proof is monotone in the bound. So
    # the upper end is the first candidate above q that is proven, the lower end the last
    # one below; the nearest candidates usually decide, so they are tried first, together.
    reach = n * _kl(share[None, :], qs[:, None]) >= threshold
    ups = [np.nonzero(r & (share > q))[0] for r, q in zip(reach, qs, strict=True)]
    downs = [np.nonzero(r & (share < q))[0][::-1] for r, q in zip(reach, qs, strict=True)]
    upper = _first_proven(ups, counts, n, qs, threshold, above=True)
    lower = _first_proven(downs, counts, n, qs, threshold, above=False)
    return tuple(QuantileBand(float(q), _interpolate(side, bounds, float(q)),
                              None if lo is None else float(bounds[lo]),
                              None if up is None else float(bounds[up]))
                 for q, lo, up in zip(qs, lower, upper, strict=True))  # fmt: skip


def _first_proven(candidates: list[np.ndarray], counts: np.ndarray, n: float, qs: np.ndarray,
                  threshold: float, *, above: bool) -> list[int | None]:  # fmt: skip
    """Per quantile, the first of its candidate bounds (in order) whose e-value that F(b)
    lies above (below) q reaches the threshold; the first two of every quantile in one
    evaluation, the rest a few at a time."""
    test = log_e_above if above else log_e_below
    found: list[int | None] = [None] * len(qs)
    head = [(i, int(j)) for i, cand in enumerate(candidates) for j in cand[:2]]
    if head:
        idx = np.array([j for _, j in head])
        proven = test(counts[idx], n, qs[[i for i, _ in head]], SPLIT_PRIOR) >= threshold
        for (i, j), ok in zip(head, proven, strict=True):
            if ok and found[i] is None:
                found[i] = j
    for i, cand in enumerate(candidates):
        start = 2
        while found[i] is None and start < cand.size:
            chunk = cand[start:start + 4]
            hit = np.nonzero(test(counts[chunk], n, float(qs[i]), SPLIT_PRIOR) >= threshold)[0]
            if hit.size:
                found[i] = int(chunk[hit[0]])
            start += 4
    return found


def _interpolate(side: np.ndarray, bounds: np.ndarray, q: float) -> float:
    """histogram_quantile's estimate: linear within the bucket holding rank q x total."""
    counts = side[:-1]
    rank = q * float(side[-1])
    i = int(np.searchsorted(counts, rank, side="left"))
    if i >= len(bounds):
        return float(bounds[-1])  # in the +Inf bucket: the highest finite bound, as Prometheus
    lo_bound = bounds[i - 1] if i > 0 else min(0.0, float(bounds[0]))
    lo_count = counts[i - 1] if i > 0 else 0.0
    width = counts[i] - lo_count
    frac = (rank - lo_count) / width if width > 0 else 1.0
    return float(lo_bound + frac * (bounds[i] - lo_bound))


def quantile_summary(control: tuple[QuantileBand, ...], canary: tuple[QuantileBand, ...], unit: str) -> str:
    """The reported quantiles of both tracks in words ("p50 canary 87 ms vs baseline 85 ms, ...")."""
    parts = []
    for base, can in zip(control, canary, strict=True):
        name = f"p{100 * base.quantile:g}"
        parts.append(f"{name} canary {format_value(can.estimate, unit)} vs baseline "
                     f"{format_value(base.estimate, unit)}")  # fmt: skip
    return ", ".join(parts)
