"""E-processes for labelled events: the one piece of mathematics under the sequential judge.

Every sequential test of this project reduces to the same question. A stream of events
(requests, errors, requests slower than a bucket bound) arrives; each event carries a
label, "canary" or "baseline", that is an independent Bernoulli draw with P(canary) = p.
Is p above (or below) a null value p0?

`log_e_above(k, n, p0, prior)` is the log of a mixture likelihood ratio against
H0: p <= p0 after k canary labels among n events; `log_e_below` is its mirror against
H0: p >= p0. The mixing distribution is discrete and fixed in advance: alternatives whose
*odds* are the null odds times a multiplier m, with m spread evenly on a log scale over the
prior's range (`Prior`). Ratio metrics (error rates) look for large multipliers over few
events, histogram bounds for small ones over many, so each kind has its own range.

Why this is anytime-valid. For one alternative q > p0 the likelihood ratio
prod (q/p0)^z ((1-q)/(1-p0))^(1-z) has expectation q p/p0 + (1-q)(1-p)/(1-p0) <= 1 per
event whenever p <= p0 (the expression grows with p and equals 1 at p0), so it is a
non-negative supermartingale that starts at 1 under every distribution of H0, including
ones where p changes from event to event but stays <= p0. A fixed mixture of such
supermartingales is one too, and so is an average of mixtures. Ville's inequality bounds
the chance that it *ever* reaches 1/alpha by alpha, however often it is looked at and
whenever the looking stops. The value depends on the counts only (k, n), not on the order
of the events, so a caller who only has cumulative counts at arbitrary times looks at the
same supermartingale, at a subset of its times.

Pure numpy; vectorised over arrays of counts and null values.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt

__all__ = ["HISTOGRAM_PRIOR", "INTERVAL_PRIOR", "RATIO_PRIOR", "SAFETY_PRIOR", "SAFE_RATE_PRIOR", "SPLIT_PRIOR", "Prior", "log_e_above", "log_e_below", "log_e_plugin"]


@dataclass(frozen=True)
class Prior:
    """Alternatives as odds multipliers, log-uniform on [low, high], `points` of them, each
    with equal weight; `tail` (high2, points2) adds points log-uniform on (high, high2] so
    large effects over few events count too without thinning out the small ones."""

    low: float
    high: float
    points: int = 24
    tail: tuple[float, int] | None = None

    def log_multipliers(self) -> np.ndarray:
        """The mixture's alternatives: log odds multipliers, evenly spaced (and the tail's)."""
        return _log_multipliers(self)

    def _compute(self) -> np.ndarray:
        body = np.linspace(np.log(self.low), np.log(self.high), self.points)
        if self.tail is None:
            return body
        high2, extra = self.tail
        step = (np.log(high2) - np.log(self.high)) / extra
        return np.concatenate([body, np.log(self.high) + step * np.arange(1, extra + 1)])

    @property
    def size(self) -> int:
        """How many alternatives the mixture averages over."""
        return self.points + (self.tail[1] if self.tail else 0)


@functools.cache
def _log_multipliers(prior: Prior) -> np.ndarray:
    """A prior's log multipliers, computed once per prior (read-only)."""
    values = prior._compute()
    values.flags.writeable = False
    return values


#: Error-rate ratios worth catching are large (about a doubling, up to a canary that fails
#: where the baseline does not) and rest on few events.
RATIO_PRIOR = Prior(1.8, 2.6, 24, tail=(30.0, 2))
#: Exceedance ratios at a bucket bound move little for a real latency shift (x1.03 .. x1.5),
#: but thousands of requests stand behind them.
HISTOGRAM_PRIOR = Prior(1.03, 1.5, 24, tail=(30.0, 4))
#: Confidence sequences of a rate ratio, and proving a ratio within its tolerance: from a
#: slight change (the interval must narrow as evidence grows) to a large one.
INTERVAL_PRIOR = Prior(1.02, 1.5, 24, tail=(30.0, 4))
#: Proving "within tolerance" at a bucket bound: the margin a tolerance leaves between the
#: two exceedance shares is wider than a regression's (x1.1 .. x4).
SAFETY_PRIOR = Prior(1.1, 4.0)
#: Proving the canary's own rate below a safe rate (ratio metrics' safe_rate): from a rate
#: a little below it down to none at all (odds /1.5 .. /1000).
SAFE_RATE_PRIOR = Prior(1.5, 1000.0, 24)
#: Sample-ratio mismatch: a track getting a share off by a few percent up to a dead one.
SPLIT_PRIOR = Prior(1.02, 8.0)


