"""The histogram test's inputs, checked: cumulative `le` buckets of one look, and the
looks of a release (each cumulative since the analysis began, none dropping)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from canary.errors import ConfigError
from canary.judge.common import _EPS

__all__ = ["check_histogram", "looks_path"]


def looks_path(current: np.ndarray, history: Sequence[tuple[object, object]], index: int, bounds: np.ndarray,
               name: str) -> np.ndarray:  # fmt: skip
    """The looks' cumulative buckets of one side, oldest first, the current look last;
    each earlier look checked like the current one and no count may drop between looks.

    Args:
        current: this look's checked buckets.
        history: the earlier looks' (control, experiment) buckets, oldest first.
        index: 0 for the control side, 1 for the experiment side.
        bounds: the bucket bounds (with +Inf).
        name: what the counts are, for messages.

    Returns:
        A looks x buckets array.

    Raises:
        ConfigError: on a malformed earlier look, or counts that drop between looks.
    """
    side = "control_buckets" if index == 0 else "experiment_buckets"
    try:  # the usual case, checked in bulk: well-formed earlier looks of the same buckets
        earlier = np.array([look[index] for look in history], dtype=float).reshape(len(history), -1)
        if earlier.shape[1] == bounds.size and np.all(np.isfinite(earlier)) and np.all(earlier >= 0):
            path = np.vstack([earlier, current[None, :]])
            if not (np.diff(path, axis=-1) < -_EPS * np.maximum(1.0, path[:, -1:])).any():
                return _monotone_looks(path, side, name)
    except (TypeError, ValueError, IndexError, KeyError):
        pass  # checked one by one below, for the message
    looks = []
    for n, look in enumerate(history, start=1):
        try:
            values = look[index]
        except (TypeError, IndexError, KeyError):
            raise ConfigError(f"history[{n - 1}] must be a (control_buckets, experiment_buckets) "
                              f"pair, got {look!r}") from None  # fmt: skip
        arr = _as_counts(values, f"history[{n - 1}] {side}")
        if arr.size != bounds.size:
            raise ConfigError(f"history[{n - 1}] {side} has {arr.size} buckets, the current look "
                              f"{bounds.size}: every look must use the same buckets")  # fmt: skip
        looks.append(arr)
    looks.append(current)
    return _monotone_looks(np.vstack(looks), side, name)


def _monotone_looks(path: np.ndarray, side: str, name: str) -> np.ndarray:
    """`path` (looks x buckets) itself, once no count drops from one look to the next."""
    drop = np.nonzero((np.diff(path, axis=0) < -_EPS * np.maximum(1.0, path[1:])).any(axis=1))[0]
    if drop.size:
        i = int(drop[0])
        raise ConfigError(
            f"{name} counts must be cumulative since the analysis began: the {side} at look "
            f"{i + 2} are below those of look {i + 1} (a counter reset must be handled before "
            "judging)"
        )
    return path


def _as_counts(values: object, name: str) -> np.ndarray:
    if isinstance(values, (str, bytes)):
        raise ConfigError(f"{name} must be a sequence of counts, got a string")
    try:
        arr = np.array(values, dtype=float, copy=True)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be a sequence of counts: {exc}") from None
    if arr.ndim != 1:
        raise ConfigError(f"{name} must be 1-D, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ConfigError(f"{name} must hold finite counts >= 0, got {arr.tolist()}")
    return arr


def check_histogram(control: object, experiment: object, upper_bounds: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One look's buckets, checked.

    Args:
        control: the baseline's cumulative counts per bound.
        experiment: the canary's, over the same bounds.
        upper_bounds: the bounds (`le`), increasing, the last +Inf.

    Returns:
        (control, experiment, upper_bounds) as float arrays.

    Raises:
        ConfigError: on counts that are not finite, >= 0 and cumulative, or bounds that do
            not fit them.
    """
    c = _as_counts(control, "control_buckets")
    e = _as_counts(experiment, "experiment_buckets")
    try:
        b = np.array(upper_bounds, dtype=float, copy=True)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"upper_bounds must be numbers: {exc}") from None
    if b.ndim != 1 or b.size < 2 or not (c.size == e.size == b.size):
        raise ConfigError(
            f"upper_bounds ({b.size}), control_buckets ({c.size}) and experiment_buckets "
            f"({e.size}) must have the same length, at least 2 (one finite bound and +Inf)"
        )
    if b[-1] != math.inf or not np.all(np.isfinite(b[:-1])) or np.any(np.diff(b) <= 0):
        raise ConfigError(
            f"upper_bounds must increase strictly and end with +Inf (Prometheus' le), got {b.tolist()}"
        )
    for name, arr in (("control_buckets", c), ("experiment_buckets", e)):
        drop = np.nonzero(np.diff(arr) < -_EPS * max(1.0, arr[-1]))[0]
        if drop.size:
            i = int(drop[0])
            raise ConfigError(
                f"{name} must be cumulative over le: the count at le={b[i + 1]:g} "
                f"({arr[i + 1]:g}) is below the count at le={b[i]:g} ({arr[i]:g})"
            )
    return c, e, b

