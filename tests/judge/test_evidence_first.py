"""histogram_log_evidence(first=k): the looks from k on, the same numbers as the whole
path's sliced (planning asks for only the new looks of a growing path; canary.analysis.
simulation)."""

from __future__ import annotations

import numpy as np
import pytest

from canary.judge.histogram_evidence import histogram_log_evidence

BOUNDS = np.array([0.001 * 1.09**k for k in range(40)])


def _paths(seed: int, looks: int = 12, reps: int = 30, slower: float = 1.6) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative buckets (last: the total) per look and release, for both tracks."""
    rng = np.random.default_rng(seed)
    def side(scale: float) -> np.ndarray:
        latencies = rng.lognormal(np.log(0.005 * scale), 0.4, size=(looks, reps, 40))
        new = np.stack([np.count_nonzero(latencies <= b, axis=-1) for b in BOUNDS], axis=-1)
        new = np.concatenate([new, np.full((looks, reps, 1), 40)], axis=-1).astype(float)
        return new.cumsum(axis=0)

    return side(1.0), side(slower)


@pytest.mark.parametrize("direction", ["increase", "decrease", "either"])
@pytest.mark.parametrize("safe", [False, True])
@pytest.mark.parametrize("first", [0, 1, 5, 11])
def test_first_gives_the_whole_paths_values_from_that_look_on_exactly(direction: str, safe: bool, first: int) -> None:
    c, e = _paths(first + 7)
    whole = histogram_log_evidence(c, e, BOUNDS, direction=direction, tolerance=0.1, safe=safe, alpha=0.01,
                                   planned_looks=12)
    tail = histogram_log_evidence(c, e, BOUNDS, direction=direction, tolerance=0.1, safe=safe, alpha=0.01,
                                  planned_looks=12, first=first)
    assert tail[0].shape[0] == c.shape[0] - first
    assert np.array_equal(tail[0], whole[0][first:])  # bit for bit, -inf included
    if safe:
        assert tail[1] is not None and whole[1] is not None
        assert np.array_equal(tail[1], whole[1][first:])
    else:
        assert tail[1] is None
    for got, want in zip(tail[2:], whole[2:], strict=True):
        assert (got is None) == (want is None)
        if got is not None and want is not None:
            assert np.array_equal(got, want[first:])
    # the numbers compared are real: a 60 % slower canary is proven by the last look
    if direction == "increase":
        assert np.isfinite(tail[0]).all() and (tail[0][-1] > np.log(100)).all()
