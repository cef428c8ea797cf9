"""Guards: before any metric is believed, both tracks must be alive and serving their share.

A canary that stopped serving has no bad metrics, it has no metrics: judged on its last
good numbers it would pass. So every look checks, besides the workloads' readiness (an I/O
question the flow asks the platform):

* traffic: each track received at least `min_requests` new requests since the last look;
* split: baseline and canary have equal traffic weights, so the canary's share of the
  pair's requests must be `split` (1/2) within chance. A sample-ratio-mismatch test on the
  request counts, anytime-valid like the metric tests (canary.judge.evalues): a canary that
  serves a fraction of its share (crash-looping, failing health checks, starved by the
  router) fails it, and so would any routing that breaks the metric tests' assumption.

Pure: counts in, verdicts with reasons out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from canary.errors import ConfigError
from canary.judge.evalues import SPLIT_PRIOR, log_e_above, log_e_below
from canary.judge.preprocess import check_real

__all__ = ["GuardResult", "check_readiness", "check_split", "check_traffic", "evaluate_guards"]


@dataclass(frozen=True, slots=True)
class GuardResult:
    """One guard's answer at one look; `ok` False fails the release at once."""

    name: str
    ok: bool
    reason: str


def check_split(
    control_total: float, experiment_total: float, *, split: float = 0.5, alpha: float = 0.001
) -> GuardResult:
    """Sample-ratio test: is the canary's share of the pair's requests `split`?"""
    c = check_real(control_total, "control_total", positive=True)
    e = check_real(experiment_total, "experiment_total", positive=True)
    if not 0.0 < split < 1.0:
        raise ConfigError(f"split must be in (0, 1), got {split!r}")
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha must be strictly between 0 and 1, got {alpha!r}")
    n = c + e
    if n == 0:
        return GuardResult("split", True, "no requests yet: nothing to compare")
    log_e = float(
        np.logaddexp(log_e_above(e, n, split, SPLIT_PRIOR), log_e_below(e, n, split, SPLIT_PRIOR))
        - math.log(2)
    )
    share = e / n
    text = (f"the canary served {100 * share:.3g}% of the pair's {n:.0f} requests "
            f"(canary {e:.0f}, baseline {c:.0f}); its traffic weight gives {100 * split:.3g}%")  # fmt: skip
    if log_e >= math.log(1.0 / alpha):
        return GuardResult("split", False, f"sample-ratio mismatch: {text} (e-value "
                           f"{math.exp(min(log_e, 700)):.3g} >= {1 / alpha:.3g})")  # fmt: skip
    return GuardResult("split", True, f"{text}: within chance")


def check_traffic(control_new: float, experiment_new: float, *, min_requests: int) -> GuardResult:
    """Each track got at least `min_requests` new requests since the last look."""
    starved = [name for name, got in (("canary", experiment_new), ("baseline", control_new))
               if got < min_requests]  # fmt: skip
    counts = f"canary {experiment_new:.0f}, baseline {control_new:.0f} new requests"
    if starved:
        return GuardResult("traffic", False, (
            f"the {' and the '.join(starved)} received fewer than {min_requests} requests since "
            f"the last look ({counts}): it stopped serving, or the app gets no traffic"))  # fmt: skip
    return GuardResult("traffic", True, f"{counts} (at least {min_requests} each)")


def check_readiness(problems: dict[str, str | None]) -> GuardResult:
    """The platform's own readiness per track: `problems` maps track -> None or a reason."""
    bad = {track: why for track, why in problems.items() if why}
    if bad:
        text = "; ".join(f"{track}: {why}" for track, why in bad.items())
        return GuardResult("readiness", False, f"not serving: {text}")
    return GuardResult("readiness", True, f"{' and '.join(problems)} ready")


def evaluate_guards(
    *,
    readiness: dict[str, str | None],
    requests: tuple[float, float] | None,
    previous: tuple[float, float],
    min_requests: int,
    split_alpha: float,
    split: float = 0.5,
) -> tuple[GuardResult, ...]:
    """Every guard of one look. `requests` is (baseline, canary) cumulative since the
    analysis began, None when no request counter is known (then only readiness runs)."""
    out = [check_readiness(readiness)]
    if requests is None:
        out.append(GuardResult("traffic", True, "no request counter configured: traffic and "
                               "split are not checked (add guards.requests to the canary config)"))  # fmt: skip
        return tuple(out)
    control, canary = requests
    out.append(check_traffic(control - previous[0], canary - previous[1], min_requests=min_requests))
    out.append(check_split(control, canary, split=split, alpha=split_alpha))
    return tuple(out)