def _log_mix(
    k: npt.ArrayLike, n: npt.ArrayLike, p0: npt.ArrayLike, prior: Prior, sign: float
) -> np.ndarray:
    k_arr, n_arr = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    p0_arr = np.asarray(p0, dtype=float)
    if p0_arr.ndim == 0:
        return _log_mix_scalar(k_arr, n_arr, float(p0_arr), prior, sign)
    k_, n_, p_ = np.broadcast_arrays(k_arr, n_arr, p0_arr)
    p_ = np.clip(p_, 1e-12, 1 - 1e-12)
    log_odds0 = np.log(p_) - np.log1p(-p_)
    shifted = log_odds0[..., None] + sign * prior.log_multipliers()
    # log q and log(1-q) of each alternative, computed stably from its log odds
    log_q = -np.logaddexp(0.0, -shifted)
    log_1q = -np.logaddexp(0.0, shifted)
    ratio = (
        k_[..., None] * (log_q - np.log(p_)[..., None])
        + (n_ - k_)[..., None] * (log_1q - np.log1p(-p_)[..., None])
    )
    top = ratio.max(axis=-1)
    with np.errstate(invalid="ignore"):
        total = np.log(np.exp(ratio - top[..., None]).sum(axis=-1))
    return cast(np.ndarray, top + total - np.log(prior.size))


def _log_mix_scalar(k: np.ndarray, n: np.ndarray, p0: float, prior: Prior, sign: float) -> np.ndarray:
    """The same mixture at one null value: each alternative's per-event log terms are
    computed once, and the alternatives lie along the first axis (contiguous reductions).
    Much faster for many counts, which is what planning simulations need."""
    k, n = np.broadcast_arrays(k, n)
    p = min(max(p0, 1e-12), 1 - 1e-12)
    shifted = math.log(p) - math.log1p(-p) + sign * prior.log_multipliers()
    canary = -np.logaddexp(0.0, -shifted) - math.log(p)  # log q/p0 per canary label
    baseline = -np.logaddexp(0.0, shifted) - math.log1p(-p)  # log (1-q)/(1-p0) per baseline label
    flat_k, flat_n = np.ravel(k), np.ravel(n)
    # in place: one work array of alternatives x counts (the same arithmetic, in the same order)
    ratio = np.multiply.outer(canary, flat_k)
    ratio += np.multiply.outer(baseline, flat_n - flat_k)
    top = ratio.max(axis=0)
    ratio -= top
    np.exp(ratio, out=ratio)
    log_e = top + np.log(ratio.sum(axis=0)) - math.log(prior.size)
    return cast(np.ndarray, log_e.reshape(np.shape(k)))


def log_e_above(k: npt.ArrayLike, n: npt.ArrayLike, p0: npt.ArrayLike, prior: Prior) -> np.ndarray:
    """log e-value against H0: P(canary label) <= p0, after k canary labels of n events."""
    return _log_mix(k, n, p0, prior, +1.0)


def log_e_below(k: npt.ArrayLike, n: npt.ArrayLike, p0: npt.ArrayLike, prior: Prior) -> np.ndarray:
    """log e-value against H0: P(canary label) >= p0, after k canary labels of n events."""
    return _log_mix(k, n, p0, prior, -1.0)


def log_e_plugin(k: npt.ArrayLike, n: npt.ArrayLike, p0: npt.ArrayLike, *, above: bool) -> np.ndarray:
    """log of the predictable plug-in e-process, per look: k canary labels among n events,
    cumulative, looks on axis 0 (any shape after it); against H0: p <= p0 (above=True) or
    p >= p0 (above=False).

    Each look's new events are bet on with the likelihood ratio of q against p0, q the
    share of canary labels among all the events *before* the look (shrunk a little toward
    p0, and p0 itself, no bet, when it lies on the null's side). Given the past and the
    look's number of events, the labels are independent coin flips with some p on the
    null's side, so each look's factor has expectation <= 1: the product is a test
    supermartingale for events that arrive in batches, whatever the batch sizes. It learns
    the alternative from the data (Kelly's bet on the running estimate), so on many events
    it grows nearly as fast as the likelihood ratio at the true p; the first look is not
    bet on."""
    k_arr, n_arr = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    k_arr, n_arr, p_arr = np.broadcast_arrays(k_arr, n_arr, np.asarray(p0, dtype=float))
    p = np.clip(p_arr, 1e-12, 1 - 1e-12)
    past_k = np.concatenate([np.zeros_like(k_arr[:1]), k_arr[:-1]])
    past_n = np.concatenate([np.zeros_like(n_arr[:1]), n_arr[:-1]])
    q = (past_k + p) / (past_n + 1.0)  # one pseudo-event at p0: shrinks early, small looks
    q = np.minimum(q, p) if not above else np.maximum(q, p)
    q = np.clip(q, 1e-6, 1 - 1e-6)
    dk, dn = k_arr - past_k, n_arr - past_n
    step = dk * (np.log(q) - np.log(p)) + (dn - dk) * (np.log1p(-q) - np.log1p(-p))
    result: np.ndarray = np.cumsum(step, axis=0)
    return result
