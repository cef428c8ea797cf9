"""The histogram test's e-processes: is one side slower than factor x the other, at some
bucket bound (regression), or within it at every bound that can tell (safety)?

`histogram_log_evidence` evaluates them on arrays of looks (axis 0) and of any number of
releases (simulations, canary.analysis.simulation); canary.judge.histogram decides one
release's look with them. The derivation is in docs/judge.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from canary.judge.common import _EPS, _kl, _theta
from canary.judge.evalues import (
    HISTOGRAM_PRIOR,
    SAFETY_PRIOR,
    Prior,
    log_e_above,
    log_e_below,
    log_e_plugin,
)

__all__ = ["EVIDENCE_MARGIN", "SAFE_RANGE", "histogram_log_evidence"]

#: "Safe" (decided Pass) for a histogram covers the bucket bounds whose pooled share of
#: requests at or below them lies in this range: from the pooled p2 to p98.
SAFE_RANGE = (0.02, 0.98)
EVIDENCE_MARGIN = 4.0


@dataclass(frozen=True, slots=True)
class _Evidence:
    log_e: float
    bound: int  # index of the slower side's bound with the most evidence
    reference: int  # index of the reference side's bound it was compared with
    share_slow: float
    share_ref: float


def _partners(bounds: np.ndarray, factor: float, *, down: bool) -> np.ndarray:
    """For each bound b_j, the bucket bound nearest to b_j / factor: the largest one at or
    below it (down=True, for regression tests), or the smallest at or above (safety).
    -1 where there is none."""
    target = bounds / factor
    if down:
        idx = np.searchsorted(bounds, target * (1 + _EPS), side="right") - 1
        return np.where(idx >= 0, idx, -1)
    idx = np.searchsorted(bounds, target * (1 - _EPS), side="left")
    return np.where(idx < len(bounds), idx, -1)


def _slower_terms(slow: np.ndarray, ref: np.ndarray, bounds: np.ndarray, factor: float,
                  share: float, tolerance_on: str = "quantile") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Per bound pair (j, k): log e-values that `slow` is slower than factor x `ref`, in the
    exceedance and the fast-request form. Arrays are cumulative over le with the total
    last, any leading shape. Returns (j, k, exceed, fast). With `share` tolerances the
    pair is (j, j), the exceedance form tests the shares above b_j against factor, and
    there is no fast-request form (fast is empty)."""
    if tolerance_on == "share":
        j = k = np.arange(bounds.size)
        exceed = _share_terms(slow, ref, factor, share, HISTOGRAM_PRIOR, above=True)
        return j, k, exceed, exceed[..., :0]
    k = _partners(bounds, factor, down=True)
    j = np.nonzero(k >= 0)[0]
    k = k[j]
    above_slow = slow[..., -1:] - slow[..., j]
    above_ref = ref[..., -1:] - ref[..., k]
    fast_slow, fast_ref = slow[..., j], ref[..., k]
    exceed = log_e_above(above_slow, above_slow + above_ref, share, HISTOGRAM_PRIOR)
    fast = log_e_below(fast_slow, fast_slow + fast_ref, share, HISTOGRAM_PRIOR)
    return j, k, exceed, fast


def _slower(slow: np.ndarray, ref: np.ndarray, bounds: np.ndarray, factor: float, share: float,
            tolerance_on: str = "quantile") -> np.ndarray:
    """Evidence that `slow` is slower than factor x `ref` at some single bound: the average
    of every bound's e-values (an average of e-processes is one)."""
    j, _, exceed, fast = _slower_terms(slow, ref, bounds, factor, share, tolerance_on)
    if j.size == 0:
        return np.zeros(slow.shape[:-1])
    both = np.concatenate([exceed, fast], axis=-1)
    top = both.max(axis=-1, keepdims=True)
    log_mean: np.ndarray = np.log(np.exp(both - top).sum(axis=-1)) + top[..., 0] - math.log(both.shape[-1])
    return log_mean


