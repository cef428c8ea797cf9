"""What the sequential tests (canary.judge.ratio, canary.judge.histogram) share: argument
checks, the null's share of events, Bernoulli divergence, and numbers in words."""

from __future__ import annotations

import math

import numpy as np

from canary.errors import ConfigError
from canary.judge.classify import DIRECTIONS
from canary.judge.preprocess import check_choice, check_real

__all__ = ["format_value"]

_EPS = 1e-9

# -- input checks ------------------------------------------------------------------------


def _check_alpha(alpha: object) -> float:
    value = check_real(alpha, "alpha")
    if not 0.0 < value < 1.0:
        raise ConfigError(f"alpha must be strictly between 0 and 1, got {alpha!r}")
    return value


def _check_common(direction: object, alpha: object, tolerance: object, split: object) -> tuple[str, float, float, float]:
    d = check_choice(direction, "direction", DIRECTIONS)
    a = _check_alpha(alpha)
    t = check_real(tolerance, "tolerance", positive=True)
    if d != "increase" and t >= 1.0:
        raise ConfigError(
            f"tolerance {t:g} leaves nothing to detect for direction {d!r}: a decrease beyond "
            "(1 - tolerance) needs tolerance < 1"
        )
    s = check_real(split, "split")
    if not 0.0 < s < 1.0:
        raise ConfigError(f"split (the canary's share of the pair's traffic) must be in (0, 1), got {split!r}")
    return d, a, t, s


def _count(value: object, name: str) -> float:
    v = check_real(value, name, positive=True)
    return v


def format_value(value: float | None, unit: str) -> str:
    """A number for people: 3 significant digits, seconds shown as milliseconds.

    Args:
        value: the number (None or NaN: "–"; +inf: "∞").
        unit: its unit ("s"/"seconds" and "ms"/"milliseconds" are shown in ms).
    """
    if value is None or not math.isfinite(value):
        return "∞" if value == math.inf else "–"
    if unit in ("s", "seconds"):
        return f"{value * 1000:.3g} ms"
    if unit in ("ms", "milliseconds"):
        return f"{value:.3g} ms"
    return f"{value:.3g}{(' ' + unit) if unit else ''}"


def _pct_of(share: float) -> str:
    """A share as a percentile's number: 0.904 -> "90"."""
    return f"{math.floor(100 * float(share) + 1e-9):d}"


def _pct(share: float) -> str:
    return f"{100 * share:.3g}%"


def _e(log_e: float) -> str:
    value = math.exp(min(log_e, 700.0))
    return f"{value:.3g}"


def _theta(ratio: np.ndarray | float, split: float) -> np.ndarray:
    r = np.asarray(ratio, dtype=float)
    return split * r / (split * r + 1.0 - split)



def _kl(p: np.ndarray, q: float | np.ndarray) -> np.ndarray:
    """KL divergence of Bernoulli(p) from Bernoulli(q), per event (0 log 0 = 0)."""
    p = np.clip(p, 0.0, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        a = np.where(p > 0, p * np.log(p / q), 0.0)
        b = np.where(p < 1, (1 - p) * np.log((1 - p) / (1 - q)), 0.0)
    result: np.ndarray = a + b
    return result


def _band_text(direction: str, tol: float) -> str:
    if tol == 0:
        return {"increase": "the baseline (tolerance 0)", "decrease": "the baseline (tolerance 0)"}.get(
            direction, "equality with the baseline (tolerance 0)")
    up, down = f"x{1 + tol:.3g}", f"x{1 - tol:.3g}"
    return {"increase": f"the tolerance {up}", "decrease": f"the tolerance {down}"}.get(
        direction, f"the tolerance [{down}, {up}]"
    )

