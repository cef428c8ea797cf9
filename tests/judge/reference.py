"""A deliberately slow, straight port of R's / Kayenta's interval, for checking the fast one.

It re-ranks the pooled sample (x - d, y) with scipy's average ranks at every step and
counts tie groups from the ranks, exactly as the R code reads. It shares nothing with
canary.judge.mannwhitney except the zeroin port (whose own tests are separate), so any
shortcut the fast statistic takes has to produce the same floats to pass.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtri
from scipy.stats import rankdata

from canary.judge.mannwhitney import zeroin


class AllTied(Exception):
    """sigma == 0, R's stop()."""


def w_reference(d: float, x: np.ndarray, y: np.ndarray) -> float:
    nx, ny = float(len(x)), float(len(y))
    dr = rankdata(np.concatenate([x - d, y]))
    _, nties = np.unique(dr, return_counts=True)
    nties = nties.astype(np.float64)
    dz = float(np.sum(dr[: len(x)])) - nx * (nx + 1) / 2 - nx * ny / 2
    correction = float(np.sign(dz)) * 0.5
    sigma = math.sqrt((nx * ny / 12) * ((nx + ny + 1)
                                        - float(np.sum(nties**3 - nties)) / ((nx + ny) * (nx + ny - 1))))
    if sigma == 0:
        raise AllTied
    return (dz - correction) / sigma


def interval_reference(x, y, confidence_level: float) -> tuple[float, float, float]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    alpha = 1.0 - confidence_level
    zq = float(ndtri(alpha / 2))
    mumin = float(x.min() - y.max())
    mumax = float(x.max() - y.min())
    w_min, w_max = w_reference(mumin, x, y), w_reference(mumax, x, y)

    def root(z: float) -> float:
        if w_min - z <= 0:
            return mumin
        if w_max - z >= 0:
            return mumax
        return zeroin(lambda d: w_reference(d, x, y) - z, mumin, mumax, w_min - z, w_max - z)

    lower, upper = root(-zq), root(zq)
    estimate = zeroin(lambda d: w_reference(d, x, y) - 0.0, mumin, mumax, w_min, w_max)
    return float(lower), float(upper), float(estimate)
