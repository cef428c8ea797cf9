"""Input validation and per-side preprocessing, as Kayenta's judge does it before classifying.

Control and experiment are transformed independently (spec section 4): NaN strategy first,
then (only when asked for) IQR outlier removal in Kayenta's *reduced-sensitivity* mode.
Summary statistics are reported on the transformed data, so the report shows what the
rank test actually saw.

Validation lives here because every public entry point of the judge takes the same kind of
input (a 1-D array-like of floats) and must reject a bad *argument* with a ConfigError that
names it, while bad *data* (NaN, inf, empty) is a normal outcome the judge classifies.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

import numpy as np

from canary.errors import ConfigError

__all__ = [
    "NAN_STRATEGIES",
    "OUTLIER_STRATEGIES",
    "SampleStats",
    "as_sample",
    "handle_nans",
    "iqr_outlier_mask",
    "preprocess",
    "summarize",
]

NAN_STRATEGIES = ("remove", "replace")
OUTLIER_STRATEGIES = ("keep", "remove")


def as_sample(values: Iterable[float] | np.ndarray, name: str) -> np.ndarray:
    """Return `values` as a fresh 1-D float64 array, or raise ConfigError naming `name`.

    A copy is made so that nothing the judge does can reach back into the caller's array.
    Strings, nested sequences and non-numeric objects are argument errors, not data.
    """
    if isinstance(values, (str, bytes)):
        raise ConfigError(f"{name} must be a 1-D sequence of numbers, got a string")
    try:
        raw = np.asarray(values)
        if raw.dtype.kind not in "iufO":  # no strings, booleans, complex or datetimes
            raise TypeError(f"unsupported element type {raw.dtype}")
        arr = np.array(raw, dtype=np.float64, copy=True)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be a 1-D sequence of numbers: {exc}") from None
    if arr.ndim != 1:
        raise ConfigError(f"{name} must be 1-D, got an array of shape {arr.shape}")
    return arr


def check_choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    """Reject anything but one of `choices`; Kayenta's leniency belongs to the config loader."""
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_real(value: object, name: str, *, positive: bool = False, allow_zero: bool = True) -> float:
    """A finite real number (bool is refused: it is almost always a swapped argument)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    val = float(value)
    if not math.isfinite(val):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    if positive and (val < 0 or (val == 0 and not allow_zero)):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name} must be {bound}, got {value!r}")
    return val


def check_confidence(value: object, name: str = "confidence_level") -> float:
    """Confidence levels live strictly inside (0, 1); 0.98 is the judge's hard-coded value."""
    val = check_real(value, name)
    if not 0.0 < val < 1.0:
        raise ConfigError(f"{name} must be strictly between 0 and 1, got {value!r}")
    return val


def handle_nans(values: np.ndarray, strategy: str) -> np.ndarray:
    """`remove` drops NaNs, `replace` turns them into 0.0; infinities are left alone (Kayenta)."""
    nan = np.isnan(values)
    if not nan.any():
        return values
    if strategy == "remove":
        return cast(np.ndarray, values[~nan])
    out = values.copy()
    out[nan] = 0.0
    return out


def iqr_outlier_mask(values: np.ndarray, factor: float, *, reduce_sensitivity: bool = True) -> np.ndarray:
    """True where a value lies strictly outside the IQR fences.

    Percentiles are R-7 (numpy's default linear method), as in Kayenta. Reduced sensitivity
    widens the fences to at least the 1st/99th percentiles, so in small samples only the
    extremes can go and a bulk of identical values never turns its few neighbours into
    outliers wholesale. An empty sample, or one whose fences are NaN (inf - inf), keeps all.
    """
    if values.size == 0:
        return np.zeros(0, dtype=bool)
    with np.errstate(invalid="ignore", over="ignore"):
        p01, p25, p75, p99 = np.percentile(values, [1.0, 25.0, 75.0, 99.0])
        iqr = p75 - p25
        lower = p25 - factor * iqr
        upper = p75 + factor * iqr
        if reduce_sensitivity:
            # Plain min/max so that a NaN fence stays NaN (and then removes nothing).
            lower = p01 if p01 < lower else lower
            upper = p99 if p99 > upper else upper
        return cast(np.ndarray, (values > upper) | (values < lower))


def preprocess(values: np.ndarray, *, nan_strategy: str, outlier_strategy: str, outlier_factor: float) -> np.ndarray:
    """One side's transformation, in Kayenta's order: NaNs, then (optionally) outliers."""
    out = handle_nans(values, nan_strategy)
    if outlier_strategy == "remove":
        out = out[~iqr_outlier_mask(out, outlier_factor, reduce_sensitivity=True)]
    return out


@dataclass(frozen=True, slots=True)
class SampleStats:
    """Report statistics of one transformed side; all zeros for an empty side (as Kayenta)."""

    count: int
    min: float
    max: float
    mean: float
    std: float


def summarize(values: np.ndarray) -> SampleStats:
    """min/max/mean and the n-1 standard deviation (0.0 for a single point, like commons-math)."""
    n = int(values.size)
    if n == 0:
        return SampleStats(count=0, min=0.0, max=0.0, mean=0.0, std=0.0)
    with np.errstate(invalid="ignore", over="ignore"):
        mean = float(np.mean(values))
        std = float(np.std(values, ddof=1)) if n > 1 else 0.0
    return SampleStats(count=n, min=float(values.min()), max=float(values.max()), mean=mean, std=std)