def _within_terms(slow: np.ndarray, ref: np.ndarray, bounds: np.ndarray, factor: float,
                  share: float, last: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Per bound: log e-value that `slow` is at most factor x `ref` there (both forms
    averaged), whether the bound is informative (pooled share between SAFE_RANGE), and its
    partner index (-1: the buckets cannot bound it)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled = (slow[..., :-1] + ref[..., :-1]) / (slow[..., -1:] + ref[..., -1:])
    informative = (pooled >= SAFE_RANGE[0]) & (pooled <= SAFE_RANGE[1])
    m = _partners(bounds, factor, down=False)
    mm = np.where(m >= 0, m, 0)
    above_slow, above_ref = slow[..., -1:] - slow[..., :-1], ref[..., -1:] - ref[..., mm]
    fast_slow, fast_ref = slow[..., :-1], ref[..., mm]
    per_bound = np.logaddexp(
        _learning(above_slow, above_slow + above_ref, share, SAFETY_PRIOR, above=False, last=last),
        _learning(fast_slow, fast_slow + fast_ref, share, SAFETY_PRIOR, above=True, last=last),
    ) - math.log(2)
    per_bound = np.where(m >= 0, per_bound, -np.inf)
    return per_bound, informative, m


def _required(slow: np.ndarray, ref: np.ndarray, bounds: np.ndarray, factor: float, share: float,
              tolerance_on: str, alpha: float, tolerance: float, planned_looks: int | None) -> np.ndarray:
    """Per look and bound: must "within tolerance" be proven there for a decided Pass?

    Chosen from the looks *before* each look only, and from the two tracks' requests pooled
    (no canary/baseline labels), so the bounds a decision speaks for are fixed before the
    look's data arrive; at look 1 nothing is required yet, so nothing is decided. A bound is
    required where an unchanged canary would, on average, have gathered at least twice the
    evidence the threshold asks (2 log(1/alpha)) by the planned end: the pooled requests
    on the bound's events, projected to the end, times the information per event if both
    tracks behaved like the pool. That is where the data can speak; elsewhere only the
    regression test watches. Bounds the buckets cannot bound are never required. With
    tolerance 0 (nothing to prove for an unchanged canary) the bounds between the pooled
    SAFE_RANGE are required."""
    looks = slow.shape[0]
    req = np.zeros((*slow.shape[:-1], bounds.size), dtype=bool)
    if looks < 2:
        return req
    past = slow[:-1] + ref[:-1]
    total = past[..., -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        cdf = past[..., :-1] / total
    if tolerance <= 0:
        req[1:] = (cdf >= SAFE_RANGE[0]) & (cdf <= SAFE_RANGE[1])
        return req
    done = np.arange(1, looks).reshape((looks - 1,) + (1,) * (slow.ndim - 1))
    scale = np.maximum((planned_looks / done) if planned_looks else (done + 1) / done, 1.0)
    surv = 1.0 - cdf
    if tolerance_on == "share":
        theta0 = float(_theta(factor, share))
        info = _kl(np.full_like(surv, share), theta0) * surv * total * scale
        # where factor x the pooled share above b reaches 100 %, "within" cannot fail:
        # an empty claim, not required (nor below the pooled p2)
        usable = (surv * factor < 1.0) & (cdf >= SAFE_RANGE[0])
    else:
        m = _partners(bounds, factor, down=False)
        usable = m >= 0
        mm = np.where(usable, m, 0)
        # exceedance form: slow above b_j vs ref above b_m; fast form: at or below them
        exc_events = share * surv + (1 - share) * surv[..., mm]
        fast_events = share * cdf + (1 - share) * cdf[..., mm]
        with np.errstate(invalid="ignore", divide="ignore"):
            exc = _kl(share * surv / exc_events, share) * exc_events
            fast = _kl(share * cdf / fast_events, share) * fast_events
        info = np.fmax(np.nan_to_num(exc), np.nan_to_num(fast)) * total * scale
        # where the reference side has (next to) no requests at or below the partner bound,
        # "within" there is all but empty (the slow side's share above b_j <= ~100 %) and a
        # slow side with a floor (nothing faster than x) sits exactly on it: not required
        usable = usable & (cdf[..., mm] >= SAFE_RANGE[0])
    req[1:] = (info >= EVIDENCE_MARGIN * math.log(1 / alpha)) & usable & (total > 0) & (cdf <= SAFE_RANGE[1])
    return req


def _share_terms(slow: np.ndarray, ref: np.ndarray, factor: float, share: float,
                 prior: Prior, above: bool, last: bool = False) -> np.ndarray:  # fmt: skip
    """Per bound: log e-value on the requests slower than it, against "the slow side's
    share above the bound is at most (above=True) / at least (False) factor x the
    reference's" (the `share` tolerance: the same bound on both sides, no rounding)."""
    above_slow, above_ref = slow[..., -1:] - slow[..., :-1], ref[..., -1:] - ref[..., :-1]
    theta0 = float(_theta(factor, share))
    if not above:  # proving "within": learn the margin over the looks (axis 0)
        return _learning(above_slow, above_slow + above_ref, theta0, prior, above=False, last=last)
    return log_e_above(above_slow, above_slow + above_ref, theta0, prior)


def _learning(k: np.ndarray, n: np.ndarray, p0: float, prior: Prior, *, above: bool, last: bool = False) -> np.ndarray:
    """One bound's e-process over the looks (axis 0): the average of the fixed mixture
    (strong from the first look on large effects) and the plug-in bet (learns the effect's
    size). `last`: the last look only (the fixed mixture needs no path)."""
    test = log_e_above if above else log_e_below
    fixed = test(k[-1:], n[-1:], p0, prior) if last else test(k, n, p0, prior)
    plugin = log_e_plugin(k, n, p0, above=above)
    result: np.ndarray = np.logaddexp(fixed, plugin[-1:] if last else plugin) - math.log(2)
    return result


def _rank_path(slow: np.ndarray, ref: np.ndarray, bounds: np.ndarray, factor: float, share: float,
               tolerance_on: str) -> np.ndarray:
    """log of the betting e-process that `slow` is slower than factor x `ref`, per look.

    `slow`, `ref`: cumulative buckets (last: the total) per look, looks on axis 0. Each
    request gets a score from the bucket it fell in: g(x) = sum_j w_j [x > b_j] for the
    slow side and kappa * sum_j w_j [x > b_k(j)] for the reference (b_k(j) its bound rounded
    down, kappa 1; or with `share` tolerances b_k(j) = b_j and kappa = factor). Under the
    null (at every bound, slow's share above b_j <= factor x ref's share above b_k(j)),
    Y = (1 - share) (g - c) for a slow request and -share (kappa g' - c) for a reference one
    has mean <= 0 for any weights w >= 0 and centre c, so prod (1 + lambda Y) over the
    requests is a test supermartingale for every lambda in [0, 1/max(-Y)). Weights (the
    pooled mass around each bound: rank scores), centre and lambda (Kelly's mean/second
    moment, capped at half the range) come from the looks before the batch only; the
    first look's batch is not bet on."""
    looks = slow.shape[0]
    out = np.zeros(slow.shape[:-1])
    if looks < 2:
        return out
    n_bounds = bounds.size
    if tolerance_on == "share":
        k, kappa = np.arange(n_bounds), factor
    else:
        k, kappa = _partners(bounds, factor, down=True), 1.0
    usable = (k >= 0).astype(float)
    cells = np.arange(n_bounds + 1)
    ms = (cells[None, :] > np.arange(n_bounds)[:, None]) * usable[:, None]
    mr = (cells[None, :] > k[:, None]) * usable[:, None]
    ps = np.diff(slow, axis=-1, prepend=0.0)
    pr = np.diff(ref, axis=-1, prepend=0.0)
    # every look t >= 2 at once: its bet uses look t-1's counts (the past), its step look t's
    past_s, past_r = ps[:-1], pr[:-1]
    pooled = past_s + past_r
    w = (pooled[..., :-1] + pooled[..., 1:]) * usable
    mass = w.sum(axis=-1, keepdims=True)
    w = w / np.where(mass > 0, mass, 1.0)
    gs, gr = w @ ms, kappa * (w @ mr)
    n = past_s.sum(axis=-1, keepdims=True) + past_r.sum(axis=-1, keepdims=True)
    safe_n = np.where(n > 0, n, 1.0)
    c = ((past_s * gs).sum(axis=-1, keepdims=True) + (past_r * gr).sum(axis=-1, keepdims=True)) / safe_n
    ys, yr = (1.0 - share) * (gs - c), -share * (gr - c)
    mu = ((past_s * ys).sum(axis=-1) + (past_r * yr).sum(axis=-1)) / safe_n[..., 0]
    m2 = ((past_s * ys**2).sum(axis=-1) + (past_r * yr**2).sum(axis=-1)) / safe_n[..., 0]
    low = -np.minimum(ys.min(axis=-1), yr.min(axis=-1))
    cap = 0.5 / np.maximum(low, _EPS)
    lam = np.clip(mu / np.maximum(m2, _EPS), 0.0, cap)
    lam = np.where((n[..., 0] > 0) & (mass[..., 0] > 0), lam, 0.0)
    ds, dr = ps[1:] - past_s, pr[1:] - past_r
    step = ((ds * np.log1p(lam[..., None] * ys)).sum(axis=-1)
            + (dr * np.log1p(lam[..., None] * yr)).sum(axis=-1))  # fmt: skip
    out[1:] = np.cumsum(step, axis=0)
    return out


def _slower_path(slow: np.ndarray, ref: np.ndarray, bounds: np.ndarray, factor: float, share: float,
                 tolerance_on: str, last: bool = False, first: int = 0) -> np.ndarray:
    """Evidence that `slow` is slower than factor x `ref` somewhere, per look: the average
    of the betting e-process (_rank_path: every bound at once, strong on shifts of the
    whole distribution) and the fixed mixture over single bounds (strong where a few
    bounds move: a slow tail). `first`: the looks from index `first` on only (the betting
    e-process still reads the path before them; the fixed mixture, look by look, does not)."""
    if last:  # the fixed mixture needs no path
        bounds_e = _slower(slow[-1:], ref[-1:], bounds, factor, share, tolerance_on)
        rank = _rank_path(slow, ref, bounds, factor, share, tolerance_on)[-1:]
    else:
        bounds_e = _slower(slow[first:], ref[first:], bounds, factor, share, tolerance_on)
        rank = _rank_path(slow, ref, bounds, factor, share, tolerance_on)[first:]
    result: np.ndarray = np.logaddexp(rank, bounds_e) - math.log(2)
    return result


def _within_path(slow: np.ndarray, ref: np.ndarray, bounds: np.ndarray, factor: float, share: float,
                 tolerance_on: str, alpha: float, tolerance: float, planned_looks: int | None,
                 last: bool = False) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Per look and bound: log e-value that `slow` is within factor x `ref` there, and
    whether the bound is required (_required); -inf where the buckets cannot bound it."""
    if tolerance_on == "share":
        per_bound = _share_terms(slow, ref, factor, share, SAFETY_PRIOR, above=False, last=last)
    else:
        per_bound, _, _ = _within_terms(slow, ref, bounds, factor, share, last)
    required = _required(slow, ref, bounds, factor, share, tolerance_on, alpha, tolerance, planned_looks)
    return per_bound, (required[-1:] if last else required)


def _within(slow: np.ndarray, ref: np.ndarray, bounds: np.ndarray, factor: float, share: float,
            tolerance_on: str, alpha: float, tolerance: float, planned_looks: int | None,
            last: bool = False) -> np.ndarray:  # fmt: skip
    """Evidence that `slow` is within factor x `ref` at every required bound, per look (the
    weakest required bound's; -inf when none is required)."""
    per_bound, required = _within_path(slow, ref, bounds, factor, share, tolerance_on, alpha, tolerance,
                                       planned_looks, last)  # fmt: skip
    weakest = np.where(required, per_bound, np.inf).min(axis=-1)
    return np.where(required.any(axis=-1), weakest, -np.inf)


def histogram_log_evidence(
    control: np.ndarray, experiment: np.ndarray, bounds: np.ndarray, *, direction: str,
    tolerance: float, split: float = 0.5, safe: bool = True, tolerance_on: str = "quantile",
    alpha: float = 0.01, planned_looks: int | None = None, last: bool = False, first: int = 0,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """compare_histograms' log e-values at every look of a release, for arrays of
    cumulative buckets (last column the total): axis 0 is the looks in order (the counts
    cumulative since the analysis began at each), any leading shape after it
    (simulations use it). `bounds` are the finite bounds.

    Returns (regression, within, slower, faster), each per look: `regression` in the
    configured direction, `within` the tolerance at every required bound (None when `safe`
    is False: it costs as much again), and the two directions' evidence (slower: None for
    direction "decrease"; faster: None for "increase" or a tolerance >= 1). -inf where a
    side has no requests. `last`: only the last look's values (a looks axis of length 1),
    much cheaper. `first`: only the values of the looks from index `first` on, the same
    numbers as the whole path's sliced (what each look's evidence rests on before them is
    still read), cheaper: planning re-judges growing paths. Unchecked.
    """
    c, e = np.asarray(control, dtype=float), np.asarray(experiment, dtype=float)
    up, down = 1.0 + tolerance, (1.0 / (1.0 - tolerance) if tolerance < 1 else math.inf)
    first = c.shape[0] - 1 if last else first
    ends = (c[first:], e[first:])
    nodata = (ends[0][..., -1] == 0) | (ends[1][..., -1] == 0)
    slower = (_slower_path(e, c, bounds, up, split, tolerance_on, last, first)
              if direction != "decrease" else None)  # fmt: skip
    faster = (_slower_path(c, e, bounds, down, 1.0 - split, tolerance_on, last, first)
              if tolerance < 1 and direction != "increase" else None)  # fmt: skip
    tests = {"increase": [(e, c, up, split)], "decrease": [(c, e, down, 1.0 - split)]}.get(
        direction, [(e, c, up, split), (c, e, down, 1.0 - split)]
    )
    if direction == "increase":
        assert slower is not None
        reg = slower
    elif direction == "decrease":
        assert faster is not None
        reg = faster
    else:
        assert faster is not None and slower is not None
        reg = np.logaddexp(slower, faster) - math.log(2)
    within = None
    if safe:
        within = np.minimum.reduce([
            _within(slow, ref, bounds, f, w, tolerance_on, alpha, tolerance, planned_looks, last)
            for slow, ref, f, w in tests
        ])  # fmt: skip
        within = np.where(nodata, -np.inf, within if last else within[first:])
    return np.where(nodata, -np.inf, reg), within, slower, faster


def _worst(slow: np.ndarray, ref: np.ndarray, bounds: np.ndarray, factor: float, share: float,
           tolerance_on: str) -> _Evidence:
    """Where the evidence that `slow` is slower is strongest (one histogram, for reasons)."""
    j, k, exceed, fast = _slower_terms(slow, ref, bounds, factor, share, tolerance_on)
    if j.size == 0:
        return _Evidence(0.0, -1, -1, math.nan, math.nan)
    best = int(np.argmax(np.logaddexp(exceed, fast) if fast.size else exceed))
    jb, kb = int(j[best]), int(k[best])
    log_e = float(np.logaddexp(exceed[best], fast[best])) if fast.size else float(exceed[best])
    return _Evidence(log_e, jb, kb,
                     float((slow[-1] - slow[jb]) / slow[-1]), float((ref[-1] - ref[kb]) / ref[-1]))  # fmt: skip


def _weakest(per_bound: np.ndarray, required: np.ndarray) -> tuple[float, int, int]:
    """(log e, index, number of required bounds) of the required bound hardest to prove
    within, at the last look."""
    idx = np.nonzero(required[-1])[0]
    if idx.size == 0:
        return -math.inf, -1, 0
    weakest = int(idx[np.argmin(per_bound[-1][idx])])
    return float(per_bound[-1][weakest]), weakest, int(idx.size)

